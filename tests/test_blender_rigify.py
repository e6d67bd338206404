"""Generated Rigify rigs in bpy 5.0.1: motion keyed on the FK controls through the proxy and the visual bake,
with the rig's own constraints intact and its arms and legs switched to FK for the keyed range; generated
through the operator (a real worker and the tiny rigid model of tests/support/blender.py) and from real and
demanding motions, the deforming bones (DEF-*) pointing where the motion's segments do. The metarig and a
DEF-bones-only export are keyed directly, like any rig. A range regenerated in an action keyed on the controls
is baked the same way and spliced into that range alone.

The rig is generated once per module (about 3 s) and saved; each test opens that file."""
import contextlib
import io

import numpy as np
import pytest

from tests.support.blender import (addon_module, all_keys, assert_outside_unchanged,  # noqa: F401
                                   assert_smooth_seams, bpy, evaluated_joints, extension, generate, model_prefs,
                                   prefs, rigid_model)

import addon_utils  # noqa: E402  (comes with bpy)
from bpy_extras import anim_utils  # noqa: E402

from core.bonemap import PRESETS  # noqa: E402
from core.skeleton import JOINT_INDEX  # noqa: E402
from core.solver import SolveOptions  # noqa: E402
from tests.support.rigs import SEGMENTS, angle_between, synthetic_motion  # noqa: E402

FRAMES = 196  # the longest motion a model generates (9.8 s at 20 fps)
DEF_TABLE = {joint: bone for joint, bone in PRESETS["rigify_def"].items() if bone}


@pytest.fixture(scope="module")
def rigify_blend(extension, tmp_path_factory):
    """A .blend with the human metarig and the rig generated from it ('metarig', 'rig')."""
    bpy.ops.wm.read_homefile(use_empty=True)
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    with contextlib.redirect_stdout(io.StringIO()):
        bpy.ops.pose.rigify_generate()
    path = tmp_path_factory.mktemp("rigify") / "rigify.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


@pytest.fixture
def rig(rigify_blend):
    """The generated rig, active, in a scene at 20 fps (a generated frame per keyed frame)."""
    bpy.ops.wm.open_mainfile(filepath=str(rigify_blend))
    bpy.context.scene.render.fps = 20
    ob = bpy.data.objects["rig"]
    bpy.context.view_layer.objects.active = ob
    return ob


def constraints(ob) -> list[tuple]:
    """Every constraint of the rig: bone, name, type, target bone (influences are driven: they follow IK_FK)."""
    return [(bone.name, c.name, c.type, getattr(c, "subtarget", "")) for bone in ob.pose.bones
            for c in bone.constraints]


def curves(action) -> dict[str, object]:
    return {c.data_path: c for bag in action.layers[0].strips[0].channelbags for c in bag.fcurves}


