"""HumanML3D's 263-d motion features <-> 22-joint positions (docs/momask.md, "Motion features"), in numpy.

`joints_to_features` re-implements HumanML3D's `process_file` (including its quirks, so features of HumanML3D
joints match the released data) and `recover_from_ric` its inverse on positions. Mirroring works on either
form. Pure numpy/scipy; no torch.
"""
import numpy as np
from scipy.ndimage import gaussian_filter1d

from .quaternion import qbetween, qinv, qmul, qrot, quat_to_cont6d
from .skeleton import (FACE_JOINTS, FOOT_CONTACT_JOINTS, JOINT_NAMES, KINEMATIC_CHAINS, LEFT_FOOT_JOINTS,
                           LEG_LENGTH_JOINTS, MIRROR_PERMUTATION, NUM_JOINTS, PARENTS, RAW_OFFSETS,
                           RIGHT_FOOT_JOINTS, TARGET_BONE_LENGTHS, TARGET_OFFSETS)

_J = NUM_JOINTS
ROOT_ROT_VEL = slice(0, 1)
ROOT_LIN_VEL = slice(1, 3)
ROOT_Y = slice(3, 4)
RIC = slice(4, 4 + 3 * (_J - 1))
ROT6D = slice(RIC.stop, RIC.stop + 6 * (_J - 1))
LOCAL_VEL = slice(ROT6D.stop, ROT6D.stop + 3 * _J)
CONTACTS = slice(LOCAL_VEL.stop, LOCAL_VEL.stop + len(FOOT_CONTACT_JOINTS))
FEATURE_DIM = CONTACTS.stop  # 263

FORWARD_SMOOTHING_SIGMA = 20.0  # frames; HumanML3D smooths the per-frame facing before building q_t
_UP = np.array([0.0, 1.0, 0.0])
_FORWARD = np.array([0.0, 0.0, 1.0])
_X_MIRROR = np.array([-1.0, 1.0, 1.0])

# Joint whose accumulated rotation a joint's IK rotation is relative to: the previous joint of its kinematic
# chain, except that the second joint of every chain (also the arms, which start at spine3) is relative to
# the root's facing rotation, as in HumanML3D's Skeleton.inverse_kinematics_np.
_IK_REFERENCE = np.zeros(_J, dtype=int)
for _chain in KINEMATIC_CHAINS:
    for _prev, _joint in zip(_chain[1:-1], _chain[2:]):
        _IK_REFERENCE[_joint] = _prev


def _check_features(features: np.ndarray, min_ndim: int = 1) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim < min_ndim or features.shape[-1] != FEATURE_DIM:
        shape = ", ".join(["T"][:min_ndim - 1] + [str(FEATURE_DIM)])
        raise ValueError(f"expected features of shape (..., {shape}), got {features.shape}")
    return features


def _check_joints(joints: np.ndarray) -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (_J, 3):
        raise ValueError(f"expected joints of shape (T, {_J}, 3), got {joints.shape}")
    if len(joints) < 2:
        raise ValueError(f"need at least 2 frames to compute features, got {len(joints)}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")
    bones = np.linalg.norm(joints[:, 1:] - joints[:, PARENTS[1:]], axis=-1)
    if (bones < 1e-8).any():
        frame, joint = np.argwhere(bones < 1e-8)[0]
        raise ValueError(f"joint {joint + 1} ({JOINT_NAMES[joint + 1]}) coincides with its parent at frame "
                         f"{frame}: bone of zero length")
    return joints


def _facing_rotation(joints: np.ndarray, across_sign: np.ndarray, smooth: bool) -> np.ndarray:
    """(..., 22, 3) -> (..., 4): yaw rotation taking each frame's forward direction to +z.

    across = sign_hip * (r_hip - l_hip) + sign_shoulder * (r_shoulder - l_shoulder); forward = up x across.
    """
    r_hip, l_hip, r_sdr, l_sdr = FACE_JOINTS
    across = (across_sign[0] * (joints[..., r_hip, :] - joints[..., l_hip, :])
              + across_sign[1] * (joints[..., r_sdr, :] - joints[..., l_sdr, :]))
    across = across / np.linalg.norm(across, axis=-1, keepdims=True)
    forward = np.cross(_UP, across)
    flat = np.linalg.norm(forward, axis=-1) > 1e-9
    if not flat.all():
        frame = np.argwhere(~np.atleast_1d(flat))[0][0]
        raise ValueError(f"cannot tell which way the body faces at frame {frame}: hips and shoulders are "
                         "aligned vertically (or coincide)")
    if smooth:
        forward = gaussian_filter1d(forward, FORWARD_SMOOTHING_SIGMA, axis=0, mode="nearest")
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    return qbetween(forward, _FORWARD)


