"""Timeline editing in bpy 5.0.1 with a real worker and the tiny rigid model of tests/support/blender.py:
regenerate ranges, fill gaps, key a prompt timeline, refuse bad requests without changing anything.

The animation edited is the built-in rig's body (or a Mixamo-named FBX-like rig of the same proportions)
walking a circle with a bob and a sway, keyed on every frame with Bezier keys, plus what the generator never
drives: a finger bone and a custom property keyed by hand. The rigid model decodes the same body moving at
random, so whatever it makes, the seams must come out smooth from the splicing and blending alone; its body
glides, so planted feet (foot_lock, on by default) show as feet that stop gliding. A generated Rigify rig is
edited in test_blender_rigify.py."""
import types

import numpy as np
import pytest

from tests.support.blender import (RecordingLayout, add_rig, addon_module, all_keys,  # noqa: F401
                                   assert_outside_unchanged, assert_smooth_seams, bpy, build_armature, channelbag,
                                   evaluated_joints, extension, model_prefs, prefs, rigid_model, run_modal, scene,
                                   snapshot, stub_armature, velocity_changes)

torch = pytest.importorskip("torch")

from core import blending, footlock  # noqa: E402
from core.inpainting import seam_velocity_ratio  # noqa: E402
from core.solver import HUMANML3D_TO_BLENDER, SolveOptions, solve  # noqa: E402
from tests.support.rigs import offsets_of, rest_pose  # noqa: E402

FRAMES = 200  # of the animation edited


def walk(frames: int, fps: float) -> np.ndarray:
    """(frames, 22, 3) the built-in rig's rest body (HumanML3D frame) walking a circle of 2 m at 1 m/s, bobbing
    3 cm at 2 Hz and swaying 3 cm at 1 Hz."""
    body = addon_module("rig_builder").rest_joints() @ HUMANML3D_TO_BLENDER
    t = np.arange(frames) / fps
    angle = 0.5 * t
    heading = angle + np.pi / 2
    turn = np.zeros((frames, 3, 3))
    turn[:, 0, 0], turn[:, 0, 2], turn[:, 1, 1] = np.cos(heading), np.sin(heading), 1.0
    turn[:, 2, 0], turn[:, 2, 2] = -np.sin(heading), np.cos(heading)
    path = np.stack([2 * np.sin(angle) + 0.03 * np.sin(2 * np.pi * t), 0.03 * np.sin(4 * np.pi * t),
                     2 * np.cos(angle)], axis=-1)
    return np.einsum("nij,kj->nki", turn, body - body[0]) + body[0] + path[:, None]


def keyed_walk(ob, frames=FRAMES, start=1, name="walk"):
    """A new action keying `walk` on every frame from `start` with automatic Bezier handles (not assigned)."""
    keying = addon_module("keying")
    rig = addon_module("armature_reading").read_rig(ob)
    pose = solve(rig, walk(frames, keying.scene_fps(bpy.context.scene)), SolveOptions())
    action = keying.write_pose(ob, rig, pose, name, start)
    bezier = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["BEZIER"].value
    for curve in channelbag(action).fcurves:
        curve.keyframe_points.foreach_set("interpolation", [bezier] * len(curve.keyframe_points))
        curve.update()
    return action


def other_representation(action):
    """Rotation keys written the other way an importer might: quaternions of the other sign, Euler and axis-angle
    angles a turn on (the same rotations, but new keys must join them without turning round between frames)."""
    for curve in channelbag(action).fcurves:
        co = np.empty((len(curve.keyframe_points), 2), dtype=np.float32)
        curve.keyframe_points.foreach_get("co", co.ravel())
        if curve.data_path.endswith("rotation_quaternion"):
            co[:, 1] *= -1
        elif curve.data_path.endswith("rotation_euler") or curve.data_path.endswith("axis_angle") and \
                curve.array_index == 0:
            co[:, 1] += 2 * np.pi
        curve.keyframe_points.foreach_set("co", co.ravel())
        curve.update()