def segment_errors(got: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Degrees between the rig's and the motion's segments (limbs, spine, neck -> head), every frame."""
    return np.stack([angle_between(got[:, JOINT_INDEX[b]] - got[:, JOINT_INDEX[a]],
                                   target[:, JOINT_INDEX[b]] - target[:, JOINT_INDEX[a]]) for a, b in SEGMENTS])


def worst(errors: np.ndarray) -> dict[str, float]:
    return {f"{a}-{b}": round(float(e.max()), 3) for (a, b), e in zip(SEGMENTS, errors)}


def deforming_joints(ob, frames) -> np.ndarray:
    """(F, 22, 3) world-space joints of the evaluated deforming bones (DEF-*)."""
    return evaluated_joints(ob, frames, addon_module("armature_reading").read_rig(ob, table=DEF_TABLE))


def test_generated_candidates_are_baked_onto_the_fk_controls(rig, model_prefs, rigid_model):
    """Two candidates through the operator: each its own action keying the FK controls and the IK/FK switches,
    the rig's constraints as they were, nothing of the proxy left; each lands on its generated motion."""
    read_rig, rigify = addon_module("armature_reading").read_rig, addon_module("rigify")
    assert bpy.ops.momask.detect_mapping() == {"FINISHED"}  # a stored table of the controls works the same
    assert rig.data.momask_mapping.source == "Detect: a Rigify rig"
    control = rigify.control_rig(rig, read_rig(rig))
    assert control is not None and len(rig.data.bones) > 700
    assert ("CON_ARMATURE", "Rigify: keys its FK controls (arms and legs switched to FK)") in addon_module(
        "mapping").mapping_status(rig)
    before = constraints(rig)
    objects, armatures = sorted(bpy.data.objects.keys()), sorted(bpy.data.armatures.keys())
    prompt = "a person walks and turns"
    assert generate(prompt=prompt, seconds=FRAMES / 20, seed=2, start_frame=3, candidates=2,
                    foot_lock=False) == {"FINISHED"}  # the generated motion as it is, to compare with

    assert constraints(rig) == before and len(before) > 500  # the rig's own, none of ours
    assert (sorted(bpy.data.objects.keys()), sorted(bpy.data.armatures.keys())) == (objects, armatures)
    names = [f"{prompt} (seed {1 + k}, {k} of 2)" for k in (1, 2)]  # candidate k: seed 2 + k - 1
    assert sorted(bpy.data.actions.keys()) == names  # no proxy action left behind
    assert [c.action.name for c in rig.momask_candidates] == names and rig.animation_data.action.name == names[0]
    keyed = curves(bpy.data.actions[names[0]])
    assert keyed.keys() == curves(bpy.data.actions[names[1]]).keys()
    for control_bone in control.followers:
        path = f'pose.bones["{control_bone}"].'
        rotation = path + ("rotation_euler" if rig.pose.bones[control_bone].rotation_mode != "QUATERNION"
                           else "rotation_quaternion")
        points = keyed[rotation].keyframe_points
        assert (len(points), points[0].co[0], points[-1].co[0]) == (FRAMES, 3, FRAMES + 2), control_bone
    for switch in rigify.FK_SWITCHES:  # FK over the keyed range
        points = keyed[f'pose.bones["{switch}"]["IK_FK"]'].keyframe_points
        assert [tuple(p.co) for p in points] == [(3, 1.0), (FRAMES + 2, 1.0)]
    assert not [path for path in keyed if "_ik" in path or "MCH-" in path or "DEF-" in path or "ORG-" in path]

    job = addon_module("jobs")._client.request("generate", model=str(rigid_model), prompts=[prompt], lengths=[FRAMES],
                                               candidates=2, seed=2, steps=10, cond_scale=4.0)
    for k, motion in enumerate(job.wait(timeout=60)["motions"][0]):
        rig.momask_candidate_index = k
        joints = motion["joints"].astype(np.float64)
        placement = addon_module("_core").solver.default_placement(control.proxy, joints)
        target = joints @ placement[:3, :3].T + placement[:3, 3]
        got = deforming_joints(rig, range(3, 3 + FRAMES))
        errors = segment_errors(got, target)
        assert np.median(errors) < 1.0 and np.percentile(errors, 99) < 5.0, worst(errors)
        assert np.linalg.norm(got[:, 0] - target[:, 0], axis=-1).max() < 1e-3
        assert np.ptp(target[:, 0, :2], axis=0).max() > 0.05  # the body did travel


@pytest.fixture(params=["synthetic", "fixture_clip"])
def motion(request) -> np.ndarray:
    """196 frames: the solver tests' demanding motion (every facing, knees to 120 deg, arms overhead), or the
    HumanML3D reference clip played forward then back."""
    if request.param == "synthetic":
        return synthetic_motion(FRAMES)
    clip = np.load(request.getfixturevalue("fixture_dir") / "000000_joints.npy").astype(np.float64)
    return np.concatenate([clip, clip[::-1]])[:FRAMES]


def test_motion_lands_on_the_deforming_bones(rig, motion):
    """Direct path as jobs.Generation.finish takes it: the deforming skeleton follows the motion's segments
    (median below 1 deg, 99th percentile below 5 deg) and its pelvis the motion's, whatever the pose before."""
    rigify, keying = addon_module("rigify"), addon_module("keying")
    bpy.ops.object.mode_set(mode="POSE")  # where an animator works: the mode and selection are kept
    rig.pose.bones["hips"].rotation_quaternion = (0.8, 0.6, 0.0, 0.0)  # an animator's leftovers
    selected = {bone.name for bone in rig.pose.bones if bone.select} | {"hand_ik.L"}
    rig.pose.bones["hand_ik.L"].select = True
    own = bpy.data.actions.new("the animator's")
    keying.assign_action(rig, own)
    control = rigify.control_rig(rig, addon_module("armature_reading").read_rig(rig))
    pose = keying.solve_at_fps(control.proxy, motion, 20, SolveOptions())
    (action,) = control.bake(bpy.context, rig, [pose], ["motion"], 1)
    assert rig.animation_data.action == own  # the new action is not assigned
    assert (bpy.context.view_layer.objects.active, rig.mode) == (rig, "POSE")
    assert {bone.name for bone in rig.pose.bones if bone.select} == selected
    keying.assign_action(rig, action)
    got = deforming_joints(rig, range(1, 1 + FRAMES))
    target = motion @ pose.placement[:3, :3].T + pose.placement[:3, 3]
    errors = segment_errors(got, target)
    assert np.median(errors) < 1.0 and np.percentile(errors, 99) < 5.0, worst(errors)
    assert np.linalg.norm(got[:, 0] - target[:, 0], axis=-1).max() < 1e-3
    assert root_travel(rig, (1, FRAMES // 2, FRAMES)) < 1e-6  # the pelvis travels, the root stays at rest


def root_travel(ob, frames) -> float:
    """How far (world units) the rig's root control moves horizontally over the frames."""
    heads = []
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        heads.append(ob.matrix_world @ ob.pose.bones["root"].head)
    return float(np.ptp(np.array(heads)[:, :2], axis=0).max())


def test_travel_on_the_root_control(rig):
    """horizontal_on="root": the rig's root control carries the horizontal travel (with the default, the
    pelvis, it stays at rest), and the body still lands on the motion."""
    rigify, keying = addon_module("rigify"), addon_module("keying")
    control = rigify.control_rig(rig, addon_module("armature_reading").read_rig(rig))
    motion = synthetic_motion(FRAMES)
    pose = keying.solve_at_fps(control.proxy, motion, 20, SolveOptions(horizontal_on="root"))
    (action,) = control.bake(bpy.context, rig, [pose], ["on root"], 1)
    keying.assign_action(rig, action)
    frames = range(1, 1 + FRAMES, 3)
    got = deforming_joints(rig, frames)
    target = (motion @ pose.placement[:3, :3].T + pose.placement[:3, 3])[::3]
    assert np.percentile(segment_errors(got, target), 99) < 5.0
    assert np.linalg.norm(got[:, 0] - target[:, 0], axis=-1).max() < 1e-3
    assert root_travel(rig, frames) > 0.5


def def_only_export(rig):
    """A game-engine export of the generated rig: its DEF- bones alone (each hanging from its nearest DEF-
    ancestor), no constraints."""
    armature = bpy.data.armatures.new("DEF only")
    ob = bpy.data.objects.new("DEF only", armature)
    bpy.context.scene.collection.objects.link(ob)
    source = [bone for bone in rig.data.bones if bone.name.startswith("DEF-")]
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode="EDIT")
    for bone in source:
        edit = armature.edit_bones.new(bone.name)
        edit.head, edit.tail = (0.0, 0.0, 0.0), (0.0, bone.length, 0.0)
        edit.matrix = bone.matrix_local
    for bone in source:
        parent = bone.parent
        while parent is not None and not parent.name.startswith("DEF-"):
            parent = parent.parent
        armature.edit_bones[bone.name].parent = armature.edit_bones[parent.name] if parent else None
    bpy.ops.object.mode_set(mode="OBJECT")
    return ob


@pytest.mark.parametrize("which", ["metarig", "DEF only"])
def test_metarig_and_def_only_rigs_are_keyed_directly(rig, which):
    rigify, keying = addon_module("rigify"), addon_module("keying")
    ob = bpy.data.objects["metarig"] if which == "metarig" else def_only_export(rig)
    model = addon_module("armature_reading").read_rig(ob)
    assert model.bone_map.preset == ("metarig" if which == "metarig" else "rigify_def")
    assert rigify.control_rig(ob, model) is None
    assert not [text for _, text in addon_module("mapping").mapping_status(ob) if "FK controls" in text]
    motion = synthetic_motion(FRAMES)
    pose = keying.solve_at_fps(model, motion, 20, SolveOptions())
    keying.assign_action(ob, keying.write_pose(ob, model, pose, which, 1))
    got = evaluated_joints(ob, range(1, 1 + FRAMES, 5), model)
    errors = segment_errors(got, (motion @ pose.placement[:3, :3].T + pose.placement[:3, 3])[::5])
    assert errors.max() < 0.01


def legs_in_ik(rig, action, frames) -> list[str]:
    """Switch the legs to IK (Rigify's default, not animated) with the foot IK controls keyed where the feet are
    -> the switches' curve paths, gone from the action."""
    channelbag = action.layers[0].strips[0].channelbags[0]
    for bone in rig.pose.bones:
        bone.select = bone.name in ("foot_ik.L", "foot_ik.R")
    followed = []
    for side in "LR":
        constraint = rig.pose.bones[f"foot_ik.{side}"].constraints.new("COPY_TRANSFORMS")
        constraint.target, constraint.subtarget = rig, f"ORG-foot.{side}"
        followed.append((rig.pose.bones[f"foot_ik.{side}"], constraint))
    anim_utils.bake_action(rig, action=action, frames=frames, bake_options=anim_utils.BakeOptions(
        only_selected=True, do_pose=True, do_object=False, do_visual_keying=True, do_constraint_clear=False,
        do_parents_clear=False, do_clean=False, do_location=True, do_rotation=True, do_scale=False, do_bbone=False,
        do_custom_props=False))
    for bone, constraint in followed:
        bone.constraints.remove(constraint)
    switches = [f'pose.bones["thigh_parent.{side}"]["IK_FK"]' for side in "LR"]
    for path in switches:
        channelbag.fcurves.remove(channelbag.fcurves.find(path))
    for side in "LR":
        rig.pose.bones[f"thigh_parent.{side}"]["IK_FK"] = 0.0
    return switches


@pytest.mark.parametrize("legs", ["FK", "IK"])
def test_a_range_regenerated_on_the_rigify_rig(rig, model_prefs, legs):
    """A range regenerated (worker and rigid model, feet planted) in an action keyed on the controls, the legs
    in FK or in IK: baked through the proxy into the range only; every key outside it as it was on every curve,
    the switches keyed to FK inside the range (and IK just outside, as they were), the rig's constraints
    intact, nothing of the proxy left; the deforming bones follow the edit inside the range and join the
    animation at its seams."""
    rigify, keying, timeline_jobs = addon_module("rigify"), addon_module("keying"), addon_module("timeline_jobs")
    bpy.context.scene.render.fps = 24
    control = rigify.control_rig(rig, addon_module("armature_reading").read_rig(rig))
    pose = keying.solve_at_fps(control.proxy, synthetic_motion(120), 24, SolveOptions())
    (animation,) = control.bake(bpy.context, rig, [pose], ["animation"], 1)
    keying.assign_action(rig, animation)
    hips = 'pose.bones["hips"].rotation_quaternion'  # not animated: an animator's leftover pose instead
    for curve in [c for c in animation.layers[0].strips[0].channelbags[0].fcurves if c.data_path == hips]:
        animation.layers[0].strips[0].channelbags[0].fcurves.remove(curve)
    rig.pose.bones["hips"].rotation_quaternion = (0.96, 0.28, 0.0, 0.0)
    frames = range(1, 1 + len(pose.rotations))
    ik_switches = legs_in_ik(rig, animation, frames) if legs == "IK" else []
    rig.animation_data.action_blend_type = "COMBINE"  # the same on its own; Blender's bake sets REPLACE
    source = deforming_joints(rig, frames)
    before, rig_constraints = all_keys(animation), constraints(rig)
    objects, armatures = sorted(bpy.data.objects.keys()), sorted(bpy.data.armatures.keys())

    settings = timeline_jobs.EditSettings("a person kicks", [(50, 100)], False, 3, 4.0, 10)
    job = timeline_jobs.RangeRegeneration(bpy.context, settings).start()
    job.wait()
    edit = job.keyed_joints(job.job.result)  # the models' space, frames 50-100
    (edited,) = job.finish(bpy.context)
    assert rig.animation_data.action == edited and sorted(bpy.data.actions.keys()) == sorted(["animation", edited.name])
    assert constraints(rig) == rig_constraints and rig.animation_data.action_blend_type == "COMBINE"
    assert (sorted(bpy.data.objects.keys()), sorted(bpy.data.armatures.keys())) == (objects, armatures)
    assert_outside_unchanged(before, all_keys(animation), [])
    after = all_keys(edited)
    assert after.keys() - before.keys() == {(hips, index) for index in range(4)} | {(path, 0) for path in ik_switches}
    assert_outside_unchanged(before, after, [(50, 100)])
    # the leftover pose holds outside the range (the hips pivot is keyed at rest inside it, as generate keys it)
    hips_x = after[(hips, 1)]["co"]
    assert hips_x[[0, -1], 0].tolist() == [49, 101] and (hips_x[[0, -1], 1] == np.float32(0.28)).all()
    assert np.abs(hips_x[1:-1, 1]).max() < 1e-6
    for switch in rigify.FK_SWITCHES:
        path = f'pose.bones["{switch}"]["IK_FK"]'
        keys = after[(path, 0)]["co"]
        assert [tuple(co) for co in keys if 50 <= co[0] <= 100] == [(50, 1.0), (100, 1.0)]
        if path in ik_switches:
            assert [tuple(co) for co in keys] == [(49, 0.0), (50, 1.0), (100, 1.0), (101, 0.0)]

    got = deforming_joints(rig, frames)
    assert np.abs(got[:49] - source[:49]).max() < 1e-5 and np.abs(got[100:] - source[100:]).max() < 1e-5
    assert np.linalg.norm(got[75] - source[75], axis=-1).max() > 0.05  # the middle of the range did change
    target = edit @ job.placement[:3, :3].T + job.placement[:3, 3]
    errors = segment_errors(got[49:100], target)
    assert np.median(errors) < 1.0 and np.percentile(errors, 99) < 5.0, worst(errors)
    assert np.linalg.norm(got[49:100, 0] - target[:, 0], axis=-1).max() < 1e-3
    assert_smooth_seams(got, source, [50, 101])
