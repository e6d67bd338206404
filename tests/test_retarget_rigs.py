"""Retargeting numbers in Blender on every rig of ../shared/rigs and on armatures built with
the generator's proportions, for two real motions: the CMU walk converted by core.mocap and HumanML3D's kick,
each with the contacts HumanML3D's features give (what the model's contact channels learn). Keys are written
as the add-on writes them and Blender evaluates them; the bones point where the motion's segments do, the
rigs with the generator's proportions land on its joints, locked feet do not skate nor sink, no bone flips,
and a 22-bone rig is read, solved with locking and keyed in under 100 ms. Then the options end to end through
the operator: foot locking (on by default, switchable) and the travel on a root bone. scripts/bench_retarget.py
runs the same measures over generated motions and a Rigify rig."""
import statistics
import time

import numpy as np
import pytest

from core import footlock, solver, timebase
from core.features import foot_contacts
from core.mocap import bvh_to_smpl_joints
from core.skeleton import FOOT_CONTACT_JOINTS, JOINT_INDEX, JOINT_NAMES, PARENTS
from tests.conftest import shared_path
from tests.test_blender_extension import addon_module, bpy, extension, generate, prefs, scene  # noqa: F401
from tests.test_blender_generate import evaluated_joints, model_prefs, rigid_model  # noqa: F401
from tests.test_footlock import with_contacts
from tests.test_solver import angle_between, offsets_of, placed, rest_pose
from tests.test_solver_bpy import RIGS, build_armature, import_rig

from momask_blender import keying  # noqa: E402  (after bpy: the test modules above skip without it)
from momask_blender.armature_reading import read_rig  # noqa: E402
from momask_blender.rig_builder import build_rig  # noqa: E402

FPS = 20
FLIP_DEG, FLIP_BEYOND_DEG = 30.0, 10.0
# Armatures with the generator's proportions, made from (22, 3) joints of HumanML3D's subject: the built-in rig
# (its bone lengths, the torso averaged left and right) and Mixamo-named ones with exactly that body's bones and
# torso (the fixture's frame 0), in several rest poses and units.
BUILT = {
    "momask (SMPL, T)": lambda shape: build_rig(bpy.context),
    "mixamo T 0.01": lambda shape: build_armature(rest_pose(offsets_of(shape), "T"), scale=0.01),
    "mixamo A": lambda shape: build_armature(rest_pose(offsets_of(shape), "A"), scale=1.0, seed=1),
    "mixamo down, knees 15, x100": lambda shape: build_armature(rest_pose(offsets_of(shape), "down", 15),
                                                                scale=100.0, seed=2),
}
EXACT_SHAPE = ("mixamo T 0.01", "mixamo A", "mixamo down, knees 15, x100")


class Keyer:
    """The add-on's keying path for one armature (read, solve, key) and Blender's evaluation of the keys."""

    def __init__(self, ob):
        self.ob = ob
        self.rig = self.solved = self.measured = read_rig(ob)

    def key(self, pose: solver.RigPose, name: str) -> None:
        keying.assign_action(self.ob, keying.write_pose(self.ob, self.rig, pose, name, 1))

    def evaluate(self, pose: solver.RigPose, name: str) -> np.ndarray:
        """(T, 22, 3) world joints (through `measured`'s map) of the pose, keyed and evaluated by Blender."""
        self.key(pose, name)
        return evaluated_joints(self.ob, range(1, len(pose.rotations) + 1), self.measured)


def direction_errors(rig: solver.RigDescription, got: np.ndarray, target: np.ndarray):
    """Degrees between the rig's and the motion's segments joining directly mapped joints, all frames, as (bones:
    segments from a joint with one child; torso: from the pelvis and the chest to their children, offsets inside
    one rigid bone that follow the motion only where the rig's torso has the motion's shape)."""
    direct = np.isclose(rig.bone_map.weights.max(axis=1), 1.0)
    errors = {True: [], False: []}
    for joint in range(1, len(JOINT_NAMES)):
        parent = PARENTS[joint]
        if direct[joint] and direct[parent]:
            errors[np.count_nonzero(PARENTS == parent) > 1].append(
                angle_between(got[:, joint] - got[:, parent], target[:, joint] - target[:, parent]))
    return np.concatenate(errors[False]), np.concatenate(errors[True])