def animated(ob, with_extras=True):
    """`ob` animated by a keyed walk, with a hand-keyed custom property (and finger bone, where it has one)."""
    action = keyed_walk(ob)
    other_representation(action)
    addon_module("keying").assign_action(ob, action)
    if with_extras:
        ob["mood"] = 0.0
        for frame, value in ((1, 0.0), (47, 1.0), (70, 0.2), (121, 0.8), (200, 0.0)):
            ob["mood"] = value
            ob.keyframe_insert('["mood"]', frame=frame)
        if "left_index1" in ob.pose.bones:
            finger = ob.pose.bones["left_index1"]
            for frame, angle in ((1, 0.0), (55, 0.8), (100, 0.1), (160, 0.9)):
                finger.rotation_quaternion = (np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0)
                finger.keyframe_insert("rotation_quaternion", frame=frame)
    return action


def rig_with_finger():
    """The built-in rig with an unmapped finger bone on the left hand."""
    ob = add_rig()
    bpy.ops.object.mode_set(mode="EDIT")
    bone = ob.data.edit_bones.new("left_index1")
    wrist = ob.data.edit_bones["left_wrist"]
    bone.head, bone.tail, bone.parent = wrist.tail, wrist.tail + (wrist.tail - wrist.head), wrist
    bpy.ops.object.mode_set(mode="OBJECT")
    return ob


def mixamo_rig():
    """A Mixamo-named armature as FBX brings it (see test_solver_bpy.build_armature), bones in Euler,
    quaternion and axis-angle modes."""
    rest = addon_module("rig_builder").rest_joints() @ HUMANML3D_TO_BLENDER
    ob = build_armature(rest_pose(offsets_of(rest), "A", 10))
    for bone, mode in zip(ob.pose.bones, ["YXZ", "QUATERNION", "AXIS_ANGLE", "QUATERNION"] * 6):
        bone.rotation_mode = mode
    return ob


def halfway_miss(ob, rig, seams) -> float:
    """How far (metres) the joints half a frame before any seam lie from the middle of the frames around it: the
    new keys must join the old ones without turning the long way round (a quaternion's sign, an Euler angle a
    full turn apart) between frames."""
    names = [bone.name for bone in ob.pose.bones]
    weights = rig.bone_map.weights[:, [rig.names.index(name) for name in names]]
    heads = np.empty((len(names), 3), dtype=np.float32)
    misses = []
    for seam in seams:
        poses = []
        for frame, subframe in ((seam - 1, 0.0), (seam - 1, 0.5), (seam, 0.0)):
            bpy.context.scene.frame_set(frame, subframe=subframe)
            ob.pose.bones.foreach_get("head", heads.ravel())
            poses.append(weights @ heads)
        misses.append(np.linalg.norm(poses[1] - (poses[0] + poses[2]) / 2, axis=-1).max())
    return max(misses) * ob.matrix_world.median_scale


def regenerate(**params):
    return bpy.ops.momask.regenerate_range("EXEC_DEFAULT", **params)


def recorded(ob):
    """Animate `ob` (animated) -> (its action, its rig description, the evaluated joints of every frame, all
    its keys): the state an edit is compared with."""
    action = animated(ob)
    rig = addon_module("armature_reading").read_rig(ob)
    return action, rig, evaluated_joints(ob, range(1, FRAMES + 1), rig), all_keys(action)


@pytest.fixture
def rig_ob(request, scene, model_prefs):
    """The armature to edit at the scene frame rate asked for: ("builtin", 24) or ("mixamo", 30)."""
    kind, fps = request.param
    scene.render.fps = fps
    return rig_with_finger() if kind == "builtin" else mixamo_rig()


