"""The built-in MoMask rig: a clean 22-bone armature for users without a character of their own.

Its bones are the 22 SMPL joints by name (so the bone map's `smplx` preset finds them) with HumanML3D's bone
lengths and the shape of its subject's pelvis and chest, so a generated motion lands on it joint for joint.
Rest pose: a T-pose with straight legs, feet pitched like HumanML3D's standing subject. Rolls follow the
usual Blender convention: each bone's X axis is its bend axis (knees, elbows, spine fold about X), Z points
forward (feet and toes: up)."""
import bpy
import numpy as np

from ._core import skeleton, solver

JOINT_NAMES, PARENTS = skeleton.JOINT_NAMES, skeleton.PARENTS

# Unit directions of each joint from its parent in HumanML3D's frame (x: the body's left, y: up, z: forward);
# right-side joints mirror their left ones, the others point up. The joints around the pelvis (hips, spine1)
# and around spine3 (collars, neck) take the directions of HumanML3D's subject (processed clip 000000, frame
# 0, left and right averaged): a motion's pelvis and chest are rigid shapes that a rig follows exactly only
# when its own have the same angles. Every other bone has a child of its own to aim at, so the pose is free:
# a T-pose with straight legs.
_LEFT_DIRECTIONS = {
    "left_hip": (0.5566, -0.8254, -0.0938), "spine1": (0.0, 0.9439, -0.3301),
    "left_collar": (0.5192, 0.8461, -0.1205), "neck": (0.0, 0.9937, -0.1122),
    "left_knee": (0.0, -1.0, 0.0), "left_ankle": (0.0, -1.0, 0.0),
    "left_foot": (0.0, -np.sin(solver.REST_FOOT_PITCH), np.cos(solver.REST_FOOT_PITCH)),
    "left_shoulder": (1.0, 0.0, 0.0), "left_elbow": (1.0, 0.0, 0.0), "left_wrist": (1.0, 0.0, 0.0),
}
_UP = (0.0, 1.0, 0.0)
# Lengths of the bones that end the chains (no child joint to point at): head, hands, toes.
_LEAF_LENGTHS = {"head": 0.2, "left_wrist": 0.08, "right_wrist": 0.08, "left_foot": 0.05, "right_foot": 0.05}
RIG_NAME = "MoMask Rig"


def _direction(name: str) -> np.ndarray:
    if name.startswith("right_"):
        direction = np.array(_LEFT_DIRECTIONS["left_" + name[6:]]) * (-1.0, 1.0, 1.0)
    else:
        direction = np.array(_LEFT_DIRECTIONS.get(name, _UP))
    return direction / np.linalg.norm(direction)


def rest_joints() -> np.ndarray:
    """(22, 3) rest joint positions in Blender's frame (metres, z up, facing -y), the toes on the ground and the
    pelvis above the origin."""
    offsets = [np.zeros(3)] + [skeleton.TARGET_BONE_LENGTHS[j] * _direction(name)
                               for j, name in enumerate(JOINT_NAMES[1:], start=1)]
    joints = skeleton.rest_positions(np.array(offsets)) @ solver.HUMANML3D_TO_BLENDER.T
    joints[:, 2] -= joints[:, 2].min()
    return joints


def rest_tails(joints: np.ndarray) -> np.ndarray:
    """(22, 3) bone tails: each bone ends at its torso child (pelvis -> spine1, spine3 -> neck) or only child;
    chain ends (head, hands, toes) continue their parent bone's direction by _LEAF_LENGTHS."""
    tails = np.empty_like(joints)
    for j, name in enumerate(JOINT_NAMES):
        children = list(np.flatnonzero(PARENTS == j))
        torso = [c for c in children if not JOINT_NAMES[c].startswith(("left_", "right_"))]
        if children:
            tails[j] = joints[(torso or children)[0]]
        else:
            step = joints[j] - joints[PARENTS[j]]
            tails[j] = joints[j] + _LEAF_LENGTHS[name] * step / np.linalg.norm(step)
    return tails


def build_rig(context, name: str = RIG_NAME) -> bpy.types.Object:
    """A new armature object with the MoMask rig at the 3D cursor, linked to the active collection, the only
    selected object and active, in object mode."""
    joints = rest_joints()
    tails = rest_tails(joints)
    armature = context.blend_data.armatures.new(name)
    ob = context.blend_data.objects.new(name, armature)
    context.collection.objects.link(ob)
    ob.location = context.scene.cursor.location
    for other in context.selected_objects:
        other.select_set(False)
    ob.select_set(True)
    context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode="EDIT")
    edit = []
    for j, bone_name in enumerate(JOINT_NAMES):
        bone = armature.edit_bones.new(bone_name)
        bone.head, bone.tail = joints[j], tails[j]
        bone.align_roll((0.0, 0.0, 1.0) if bone_name.endswith(("_ankle", "_foot")) else (0.0, -1.0, 0.0))
        if j:
            bone.parent = edit[PARENTS[j]]
            bone.use_connect = bool(np.allclose(tails[PARENTS[j]], joints[j]))
        edit.append(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    return ob