def source_frames(target: np.ndarray, joint: int) -> np.ndarray:
    """(T, 3, 3) the motion's frame at a joint: its segment (to its child, to the torso child at the pelvis and
    chest, from its parent at a chain end) and a second direction that fixes the twist: the left-right pair at
    the pelvis and chest, the next segment (the knee's or elbow's bend) at hips and shoulders, else the parent's
    segment."""
    kids = np.flatnonzero(PARENTS == joint)
    if len(kids) > 1:
        torso = next(k for k in kids if not JOINT_NAMES[k].startswith(("left_", "right_")))
        left = next(k for k in kids if JOINT_NAMES[k].startswith("left_"))
        right = JOINT_INDEX["right_" + JOINT_NAMES[left][5:]]
        segment, second = target[:, torso] - target[:, joint], target[:, left] - target[:, right]
    elif len(kids):
        segment = target[:, kids[0]] - target[:, joint]
        if JOINT_NAMES[joint].endswith(("_hip", "_shoulder")):
            second = target[:, np.flatnonzero(PARENTS == kids[0])[0]] - target[:, kids[0]]
        else:
            second = target[:, joint] - target[:, PARENTS[joint]]
    else:
        segment = target[:, joint] - target[:, PARENTS[joint]]
        second = target[:, PARENTS[joint]] - target[:, PARENTS[PARENTS[joint]]]
    x = solver.unit(segment)
    y = solver.unit(solver.perpendicular(second, x))
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def step_degrees(rotations: np.ndarray) -> np.ndarray:
    """(T - 1,) angle of each frame-to-frame turn of (T, 3, 3) rotations."""
    steps = rotations[1:] @ np.swapaxes(rotations[:-1], -1, -2)
    return np.degrees(np.arccos(np.clip((np.trace(steps, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))


def flips(rig: solver.RigDescription, pose: solver.RigPose, target: np.ndarray) -> int:
    """Frame steps where a mapped bone turns more than FLIP_DEG and FLIP_BEYOND_DEG more than the motion's frame
    at its joint (source_frames) does."""
    turns = solver.world_turns(rig, pose)
    count = 0
    for joint, bone in rig.bone_of.items():
        bone_step, source_step = step_degrees(turns[:, bone]), step_degrees(source_frames(target, joint))
        count += int(((bone_step > FLIP_DEG) & (bone_step > source_step + FLIP_BEYOND_DEG)).sum())
    return count


def to_motion(joints: np.ndarray, placement: np.ndarray) -> np.ndarray:
    """World joints -> the motion's space (HumanML3D axes, metres of motion): the placement undone."""
    back = np.linalg.inv(placement)
    return joints @ back[:3, :3].T + back[:3, 3]


def measure(keyer: Keyer, joints: np.ndarray, contacts: np.ndarray) -> dict:
    """The numbers of one motion on one rig: directions (bones, torso; degrees), position (worst directly mapped
    joint, mm of motion) and flips without foot locking; skate (cm/s of motion over the held contact frames)
    without and with locking, held (share of the given contact frames), lowest foot against the rig's floor (mm
    of motion) with locking."""
    options = solver.SolveOptions(placement=solver.default_placement(keyer.solved, joints))
    scale = np.cbrt(np.linalg.det(options.placement[:3, :3]))
    plain = solver.solve(keyer.solved, joints, options)
    target = placed(plain, joints)
    got = keyer.evaluate(plain, "plain")
    bones, torso = direction_errors(keyer.measured, got, target)
    rows = np.isclose(keyer.measured.bone_map.weights.max(axis=1), 1.0)
    locked, held = footlock.solve_locked(keyer.solved, joints, contacts, FPS, options)
    got_locked = keyer.evaluate(locked, "locked")
    feet = [j for j in FOOT_CONTACT_JOINTS if keyer.measured.bone_map.weights[j].any()]
    world = keyer.measured.world_matrix
    rest = solver.rest_joints(keyer.measured) @ world[:3, :3].T + world[:3, 3]
    return dict(bones=bones, torso=torso, flips=flips(keyer.solved, plain, target),
                position_mm=np.linalg.norm((got - target)[:, rows], axis=-1).max() / scale * 1e3,
                skate_before=footlock.foot_skate(to_motion(got, options.placement), held, FPS),
                skate_after=footlock.foot_skate(to_motion(got_locked, options.placement), held, FPS),
                held=held.sum() / max(contacts.sum(), 1),
                floor_mm=(got_locked[:, feet, 2].min() - rest[feet, 2].min()) / scale * 1e3)


def retarget_seconds(ob, joints: np.ndarray, contacts: np.ndarray, runs: int, keyer=Keyer) -> float:
    """Median seconds to read the armature, solve with foot locking and key the motion (at FPS)."""
    times = []
    for run in range(runs):
        start = time.perf_counter()
        rig_keyer = keyer(ob)
        pose = keying.solve_at_fps(rig_keyer.solved, joints, FPS, solver.SolveOptions(), foot_lock=True,
                                   contacts=contacts)
        rig_keyer.key(pose, f"timed {run}")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.fixture(scope="module")
def motions() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    fixture = shared_path("fixtures", "humanml3d")
    walk, _ = bvh_to_smpl_joints(shared_path("rigs", RIGS["cmu_bvh"][0]), fps=FPS)
    return {"cmu walk": with_contacts(walk),
            "fixture kick": (np.load(fixture / "000000_joints.npy").astype(np.float64),
                             foot_contacts(np.load(fixture / "000000_vecs.npy")) > 0.5)}


@pytest.fixture(autouse=True)
def empty_scene():
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = FPS, 1.0


@pytest.mark.shared
@pytest.mark.parametrize("name", [*RIGS, *BUILT])
def test_rig_follows_real_motion_with_planted_feet(motions, name):
    ob = BUILT[name](motions["fixture kick"][0][0]) if name in BUILT else import_rig(name)
    keyer = Keyer(ob)
    for motion, (joints, contacts) in motions.items():
        result = measure(keyer, joints, contacts)
        where = f"{name}, {motion}"
        assert np.median(result["bones"]) < 1.0 and np.percentile(result["bones"], 99) < 5.0, where
        assert result["flips"] == 0, where
        if name in EXACT_SHAPE and motion == "fixture kick":  # the generator's own skeleton: every joint lands
            assert result["position_mm"] < 1.0, where
        assert result["held"] > 0.5, where
        assert result["skate_after"] < 2.0 and result["skate_after"] < result["skate_before"] / 2, where
        assert result["floor_mm"] > -5.0, where


@pytest.mark.shared
def test_a_22_bone_rig_is_retargeted_and_keyed_in_under_100_ms(motions):
    """196 frames (the longest generated motion): read, solve with foot locking, key."""
    joints, contacts = motions["fixture kick"]
    frames = 196
    long = timebase.resample(joints, FPS * (frames - 1) / (len(joints) - 1), FPS)
    planted = timebase.resample(contacts.astype(float), FPS * (frames - 1) / (len(joints) - 1), FPS) > 0.5
    assert len(long) == frames
    ob = BUILT["momask (SMPL, T)"](joints[0])
    assert retarget_seconds(ob, long, planted, runs=5) < 0.1


@pytest.mark.shared
def test_keys_at_the_scenes_rate_lock_feet_by_the_models_contacts(motions):
    """At 30 fps the 20 fps contacts are resampled with the joints: the planted feet stand still there too."""
    joints, contacts = motions["cmu walk"]
    keyer = Keyer(BUILT["mixamo A"](motions["fixture kick"][0][0]))
    options = solver.SolveOptions()
    free, locked = (keying.solve_at_fps(keyer.solved, joints, 30, options, foot_lock=lock, contacts=contacts)
                    for lock in (False, True))
    frames, at_30 = timebase.resample(joints, 30), timebase.resample(contacts.astype(float), 30) > 0.5
    same, held = footlock.solve_locked(keyer.solved, frames, at_30, 30,
                                      solver.SolveOptions(placement=locked.placement))
    np.testing.assert_array_equal(locked.rotations, same.rotations)
    assert len(locked.rotations) == len(frames) and held.sum() > 0.5 * at_30.sum()
    free, locked = (to_motion(solver.mapped_joint_positions(keyer.solved, pose), pose.placement)
                    for pose in (free, locked))
    assert footlock.foot_skate(locked, held, 30) < 0.1 and footlock.foot_skate(free, held, 30) > 2.0
    with pytest.raises(ValueError, match=rf"foot contacts must be \({len(joints)}, 4\)"):
        keying.solve_at_fps(keyer.solved, joints, 30, options, foot_lock=True, contacts=contacts[1:])


@pytest.mark.shared
def test_generate_locks_feet_by_default_and_can_travel_on_the_root_bone(scene, model_prefs):
    """The operator end to end on the UE5 rig (a `root` bone above `pelvis`) with a worker and the rigid test
    model, whose body glides without a step: locked (the default), its feet stand still in most frames; unlocked,
    they glide along. Travel on the root bone: `root` carries the horizontal motion along the ground."""
    ob = import_rig("ue5")
    bpy.context.view_layer.objects.active = ob
    rig = read_rig(ob)
    frames = range(1, 41)
    feet = list(FOOT_CONTACT_JOINTS)

    def still(joints) -> float:
        """Share of the foot joints' frame steps slower than 1 cm/s horizontally."""
        speed = np.linalg.norm(np.diff(joints[:, feet, :2], axis=0), axis=-1) * scene.render.fps
        return (speed < 0.01).mean()

    assert generate(prompt="a person glides", seconds=2.0, seed=3, start_frame=1) == {"FINISHED"}
    locked = evaluated_joints(ob, frames, rig)
    assert generate(prompt="a person glides", seconds=2.0, seed=3, start_frame=1, foot_lock=False,
                    travel_on="ROOT") == {"FINISHED"}
    free = evaluated_joints(ob, frames, rig)
    assert still(locked) > 0.4 and still(free) == 0
    assert 'pose.bones["root"].location' in {c.data_path for c in
                                             ob.animation_data.action.layers[0].strips[0].channelbags[0].fcurves}
    root = []
    for frame in frames:
        scene.frame_set(frame)
        root.append(np.array(ob.matrix_world) @ np.append(ob.pose.bones["root"].head, 1.0))
    root = np.array(root)[:, :3]
    np.testing.assert_allclose(root[:, 2], root[0, 2], atol=1e-5)
    np.testing.assert_allclose(root[:, :2] - root[0, :2], free[:, 0, :2] - free[0, 0, :2], atol=1e-4)
    assert np.linalg.norm(free[-1, 0, :2] - free[0, 0, :2]) > 0.05


def test_travel_on_a_root_bone_the_rig_lacks_is_refused(scene, model_prefs):
    ob = addon_module("rig_builder").build_rig(bpy.context)
    with pytest.raises(RuntimeError, match="pelvis bone 'pelvis' has no bone above it"):
        generate(prompt="a person walks", seconds=2.0, travel_on="ROOT")
    assert ob.animation_data is None