@pytest.mark.parametrize("rig_ob", [("builtin", 24), ("mixamo", 30)], indirect=True)
def test_regenerated_ranges_keep_every_other_key_and_join_smoothly(rig_ob):
    ob = rig_ob
    original, rig, source, before = recorded(ob)
    assert regenerate(prompt="a person jumps", frame_start=40, frame_end=99, ranges="141-161, 101-115",
                      seed=2) == {"FINISHED"}

    edited = ob.animation_data.action
    assert edited != original and edited.name == "walk, frames 40-99, 101-115, 141-161 'a person jumps' (seed 2)"
    assert [c.action for c in ob.momask_candidates] == [original, edited] and ob.momask_candidate_index == 1
    assert all_keys(original).keys() == before.keys()
    assert_outside_unchanged(before, all_keys(original), [])  # the original is untouched
    after = all_keys(edited)
    assert_outside_unchanged(before, after, [(40, 99), (101, 115), (141, 161)])
    hand_keyed = {c: keys for c, keys in before.items() if "mood" in c[0] or "left_index1" in c[0]}
    assert len(hand_keyed) == (5 if ob.name == "MoMask Rig" else 1)
    assert_outside_unchanged(hand_keyed, after, [])  # not driven: every key as it was, inside the ranges too
    assert all(np.isin(np.arange(40, 100), after[c]["co"][:, 0]).all() for c in after if c not in hand_keyed)

    joints = evaluated_joints(ob, range(1, FRAMES + 1), rig)
    assert np.abs(joints[:39] - source[:39]).max() < 1e-5
    assert np.linalg.norm(joints[69] - source[69], axis=-1).max() > 0.05  # the middle of the range did change
    assert np.abs(joints[99] - source[99]).max() < 1e-5  # frame 100, between two ranges
    assert_smooth_seams(joints, source, [40, 100, 101, 116, 141, 162])
    assert halfway_miss(ob, rig, [40, 100, 101, 116, 141, 162]) < 0.02


def test_ranges_at_the_very_start_and_end_in_place_from_the_preview_range(scene, model_prefs):
    scene.render.fps = 24
    ob = rig_with_finger()
    action, rig, source, before = recorded(ob)
    scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, 1, 13
    assert regenerate(prompt="a person waves", ranges="188-200", in_place=True, seed=5) == {"FINISHED"}
    assert ob.animation_data.action == action and len(bpy.data.actions) == 1 and not len(ob.momask_candidates)
    assert_outside_unchanged(before, all_keys(action), [(1, 13), (188, 200)])
    joints = evaluated_joints(ob, range(1, FRAMES + 1), rig)
    assert np.linalg.norm(joints[[0, 199]] - source[[0, 199]], axis=-1).max() > 0.05
    assert_smooth_seams(joints, source, [14, 188])
    assert halfway_miss(ob, rig, [14, 188]) < 0.02


def test_a_bone_the_action_does_not_key_and_one_undo_step(scene, model_prefs):
    """A bone without curves gets them, keyed with its pose just outside the range: it stays still outside."""
    ob = add_rig()
    action = animated(ob, with_extras=False)
    knee = 'pose.bones["left_knee"].rotation_quaternion'
    for curve in [c for c in channelbag(action).fcurves if c.data_path == knee]:
        channelbag(action).fcurves.remove(curve)
    ob.pose.bones["left_knee"].rotation_quaternion = (0.9, 0.3, 0.0, 0.0)
    bpy.ops.ed.undo_push(message="before regenerating")
    before = state()
    assert bpy.ops.momask.regenerate_range("EXEC_DEFAULT", True, prompt="a person runs", frame_start=21,
                                           frame_end=50) == {"FINISHED"}
    edited = ob.animation_data.action
    w = channelbag(edited).fcurves.find(knee, index=0)
    assert [p.co[0] for p in w.keyframe_points] == list(range(20, 52)) and w.keyframe_points[0].co[1] == np.float32(0.9)
    for frame in (1, 19, 52, 200):
        scene.frame_set(frame)
        assert tuple(ob.pose.bones["left_knee"].rotation_quaternion) == pytest.approx((0.9, 0.3, 0.0, 0.0), abs=1e-6)
    bpy.ops.ed.undo()
    assert state() == before


