"""Joints -> bone rotations inside Blender (the bpy 5.0.1 module): the quaternions and locations written into
pose bones make Blender's own evaluation put the bones where the solve said, on an armature built with edit
bones and on the real rigs of ../shared/rigs (UE5 FBX, Quaternius glTF and .blend, CesiumMan, CMU, Z-up and
SMPL-template BVH)."""
import numpy as np
import pytest

from tests.support.blender import RIGS, bpy, build_armature, import_rig
from core import solver  # noqa: E402
from core.skeleton import JOINT_INDEX  # noqa: E402
from core.solver import describe_rig, forward, solve  # noqa: E402
from tests.support.rigs import (SEGMENTS, angle_between, assert_no_flips, offsets_of, placed, rest_pose,  # noqa: E402
                                synthetic_motion)

FRAMES = slice(0, None, 8)  # the frames evaluated in Blender


@pytest.fixture(autouse=True)
def empty_scene():
    bpy.ops.wm.read_homefile(use_empty=True)


@pytest.fixture
def fixture_clip(fixture_dir) -> np.ndarray:
    return np.load(fixture_dir / "000000_joints.npy").astype(np.float64)


def read_rig(ob, preset=None):
    """The solver's view of an armature object, as the Blender side gathers it."""
    bones = ob.data.bones
    names = [b.name for b in bones]
    parents = [names.index(b.parent.name) if b.parent else -1 for b in bones]
    rest = np.array([np.array(b.matrix_local) for b in bones])
    return describe_rig(names, parents, rest, np.array(ob.matrix_world), preset=preset)


def evaluate(ob, pose, frames, turned=()):
    """Blender's evaluation of the solved matrix_basis at the given frames: (F, B, 3) world-space pose-bone
    heads, and for the bones named in `turned` their (F, 3, 3) world-space turn from rest."""
    ob.animation_data_clear()
    bones = ob.pose.bones
    for bone in bones:
        bone.rotation_mode = "QUATERNION"
    world = np.array(ob.matrix_world)
    linear = world[:3, :3] / np.cbrt(np.linalg.det(world[:3, :3]))
    heads = np.zeros((len(bones), 3), dtype=np.float32)
    out, turns = [], {name: [] for name in turned}
    for frame in frames:
        bones.foreach_set("rotation_quaternion", pose.rotations[frame].astype(np.float32).ravel())
        bones.foreach_set("location", pose.locations[frame].astype(np.float32).ravel())
        ob.update_tag()  # foreach_set does not tag the object for the depsgraph
        bpy.context.view_layer.update()
        bones.foreach_get("head", heads.ravel())
        out.append(heads @ world[:3, :3].T + world[:3, 3])
        for name in turned:
            delta = np.array(bones[name].matrix)[:3, :3] @ np.array(bones[name].bone.matrix_local)[:3, :3].T
            turns[name].append(linear @ delta @ linear.T)
    return np.array(out), {name: np.array(m) for name, m in turns.items()}


@pytest.mark.shared
def test_built_armature_lands_on_the_motion_in_blender(fixture_clip):
    ob = build_armature(rest_pose(offsets_of(fixture_clip[0]), "A", 10))
    rig = read_rig(ob)
    pose = solve(rig, fixture_clip)
    frames = range(len(fixture_clip))[FRAMES]
    blender, _ = evaluate(ob, pose, frames)
    np.testing.assert_allclose(blender, forward(rig, pose)[FRAMES], atol=1e-5)  # float32 in Blender
    joints = np.einsum("jb,fbc->fjc", rig.bone_map.weights, blender)
    error = np.linalg.norm(joints - placed(pose, fixture_clip)[FRAMES], axis=-1)
    assert error.max() < 1e-3


def checked_segments(rig, got, target, minimum=10) -> float:
    """Worst angle (degrees) between the rig's and the motion's segments joining directly mapped joints."""
    mapped = set(np.flatnonzero(np.isclose(rig.bone_map.weights.max(axis=1), 1.0)))
    checked = [(JOINT_INDEX[a], JOINT_INDEX[b]) for a, b in SEGMENTS if {JOINT_INDEX[a], JOINT_INDEX[b]} <= mapped]
    assert len(checked) >= minimum
    return max(angle_between(got[:, b] - got[:, a], target[:, b] - target[:, a]).max() for a, b in checked)


def perpendicular(v, axis):
    return v - (v * axis).sum(-1, keepdims=True) * axis / (axis * axis).sum(-1, keepdims=True)