def _ik_root_rotation(joints: np.ndarray, smooth: bool) -> np.ndarray:
    """(F, 4) root rotation of HumanML3D's IK: its facing with the hip term reversed (left - right, a quirk
    copied for exact features), frame 0 set to identity."""
    root = _facing_rotation(joints, np.array([-1.0, 1.0]), smooth)
    root[0] = (1.0, 0.0, 0.0, 0.0)
    return root


def inverse_kinematics(joints: np.ndarray, root_rotation: np.ndarray) -> np.ndarray:
    """(F, 22, 3) positions -> (F, 22, 4) local rotations: each bone's shortest arc from its rest direction,
    relative to its IK reference joint's accumulated rotation (no twist). Joint 0 gets root_rotation."""
    bones = joints[:, 1:] - joints[:, PARENTS[1:]]
    bones = bones / np.linalg.norm(bones, axis=-1, keepdims=True)
    global_rot = np.concatenate([root_rotation[:, None], qbetween(RAW_OFFSETS[1:], bones)], axis=1)
    local = qmul(qinv(global_rot[:, _IK_REFERENCE]), global_rot)
    local[:, 0] = root_rotation
    return local


def forward_kinematics(local: np.ndarray, root_positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(F, 22, 4) local rotations (as inverse_kinematics makes them), (F, 3) root, (22, 3) rest offsets
    -> (F, 22, 3) positions."""
    global_rot = np.empty_like(local)
    global_rot[:, 0] = local[:, 0]
    joints = np.empty(local.shape[:-1] + (3,))
    joints[:, 0] = root_positions
    for j in range(1, _J):  # parents precede children
        global_rot[:, j] = qmul(global_rot[:, _IK_REFERENCE[j]], local[:, j])
        joints[:, j] = joints[:, PARENTS[j]] + qrot(global_rot[:, j], offsets[j])
    return joints


def uniform_skeleton(joints: np.ndarray) -> np.ndarray:
    """Re-pose the motion on HumanML3D's target skeleton; the root path is scaled by the leg-length ratio."""
    bone_lengths = np.linalg.norm(joints[0, LEG_LENGTH_JOINTS] - joints[0, PARENTS[list(LEG_LENGTH_JOINTS)]],
                                  axis=-1)
    scale = TARGET_BONE_LENGTHS[list(LEG_LENGTH_JOINTS)].sum() / bone_lengths.sum()
    local = inverse_kinematics(joints, _ik_root_rotation(joints, smooth=False))
    return forward_kinematics(local, joints[:, 0] * scale, TARGET_OFFSETS)


def canonical_joints(joints: np.ndarray) -> np.ndarray:
    """(F, 22, 3) -> (F, 22, 3) on the target skeleton, on the floor, frame 0's root at x = z = 0 and facing
    +z: the motion that joints_to_features describes and recover_from_ric gives back."""
    positions = uniform_skeleton(_check_joints(joints))
    positions[..., 1] -= positions[..., 1].min()
    positions -= positions[0, 0] * np.array([1.0, 0.0, 1.0])
    return qrot(_facing_rotation(positions[0], np.array([1.0, 1.0]), smooth=False), positions)


def joints_to_features(joints: np.ndarray, feet_threshold: float = 0.002) -> np.ndarray:
    """(F, 22, 3) joint positions (metres, y up, 20 fps) -> (F-1, 263) features, as HumanML3D's process_file."""
    positions = canonical_joints(joints)

    def contacts(feet):
        return ((positions[1:, feet] - positions[:-1, feet]) ** 2).sum(-1) < feet_threshold

    root_rot = _ik_root_rotation(positions, smooth=True)
    rot6d = quat_to_cont6d(inverse_kinematics(positions, root_rot)[:-1, 1:])
    root_vel = qrot(root_rot[1:], positions[1:, 0] - positions[:-1, 0])
    yaw_vel = np.arcsin(qmul(root_rot[1:], qinv(root_rot[:-1]))[:, 2])
    ric = positions[:-1, 1:] - positions[:-1, :1] * np.array([1.0, 0.0, 1.0])
    ric = qrot(root_rot[:-1, None], ric)
    local_vel = qrot(root_rot[:-1, None], positions[1:] - positions[:-1])
    frames = len(positions) - 1
    return np.concatenate([
        yaw_vel[:, None], root_vel[:, [0, 2]], positions[:-1, 0, 1:2],
        ric.reshape(frames, -1), rot6d.reshape(frames, -1), local_vel.reshape(frames, -1),
        contacts(list(LEFT_FOOT_JOINTS)), contacts(list(RIGHT_FOOT_JOINTS)),
    ], axis=-1)


def recover_from_ric(features: np.ndarray) -> np.ndarray:
    """(..., T, 263) features -> (..., T, 22, 3) joints from the root and ric slices (docs/momask.md, "Motion
    features")."""
    f = np.asarray(_check_features(features, min_ndim=2), dtype=np.float64)
    yaw = np.cumsum(f[..., :-1, 0], axis=-1)
    yaw = np.concatenate([np.zeros_like(yaw[..., :1]), yaw], axis=-1)
    inv_rot = np.zeros(yaw.shape + (4,))
    inv_rot[..., 0], inv_rot[..., 2] = np.cos(yaw), -np.sin(yaw)
    step = np.zeros(f.shape[:-1] + (3,))
    step[..., 1:, [0, 2]] = f[..., :-1, ROOT_LIN_VEL]
    root = np.cumsum(qrot(inv_rot, step), axis=-2)
    root[..., 1] = f[..., 3]
    ric = f[..., RIC].reshape(f.shape[:-1] + (_J - 1, 3))
    joints = qrot(inv_rot[..., None, :], ric) + (root * np.array([1.0, 0.0, 1.0]))[..., None, :]
    return np.concatenate([root[..., None, :], joints], axis=-2)


def foot_contacts(features: np.ndarray) -> np.ndarray:
    """(..., 263) -> (..., 4) contact flags in FOOT_CONTACT_JOINTS order (l_ankle, l_foot, r_ankle, r_foot)."""
    return _check_features(features)[..., CONTACTS]


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """Reflect across the body's sagittal plane: negate x and swap left/right joints (HumanML3D's "M" clips)."""
    joints = np.asarray(joints)
    if joints.ndim < 2 or joints.shape[-2:] != (_J, 3):
        raise ValueError(f"expected joints of shape (..., {_J}, 3), got {joints.shape}")
    return joints[..., MIRROR_PERMUTATION, :] * _X_MIRROR


def _mirror_map():
    """Source index and sign of every feature dimension under mirroring."""
    src = np.arange(FEATURE_DIM)
    sign = np.ones(FEATURE_DIM)
    sign[ROOT_ROT_VEL] = -1.0  # yaw turns the other way
    sign[ROOT_LIN_VEL.start] = -1.0  # x
    perm = MIRROR_PERMUTATION[1:] - 1
    # A rotation R conjugated by the reflection M = diag(-1, 1, 1): columns of M R M are (-M R e0, M R e1).
    for sl, width, signs in ((RIC, 3, _X_MIRROR), (ROT6D, 6, [1, -1, -1, -1, 1, 1])):
        src[sl] = (sl.start + width * perm[:, None] + np.arange(width)).ravel()
        sign[sl] = np.tile(signs, _J - 1)
    src[LOCAL_VEL] = (LOCAL_VEL.start + 3 * MIRROR_PERMUTATION[:, None] + np.arange(3)).ravel()
    sign[LOCAL_VEL] = np.tile(_X_MIRROR, _J)
    src[CONTACTS] = CONTACTS.start + np.array(
        [FOOT_CONTACT_JOINTS.index(MIRROR_PERMUTATION[j]) for j in FOOT_CONTACT_JOINTS])
    return src, sign


_MIRROR_SOURCE, _MIRROR_SIGN = _mirror_map()


def mirror_features(features: np.ndarray) -> np.ndarray:
    """Features of the mirrored motion, computed on the 263-d vectors directly (..., 263) -> (..., 263)."""
    return _check_features(features)[..., _MIRROR_SOURCE] * _MIRROR_SIGN