def test_feet_planted_in_a_regenerated_range(scene, model_prefs):
    """foot_lock (the default) against the same edit with free feet: inside the range, where the feet stand
    (held_contacts of the free edit, the pins footlock would set) they stay put instead of gliding with the
    body; the animation outside the range and its seams stay as they were either way."""
    scene.render.fps = 24
    ob = rig_with_finger()
    original, rig, source, before = recorded(ob)
    edits = {}
    for lock in (False, True):
        addon_module("keying").assign_action(ob, original)
        assert regenerate(prompt="a person walks", frame_start=50, frame_end=149, seed=6, foot_lock=lock) == {
            "FINISHED"}
        assert_outside_unchanged(before, all_keys(ob.animation_data.action), [(50, 149)])
        joints = evaluated_joints(ob, range(1, FRAMES + 1), rig)
        assert np.abs(joints[:49] - source[:49]).max() < 1e-5 and np.abs(joints[149:] - source[149:]).max() < 1e-5
        assert_smooth_seams(joints, source, [50, 150])
        edits[lock] = joints[49:149]
    pose_sampling = addon_module("pose_sampling")
    placement = pose_sampling.motion_placement(rig)
    free, planted = (pose_sampling.to_motion_space(edits[lock], placement) for lock in (False, True))
    held = footlock.held_contacts(free, fps=24)
    assert held.mean() > 0.1, held.mean()
    faded = blending.seam_fade_frames(24)  # frames next to the seams, faded in from the animation
    middle = slice(faded, -faded)
    skate = {name: (footlock.foot_skate(edit, held, 24), footlock.foot_skate(edit[middle], held[middle], 24))
             for name, edit in (("free", free), ("planted", planted))}
    assert skate["planted"][1] < 2.0 < 10.0 < skate["free"][1], skate  # cm/s
    assert skate["planted"][0] < 0.6 * skate["free"][0], skate


def gap_seam_misses(joints, g0, g1, first_frame=1) -> list[float]:
    """How far the in-between, carried on for one frame at its speed, misses the pose next to each end:
    |2 x[g0] - x[g0 + 1] - x[g0 - 1]| and the same at g1 (largest over joints, metres)."""
    changes = velocity_changes(joints)
    return [changes[g0 - first_frame - 1], changes[g1 - first_frame - 1]]


def test_fill_a_gap_between_keys(scene, model_prefs):
    scene.render.fps = 30
    ob = mixamo_rig()
    action = animated(ob)
    for curve in channelbag(action).fcurves:  # cut frames 81..110 out of the walk
        for point in reversed([p for p in curve.keyframe_points if 81 <= p.co[0] <= 110]):
            curve.keyframe_points.remove(point)
    rig = addon_module("armature_reading").read_rig(ob)
    source = evaluated_joints(ob, range(1, FRAMES + 1), rig)
    before = all_keys(action)
    assert bpy.ops.momask.fill_gap("EXEC_DEFAULT", prompt="a person stumbles", frame_start=81, frame_end=110,
                                   seed=4) == {"FINISHED"}
    filled = ob.animation_data.action
    assert filled != action and filled.name.startswith("walk, in-between 81-110 'a person stumbles'")
    assert_outside_unchanged(before, all_keys(filled), [(81, 110)])
    joints = evaluated_joints(ob, range(1, FRAMES + 1), rig)
    assert np.abs(joints[79] - source[79]).max() < 1e-5 and np.abs(joints[110] - source[110]).max() < 1e-5
    assert max(gap_seam_misses(joints, 81, 110)) < 0.01 and halfway_miss(ob, rig, [81, 111]) < 0.02
    assert np.linalg.norm(joints[95] - source[95], axis=-1).max() > 0.05


