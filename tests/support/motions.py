"""A synthetic motion in HumanML3D joints: a turning, bobbing figure of its own proportions."""
import numpy as np
from scipy.spatial.transform import Rotation

from core.features import forward_kinematics
from core.skeleton import TARGET_OFFSETS


def synthetic_motion(frames=80, seed=0):
    """A turning, bobbing figure on a skeleton 0.9-1.2x the target's, each joint swinging about its own axis."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / 20.0
    axes = rng.normal(size=(22, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = rng.uniform(0.1, 0.4, 22) * np.sin(2 * np.pi * rng.uniform(0.5, 1.5, 22) * t + rng.uniform(0, 6, 22))
    local = Rotation.from_rotvec((angles[..., None] * axes).reshape(-1, 3)).as_quat(scalar_first=True)
    local = local.reshape(frames, 22, 4)
    yaw = 0.8 * t[:, 0] + 0.5
    local[:, 0] = np.stack([np.cos(yaw / 2), 0 * yaw, np.sin(yaw / 2), 0 * yaw], axis=-1)
    root = np.stack([2 * np.sin(yaw), 1.0 + 0.03 * np.sin(7 * t[:, 0]), 2 * (1 - np.cos(yaw))], axis=-1)
    return forward_kinematics(local, root, TARGET_OFFSETS * rng.uniform(0.9, 1.2, (22, 1)))
