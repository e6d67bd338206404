"""Synthetic rigs and motions in numpy: HumanML3D's subject in any rest pose, armatures built on it in any
placement, a motion turning through every facing, and the checks of a solve."""
import numpy as np
from scipy.spatial.transform import Rotation

from core.features import canonical_joints, foot_contacts, joints_to_features
from core.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS, TARGET_OFFSETS
from core.solver import HUMANML3D_TO_BLENDER, REST_FOOT_PITCH, describe_rig

MIXAMO = ("Hips LeftUpLeg RightUpLeg Spine LeftLeg RightLeg Spine1 LeftFoot RightFoot Spine2 LeftToeBase "
          "RightToeBase Neck LeftShoulder RightShoulder Head LeftArm RightArm LeftForeArm RightForeArm LeftHand "
          "RightHand").split()
BONE = dict(zip(JOINT_NAMES, MIXAMO))
SIDES = ("left", "right")
# Segments whose direction a solve must reproduce whatever the proportions: the limbs, the pelvis -> neck (the
# spine's bend and lean) and the head. (The shoulder line follows within a few degrees: tests/support/retarget.py.)
LIMB_SEGMENTS = [(f"{s}_{a}", f"{s}_{b}") for s in SIDES for a, b in
                 (("hip", "knee"), ("knee", "ankle"), ("ankle", "foot"), ("collar", "shoulder"), ("shoulder", "elbow"),
                  ("elbow", "wrist"))]
SEGMENTS = LIMB_SEGMENTS + [("pelvis", "neck"), ("neck", "head")]
# Marker bones (unmapped leaves) that show how a bone turned: a knee cap and an elbow crease (forward of the
# joint, on the upper bone), and a point left of the ankle (on the foot).
MARKER = 0.1


def turn(axis: str, degrees) -> np.ndarray:
    """Rotation matrices about one axis, (3, 3) or (N, 3, 3) for N angles."""
    return Rotation.from_euler(axis, np.asarray(degrees, dtype=float)[..., None], degrees=True).as_matrix()


def angle_between(a, b) -> np.ndarray:
    """Degrees between vectors along the last axis."""
    a, b = np.broadcast_arrays(a, b)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), (a * b).sum(-1)))


# ------------------------------------------------------------------------------------------------- motions
def offsets_of(joints: np.ndarray) -> np.ndarray:
    """Each joint's offset from its parent in one (22, 3) pose (the pelvis' own position first)."""
    offsets = joints - joints[PARENTS]
    offsets[0] = joints[0]
    return offsets


def compose(offsets: np.ndarray) -> np.ndarray:
    """(22, 3) joints from offsets, the pelvis 0.95 m up."""
    joints = np.zeros((22, 3))
    for j in range(1, 22):
        joints[j] = joints[PARENTS[j]] + offsets[j]
    return joints + (0.0, 0.95, 0.0)


def body_frame(joints: np.ndarray):
    """(left, up, front) of a (22, 3) pose in HumanML3D's frame (y up), left from the hips and shoulders, level:
    the solver's convention for which way a rig faces."""
    up = np.array([0.0, 1.0, 0.0])
    left = sum((joints[JOINT_INDEX["left_" + j]] - joints[JOINT_INDEX["right_" + j]]) /
               np.linalg.norm(joints[JOINT_INDEX["left_" + j]] - joints[JOINT_INDEX["right_" + j]])
               for j in ("hip", "shoulder")) * (1, 0, 1)
    left /= np.linalg.norm(left)
    return left, up, np.cross(left, up)


def rest_pose(offsets: np.ndarray, arms="T", knee_bend=0.0) -> np.ndarray:
    """(22, 3) joints (HumanML3D frame) with the bone lengths and torso shape of `offsets`, the upper arms and
    forearms "T", "A" (27 deg down) or "down", the legs straight down or bent forward by knee_bend degrees."""
    left, up, front = body_frame(compose(offsets))
    directions = offsets.copy()
    arm, bend = np.radians({"T": 0.0, "A": 27.0, "down": 90.0}[arms]), np.radians(knee_bend)
    for j, name in enumerate(JOINT_NAMES):
        length, side = np.linalg.norm(offsets[j]), (1.0 if name.startswith("left_") else -1.0)
        if name.endswith(("elbow", "wrist")):
            directions[j] = length * (side * np.cos(arm) * left - np.sin(arm) * up)
        elif name.endswith("knee"):
            directions[j] = length * (-np.cos(bend) * up + np.sin(bend) * front)
        elif name.endswith("ankle"):
            directions[j] = length * (-np.cos(bend) * up - np.sin(bend) * front)
    return compose(directions)