def test_fill_a_gap_between_nla_strips(scene, model_prefs):
    scene.render.fps = 24
    ob = add_rig()
    clips = [keyed_walk(ob, 60, 1, "clip A"), keyed_walk(ob, 60, 91, "clip B")]
    track = ob.animation_data_create().nla_tracks.new()
    for action, start in zip(clips, (1, 91)):
        track.strips.new(action.name, start, action)
    rig = addon_module("armature_reading").read_rig(ob)
    source = evaluated_joints(ob, range(1, 151), rig)
    keys = [all_keys(action) for action in clips]
    assert bpy.ops.momask.fill_gap("EXEC_DEFAULT", frame_start=61, frame_end=90, seed=8) == {"FINISHED"}
    for old, action in zip(keys, clips):
        assert_outside_unchanged(old, all_keys(action), [])
    tracks = ob.animation_data.nla_tracks
    assert len(tracks) == 2 and tracks[-1].name == "MoMask in-between"
    (strip,) = tracks[-1].strips
    assert (strip.frame_start, strip.frame_end) == (61, 90) and strip.action.name.startswith("In-between 61-90")
    joints = evaluated_joints(ob, range(1, 151), rig)
    assert np.abs(joints[:60] - source[:60]).max() < 1e-5 and np.abs(joints[90:] - source[90:]).max() < 1e-5
    assert max(gap_seam_misses(joints, 61, 90)) < 0.01
    assert np.linalg.norm(joints[75] - source[75], axis=-1).max() > 0.05  # no longer the held pose


