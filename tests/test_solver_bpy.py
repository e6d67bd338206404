"""Joints -> bone rotations inside Blender (the bpy 5.0.1 module): the quaternions and locations written into
pose bones make Blender's own evaluation put the bones where the solve said, on an armature built with edit
bones and on the real rigs of ../shared/rigs (UE5 FBX, Quaternius glTF and .blend, CesiumMan, CMU, Z-up and
SMPL-template BVH)."""
import numpy as np
import pytest

from core.skeleton import JOINT_INDEX, PARENTS
from core import solver
from core.solver import describe_rig, forward, solve
from tests.conftest import shared_path
from tests.test_solver import (MIXAMO, SEGMENTS, angle_between, assert_no_flips, offsets_of, placed, rest_pose,
                               synthetic_motion)

bpy = pytest.importorskip("bpy")
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


def build_armature(joints: np.ndarray, scale=0.01, seed=0):
    """A Mixamo-named armature made with edit bones at (22, 3) rest joints (HumanML3D frame, metres): an FBX-like
    object (scale 0.01, rotated X +90 deg, bones in centimetres, y up inside), tails towards the first child or
    along the parent, random rolls."""
    rng = np.random.default_rng(seed)
    armature = bpy.data.armatures.new("Mixamo")
    ob = bpy.data.objects.new("Mixamo", armature)
    bpy.context.scene.collection.objects.link(ob)
    ob.scale = (scale,) * 3
    ob.rotation_euler = (np.pi / 2, 0.0, 0.0)
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode="EDIT")
    inner = joints / scale  # X +90 deg is HUMANML3D_TO_BLENDER: inside the object the body is y up, as in FBX
    edit = {}
    for j, name in enumerate(MIXAMO):
        bone = armature.edit_bones.new(name)
        children = np.flatnonzero(PARENTS == j)
        direction = (inner[children[0]] - inner[j] if len(children)
                     else inner[j] - inner[PARENTS[j]])
        bone.head, bone.tail = inner[j], inner[j] + direction / np.linalg.norm(direction) * 5.0
        bone.roll = rng.uniform(-np.pi, np.pi)
        if j:
            bone.parent = edit[MIXAMO[PARENTS[j]]]
        edit[name] = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    return ob


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


# name: file, importer, the way the rig faces in world space (rigs/README.md)
RIGS = {
    "ue5": ("ue5_quaternius_ubc_superhero_male.fbx", "fbx", (0, 1, 0)),
    "quaternius_modular": ("quaternius_modular_men_casual.glb", "gltf", (0, -1, 0)),
    "quaternius_2019_ik": ("quaternius_2019_male_casual_ikrig.blend", "blend", (0, -1, 0)),
    "cesiumman": ("apose_khronos_cesiumman.glb", "gltf", (0, -1, 0)),
    "cmu_bvh": ("bvh_cmu_12_01_walk_mobu.bvh", "bvh", (0, -1, 0)),
    "zup_bvh": ("bvh_zup_nomixamoprefix.bvh", "bvh_zup", (0, 1, 0)),
    "smpl22_bvh": ("bvh_smpl22_humanml3d_momask_template.bvh", "bvh", (0, -1, 0)),
}


def import_rig(name):
    """The rig's armature object, IK constraints muted (the Quaternius 2019 legs' IK would override keys)."""
    path = str(shared_path("rigs", RIGS[name][0]))
    {"fbx": lambda: bpy.ops.import_scene.fbx(filepath=path),
     "gltf": lambda: bpy.ops.import_scene.gltf(filepath=path),
     "blend": lambda: bpy.ops.wm.open_mainfile(filepath=path),
     "bvh": lambda: bpy.ops.import_anim.bvh(filepath=path),
     "bvh_zup": lambda: bpy.ops.import_anim.bvh(filepath=path, axis_up="Z", axis_forward="Y")}[RIGS[name][1]]()
    ob = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    for bone in ob.pose.bones:
        for constraint in bone.constraints:
            constraint.mute = True
    return ob


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
    assert checked_segments(rig, got, placed(pose, motion)[FRAMES], minimum=15) < 0.01