def synthetic_motion(frames=240) -> np.ndarray:
    """(T, 22, 3) joints by forward kinematics on HumanML3D's target skeleton (arms down): two full turns around
    a circle (every facing), knees from straight to 120 deg, arms from down to overhead with their elbows folding
    and straightening and the upper arms twisting, the spine bending and twisting."""
    t = np.arange(frames)
    turn_phase, step = 2 * np.pi * t / frames, 2 * np.pi * t / 40
    local = np.broadcast_to(np.eye(3), (frames, 22, 3, 3)).copy()
    local[:, 0] = turn("y", np.degrees(2 * turn_phase)) @ turn("x", 10 * np.sin(step))
    for j, name in enumerate(JOINT_NAMES):
        side = 1.0 if name.startswith("left_") else -1.0
        phase = step + (0 if side > 0 else np.pi)
        if name.endswith("_hip"):
            local[:, j] = turn("x", -50 * np.sin(phase) - 20) @ turn("y", side * 20 * np.sin(turn_phase))
        elif name.endswith("_knee"):
            local[:, j] = turn("x", 60 - 60 * np.cos(phase))
        elif name.endswith("_ankle"):
            local[:, j] = turn("x", 20 * np.sin(phase))
        elif name.startswith("spine"):
            local[:, j] = turn("x", 12 * np.sin(turn_phase)) @ turn("y", 15 * np.sin(step / 3))
        elif name.endswith("_shoulder"):  # the skeleton's arms hang down
            raise_arm = side * (85 - 85 * np.cos(turn_phase * 1.5))  # from down to overhead, sideways
            swing_twist = turn("x", -40 * np.sin(phase)) @ turn("y", side * 30 * np.sin(step / 2))
            local[:, j] = turn("z", raise_arm) @ swing_twist
        elif name.endswith("_elbow"):
            local[:, j] = turn("x", -(70 - 70 * np.cos(phase / 2)))
    offsets = TARGET_OFFSETS.copy()
    offsets[0] = (0.0, 0.95, 0.0)
    world = np.empty_like(local)
    joints = np.zeros((frames, 22, 3))
    for j in range(22):
        parent = PARENTS[j]
        if parent < 0:
            world[:, j], joints[:, j] = local[:, j], offsets[0] + np.stack(
                [1.5 * np.sin(turn_phase), 0.05 * np.sin(2 * step), 1.5 * np.cos(turn_phase)], -1)
        else:
            world[:, j] = world[:, parent] @ local[:, j]
            joints[:, j] = joints[:, parent] + world[:, parent] @ offsets[j]
    return joints


# ---------------------------------------------------------------------------------------------------- rigs
# Object transforms, as (world matrix, armature-space rotation of the Blender-frame body, armature unit per metre).
TRANSFORMS = {
    "plain": (np.eye(4), np.eye(3), 1.0),
    # a Mixamo FBX: 0.01-scaled object rotated X +90 deg, bones in centimetres with y up inside
    "fbx_cm": (np.diag([0.01, 0.01, 0.01, 1.0]) @ np.block([[turn("x", 90), np.zeros((3, 1))], [0, 0, 0, 1]]),
               turn("x", -90), 100.0),
    # a glTF under an empty: 100-scaled, 1 cm bones, moved and turned in the world
    "scaled_100_in_empty": (np.block([[100 * turn("z", 37) @ turn("x", -90), np.array([[2.0], [-3.0], [0.5]])],
                                      [0, 0, 0, 1]]), turn("x", 90) @ turn("z", -37), 0.01),
    "turned_180": (np.block([[turn("z", 180), np.zeros((3, 1))], [0, 0, 0, 1]]), np.eye(3), 1.0),
    "facing_plus_y": (np.eye(4), turn("z", 180), 1.0),  # the body faces +y inside the armature (UE)
}


def build_rig(joints: np.ndarray, transform="plain", extras=(), toes=True, ik_feet=False, seed=0,
              arms_forward=None):
    """A RigDescription of Mixamo-named bones at (22, 3) rest joints (HumanML3D frame), every rest matrix with
    a random rotation (any roll, any tail), plus markers and `extras` [(name, parent, position)]."""
    world, inner, unit = TRANSFORMS[transform]
    _, up, front = body_frame(joints)
    bones = [(BONE[name], BONE[JOINT_NAMES[PARENTS[j]]] if j else None, joints[j])
             for j, name in enumerate(JOINT_NAMES) if toes or not name.endswith("_foot")]
    for s in ("Left", "Right"):
        side = s.lower()
        ankle = joints[JOINT_INDEX[f"{side}_ankle"]]
        foot = joints[JOINT_INDEX[f"{side}_foot"]] - ankle
        if not toes:  # the foot's tip, pitched like HumanML3D's standing foot
            foot = np.cos(REST_FOOT_PITCH) * front - np.sin(REST_FOOT_PITCH) * up
            bones.append((f"{s}FootTip", f"{s}Foot", ankle + MARKER * foot))
        bones += [(f"{s}KneeCap", f"{s}UpLeg", joints[JOINT_INDEX[f"{side}_knee"]] + MARKER * front),
                  (f"{s}ElbowCrease", f"{s}Arm", joints[JOINT_INDEX[f"{side}_elbow"]] + MARKER * front),
                  (f"{s}FootSide", f"{s}Foot", ankle + MARKER * np.cross(up, foot) / np.linalg.norm(foot))]
    bones += list(extras)
    if ik_feet:
        bones = [(n, "root" if n in ("LeftFoot", "RightFoot") else p, at) for n, p, at in bones]
    names = [name for name, _, _ in bones]
    parents = [names.index(parent) if parent else -1 for _, parent, _ in bones]
    rest = np.tile(np.eye(4), (len(bones), 1, 1))
    rest[:, :3, :3] = Rotation.random(len(bones), random_state=seed).as_matrix()
    rest[:, :3, 3] = np.array([at for _, _, at in bones]) @ (inner @ HUMANML3D_TO_BLENDER).T * unit
    return describe_rig(names, parents, rest, world)


def placed(pose, joints: np.ndarray) -> np.ndarray:
    """The motion's joints in world space, as the solve placed them."""
    return joints @ pose.placement[:3, :3].T + pose.placement[:3, 3]


def assert_no_flips(pose, max_step_deg):
    dots = (pose.rotations[1:] * pose.rotations[:-1]).sum(-1)
    assert dots.min() > 0
    step = np.degrees(2 * np.arccos(np.clip(dots, -1, 1)))
    assert step.max() < max_step_deg, f"largest frame-to-frame turn {step.max():.1f} deg"


def with_contacts(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A clip as HumanML3D processes it (its target skeleton, on the floor) and the contacts its features give."""
    joints = canonical_joints(joints)
    return joints[:-1], foot_contacts(joints_to_features(joints)) > 0.5