def test_prompt_timeline_longer_than_10_s_with_markers(scene, model_prefs):
    scene.render.fps = 24
    ob = add_rig()
    timeline = scene.momask_timeline
    for prompt, seconds in (("a person walks", 6.0), ("a person jumps", 3.0), ("a person sits down", 2.5)):
        assert bpy.ops.momask.segment_add() == {"FINISHED"}
        timeline.segments[-1].prompt, timeline.segments[-1].seconds = prompt, seconds
    assert bpy.ops.momask.generate_sequence("EXEC_DEFAULT", seed=3, start_frame=10) == {"FINISHED"}
    action = ob.animation_data.action
    assert action.name == "a person walks > a person jumps > a pers (seed 3)"  # 40 characters
    curve = channelbag(action).fcurves[0]
    assert (curve.keyframe_points[0].co[0], curve.keyframe_points[-1].co[0]) == (10, 10 + 229 * 24 // 20)
    markers = sorted((m.frame, m.name) for m in scene.timeline_markers)
    assert [name for _, name in markers] == ["a person walks", "a person jumps", "a person sits down"]
    assert [frame for frame, _ in markers] == [10, 10 + 144, 10 + 216]  # 6 s and 9 s, on 4-frame tokens
    joints = evaluated_joints(ob, range(10, 10 + 229 * 24 // 20 + 1))
    assert (seam_velocity_ratio(joints, [frame - 10 for frame, _ in markers[1:]]) <= 1).all()
    # feet planted by default: where the same motion's free feet stand, these stay put
    assert bpy.ops.momask.generate_sequence("EXEC_DEFAULT", seed=3, start_frame=10, foot_lock=False) == {"FINISHED"}
    pose_sampling = addon_module("pose_sampling")
    placement = pose_sampling.motion_placement(addon_module("armature_reading").read_rig(ob))
    planted, free = (pose_sampling.to_motion_space(motion, placement) for motion in (
        joints, evaluated_joints(ob, range(10, 10 + 229 * 24 // 20 + 1))))
    held = footlock.held_contacts(free, fps=24)
    assert footlock.foot_skate(planted, held, 24) < 1.0 < 4.0 < footlock.foot_skate(free, held, 24)


def test_modal_regenerate_and_escape(scene, model_prefs):
    ob = add_rig()
    animated(ob, with_extras=False)
    timeline_jobs = addon_module("timeline_jobs")
    reports = []

    def modal_op(steps):
        settings = timeline_jobs.EditSettings("a person kicks", [(31, 60)], False, 1, 4.0, steps)
        return types.SimpleNamespace(_generation=timeline_jobs.RangeRegeneration(bpy.context, settings).start(),
                                     _timer=None, report=lambda kind, text: reports.append((kind, text)))

    before = state()
    op = modal_op(2000)
    escape = types.SimpleNamespace(type="ESC", value="PRESS")
    assert bpy.types.MOMASK_OT_regenerate_range.modal(op, bpy.context, escape) == {"RUNNING_MODAL"}
    assert run_modal(op) == {"CANCELLED"} and reports == [({"WARNING"}, "Generation cancelled; nothing was changed")]
    assert state() == before
    assert run_modal(modal_op(10)) == {"FINISHED"}
    assert reports[-1][0] == {"INFO"} and "regenerated frames 31-60" in reports[-1][1]


def state() -> dict:
    """snapshot() and what else a refused request must leave alone: every data-block count, markers, frame.
    The scene is evaluated first (an operator call evaluates it: the pose follows the action)."""
    scene = bpy.context.scene
    scene.frame_set(scene.frame_current)
    return dict(snapshot(), markers=sorted((m.name, m.frame) for m in scene.timeline_markers),
                frame=(scene.frame_current, scene.frame_subframe),
                blocks={name: len(getattr(bpy.data, name)) for name in dir(bpy.data)
                        if isinstance(getattr(bpy.data, name, None), bpy.types.bpy_prop_collection)},
                tracks={ob.name: [(t.name, len(t.strips)) for t in ob.animation_data.nla_tracks]
                        for ob in bpy.data.objects if ob.animation_data})


def animated_stub():
    """An armature without legs or arms, animated."""
    ob = stub_armature()
    for frame in (1, 50):
        ob.pose.bones["Hips"].keyframe_insert("location", frame=frame)
    return ob


BAD = [
    ("regenerate_range", {"frame_start": 150, "frame_end": 230}, "Frames 150-230 are outside the action 'walk', "
                                                                  "keyed from frame 1 to 200"),
    ("regenerate_range", {"frame_start": 10, "frame_end": 12}, "Frames 10-12 are 3 frame.s.; a range needs at least 4"),
    ("regenerate_range", {"frame_start": 30, "frame_end": 10}, "Frames 30-10: the last frame comes before the first"),
    ("regenerate_range", {"frame_start": 10, "frame_end": 30, "ranges": "25-40"}, "Frames 10-30 and 25-40 overlap"),
    ("regenerate_range", {"frame_start": 10, "frame_end": 30, "ranges": "40 to 50"}, "'40 to 50' is not one"),
    ("regenerate_range", {"prompt": "a person walks"}, "Give the first and last frame .or set a preview range"),
    ("fill_gap", {"frame_start": 60, "frame_end": 90}, "Frames 60-90 are no gap between two clips on 'MoMask Rig': "
                                                       "its action 'walk' has keys at frame 60"),
    ("fill_gap", {"frame_start": 201, "frame_end": 220}, "is keyed from frame 1 to 200, not on both sides"),
    ("generate_sequence", {}, "The prompt timeline is empty"),
]


@pytest.mark.parametrize("operator, params, message", BAD)
def test_bad_request_changes_nothing(scene, model_prefs, operator, params, message):
    ob = add_rig()
    animated(ob)
    before = state()
    with pytest.raises(RuntimeError, match=message):
        getattr(bpy.ops.momask, operator)("EXEC_DEFAULT", **params)
    assert state() == before


def test_ranges_the_model_cannot_edit(scene, model_prefs):
    scene.render.fps = 24
    ob = add_rig()
    addon_module("keying").assign_action(ob, keyed_walk(ob, frames=400))
    before = state()
    with pytest.raises(RuntimeError, match=r"Frames 50-300 last 10.5 s; the model regenerates at most 8.2 s"):
        regenerate(prompt="a person walks", frame_start=50, frame_end=300)
    scene.render.fps = 60  # no 20 fps frame lies between frames 98 and 100
    with pytest.raises(RuntimeError, match=r"Frames 40-98 and 100-110 are too close to regenerate apart"):
        regenerate(prompt="a person walks", frame_start=40, frame_end=98, ranges="100-110")
    scene.render.fps = 24
    assert state() == before


def test_no_animation_unmappable_armature_and_bad_segments(scene, model_prefs):
    ob = add_rig()
    before = state()
    with pytest.raises(RuntimeError, match="'MoMask Rig' has no animation to edit"):
        regenerate(prompt="a person walks", frame_start=1, frame_end=20)
    with pytest.raises(RuntimeError, match="'MoMask Rig' has no animation: a gap lies between keys"):
        bpy.ops.momask.fill_gap("EXEC_DEFAULT", frame_start=1, frame_end=20)
    timeline = scene.momask_timeline
    timeline.segments.add().prompt, timeline.segments.add().prompt = "a person walks", ""
    with pytest.raises(RuntimeError, match="Segment 2 of the prompt timeline has no prompt"):
        bpy.ops.momask.generate_sequence("EXEC_DEFAULT")
    timeline.segments[1].prompt, timeline.segments[1].seconds = "a person sits", 0.2
    with pytest.raises(RuntimeError, match=r"Segment 2 \('a person sits'\) lasts 0.2 s; a segment needs at least 0.4"):
        bpy.ops.momask.generate_sequence("EXEC_DEFAULT")
    assert state() == before
    animated_stub()
    before = state()
    with pytest.raises(RuntimeError, match="'Stub' cannot be animated: no left leg"):
        regenerate(prompt="a person walks", frame_start=1, frame_end=20)
    assert state() == before
    assert ob.name in bpy.data.objects


def test_panel_and_segment_list(scene, prefs):
    add_rig()
    timeline = scene.momask_timeline
    for prompt in ("walk", "jump", "sit"):
        bpy.ops.momask.segment_add()
        timeline.segments[-1].prompt = prompt
    assert bpy.ops.momask.segment_move(direction="UP") == {"FINISHED"}
    assert [s.prompt for s in timeline.segments] == ["walk", "sit", "jump"] and timeline.segment_index == 1
    assert bpy.ops.momask.segment_remove() == {"FINISHED"}
    assert [s.prompt for s in timeline.segments] == ["walk", "jump"]
    timeline.prompt, timeline.frame_start, timeline.frame_end, timeline.ranges = "a person spins", 5, 40, "60-70"
    scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, 12, 34
    assert bpy.ops.momask.range_from_preview() == {"FINISHED"}
    assert (timeline.frame_start, timeline.frame_end) == (12, 34)
    timeline.edit.seed, timeline.edit.foot_lock, timeline.sequence.seed, timeline.sequence.foot_lock = 9, False, 4, False
    layout = RecordingLayout()
    bpy.types.MOMASK_PT_timeline.draw(types.SimpleNamespace(layout=layout), bpy.context)
    assert {("MOMASK_PG_timeline", name) for name in ("prompt", "frame_start", "frame_end", "ranges", "in_place")} \
        <= layout.props()
    ops = layout.operators()
    regenerate_op = ops["momask.regenerate_range"]
    assert (regenerate_op.prompt, regenerate_op.frame_start, regenerate_op.frame_end, regenerate_op.ranges,
            regenerate_op.seed) == ("a person spins", 12, 34, "60-70", 9)
    assert ops["momask.fill_gap"].frame_end == 34 and ops["momask.generate_sequence"].seed == 4
    assert not any(ops[name].foot_lock for name in ("momask.regenerate_range", "momask.fill_gap",
                                                    "momask.generate_sequence"))  # each section's own Lock Feet
    assert [args[1:3] for name, args, *_ in layout.calls if name == "template_list"] == [("", timeline)]
    assert bpy.types.MOMASK_PT_timeline.bl_parent_id == "MOMASK_PT_main"