@pytest.mark.shared
@pytest.mark.parametrize("name", list(RIGS))
def test_real_rigs_follow_the_motion_in_blender(fixture_clip, name):
    """Blender evaluates the pose as the numpy forward kinematics does; segments between directly mapped joints
    point where the motion's do; the pelvis is where the motion puts it (scaled to the rig); the rig's knee caps
    and elbow creases (its facing at rest) face where the motion's knees and elbows fold; its feet stay level."""
    ob = import_rig(name)
    rig = read_rig(ob)
    pose = solve(rig, fixture_clip)
    frames = range(len(fixture_clip))[FRAMES]
    limbs = [rig.bone_map.bones[JOINT_INDEX[f"{s}_{j}"]] for s in ("left", "right")
             for j in ("hip", "shoulder", "ankle")]
    blender, turns = evaluate(ob, pose, frames, limbs)
    size = np.ptp(blender[0], axis=0).max()
    assert np.abs(blender - forward(rig, pose)[FRAMES]).max() < 1e-5 * size
    world_turns = solver.world_turns(rig, pose)[FRAMES]
    for bone in limbs:  # the turns flips are measured by (tests/test_retarget_rigs.py), as Blender has them
        np.testing.assert_allclose(turns[bone], world_turns[:, rig.names.index(bone)], atol=1e-4)
    got = np.einsum("jb,fbc->fjc", rig.bone_map.weights, blender)
    target = placed(pose, fixture_clip)[FRAMES]
    assert checked_segments(rig, got, target) < 0.01
    assert np.linalg.norm(got[:, 0] - target[:, 0], axis=-1).max() < 1e-3 * pose.placement[2, 1]

    facing, up = np.array(RIGS[name][2], dtype=float), np.array([0.0, 0.0, 1.0])
    world = np.array(ob.matrix_world)
    rest = rig.bone_map.weights @ (rig.rest_matrices[:, :3, 3] @ world[:3, :3].T + world[:3, 3])
    for s in ("left", "right"):
        for upper, middle, lower, fold in (("hip", "knee", "ankle", -1), ("shoulder", "elbow", "wrist", 1)):
            a, b, c = (JOINT_INDEX[f"{s}_{j}"] for j in (upper, middle, lower))
            bone_axis, low = target[:, b] - target[:, a], target[:, c] - target[:, b]
            bent = angle_between(bone_axis, low) > 30
            assert bent.any()
            cap = perpendicular(turns[rig.bone_map.bones[a]] @ facing, bone_axis)
            assert angle_between(cap, fold * perpendicular(low, bone_axis))[bent].max() < 15, (s, middle)
        ankle = JOINT_INDEX[f"{s}_ankle"]
        rest_foot = rest[ankle + 3] - rest[ankle] if rig.bone_map.bones[ankle + 3] else facing
        side = turns[rig.bone_map.bones[ankle]] @ np.cross(up, rest_foot)
        toes = target[:, ankle + 3] - target[:, ankle]
        flat = np.abs(angle_between(toes, up) - 90) < 30
        assert flat.sum() > 5
        assert np.abs(angle_between(side, up)[flat] - 90).max() < 0.05  # float32 rigs
    assert_no_flips(solve(rig, synthetic_motion()), max_step_deg=30)


def test_rigify_controls_without_their_constraints():
    """A generated Rigify rig (706 bones; thighs hang from spine_fk.001, spine_fk.002 and the upper arms from mechanism
    bones) posed through its FK controls, constraints muted: the plain hierarchy lands on the motion. (With the
    constraints live the Blender side drives the controls from a proxy; docs/architecture.md, "Blender 5.0 facts".)"""
    import addon_utils
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    ob = bpy.data.objects["rig"]
    for bone in ob.pose.bones:
        for constraint in bone.constraints:
            constraint.mute = True
    rig = read_rig(ob)
    assert rig.bone_map.preset == "rigify" and len(rig.names) > 700
    motion = synthetic_motion()
    pose = solve(rig, motion)
    blender, _ = evaluate(ob, pose, range(len(motion))[FRAMES])
    assert np.abs(blender - forward(rig, pose)[FRAMES]).max() < 1e-5
    got = np.einsum("jb,fbc->fjc", rig.bone_map.weights, blender)
    assert checked_segments(rig, got, placed(pose, motion)[FRAMES], minimum=14) < 0.01
