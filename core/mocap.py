"""Any humanoid BVH -> the 22 SMPL joints MoMask speaks: metres, y up, a chosen frame rate.

The bone map (core.bonemap) says which file joints make each SMPL joint; this module settles what the map
cannot: the file's up axis, its unit, and its frame rate. Pure numpy/scipy; no torch.
"""
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from core.bonemap import UnmappableSkeletonError, map_skeleton
from core.bvh import Bvh, read_bvh
from core.skeleton import JOINT_INDEX, LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS
from core.timebase import resample

# Units a mocap file is likely written in, tried in this order: metres per file unit.
UNITS = (("m", 1.0), ("cm", 0.01), ("mm", 0.001), ("inch", 0.0254), ("foot", 0.3048))
# Standing height (head joint to lowest foot joint, in metres) that makes a unit plausible for an adult or a
# teenager; the head joint sits ~0.15 m below the top of the head.
PLAUSIBLE_STANDING_HEIGHT = (1.0, 2.3)
# Used when no unit fits: HumanML3D's subject measures 1.57 m head joint to floor (fixture 000000 standing),
# a person about 1.7 m tall.
DEFAULT_STANDING_HEIGHT = 1.55
# Right-handed quarter turn about +x taking a Z-up file to y up: (x, y, z) -> (x, z, -y).
Z_UP_TO_Y_UP = Rotation.from_euler("x", -90, degrees=True).as_matrix()
_AXES = {"y": 1, "z": 2}
_FEET = list(LEFT_FOOT_JOINTS + RIGHT_FOOT_JOINTS)
_UPRIGHT_COSINE = np.cos(np.radians(45))


def _standing_height(joints: np.ndarray) -> np.ndarray:
    """Head joint above the lowest foot joint (y up) of (F, 22, 3) joints, per frame."""
    return joints[:, JOINT_INDEX["head"], 1] - joints[:, _FEET, 1].min(axis=1)


def _upright_axis(joints: np.ndarray, candidates: list[str]) -> str | None:
    """The candidate axis that the pelvis -> head direction of (22, 3) joints points along, if any."""
    spine = joints[JOINT_INDEX["head"]] - joints[JOINT_INDEX["pelvis"]]
    length = np.linalg.norm(spine)
    return next((axis for axis in candidates if spine[_AXES[axis]] > _UPRIGHT_COSINE * length), None)


def _map_standing_pose(bvh: Bvh, rotations: np.ndarray, positions: np.ndarray, up: str):
    """Map the skeleton on its rest pose, or on frame 0 where the rest pose is not a standing body (zero
    rotations lay Bandai-Namco's bones along their parents' x axes). Returns (pose name, (1, J, 3, 3)
    rotations and (1, J, 3) positions of the pose, bone map, up axis)."""
    candidates = ["y", "z"] if up == "auto" else [up]
    errors, seen = [], []
    rest = (np.broadcast_to(np.eye(3), (1, len(bvh.names), 3, 3)), bvh.rest_positions()[None])
    for pose_name, (pose_rotations, pose) in (("the rest pose", rest), ("frame 0", (rotations[:1], positions[:1]))):
        try:
            bone_map = map_skeleton(bvh.names, bvh.parents, pose[0])
        except UnmappableSkeletonError as err:
            errors.append(err)
            continue
        joints = bone_map.weights @ pose[0]
        axis = _upright_axis(joints, candidates)
        if axis is not None:
            return pose_name, pose_rotations, pose, bone_map, axis
        spine = joints[JOINT_INDEX["head"]] - joints[JOINT_INDEX["pelvis"]]
        seen.append(f"{pose_name} {np.round(spine / np.linalg.norm(spine), 2).tolist()}")
    if errors and not seen:
        raise errors[0]
    raise ValueError(f"{bvh.source}: the body is not upright along {' or '.join('+' + a for a in candidates)} "
                     f"(pelvis -> head direction: {'; '.join(seen)}); pass up='y' or up='z'")


def _smpl_joints(bvh: Bvh, bone_map, rotations: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(F, 22, 3) joints from the map; a foot (toe) joint the map leaves unmapped sits at its ankle bone's
    End Site, which the ankle's rotation carries like a toe bone."""
    joints = np.einsum("jb,fbc->fjc", bone_map.weights, positions)
    for joint in bone_map.unmapped:
        ankle = bone_map.bones[JOINT_INDEX[joint.replace("_foot", "_ankle")]]  # None unless joint is a foot
        bone = None if ankle is None else bvh.names.index(ankle)
        if bone is None or bvh.end_sites[bone] is None:
            raise UnmappableSkeletonError(f"{bvh.source}: no bone for {joint}" + (
                f" and its ankle '{ankle}' has no End Site to place it" if ankle else ""))
        joints[:, JOINT_INDEX[joint]] = positions[:, bone] + rotations[:, bone] @ bvh.end_sites[bone]
    return joints


def bvh_to_smpl_joints(source, fps: float = 20.0, up: str = "auto", scale: float | None = None):
    """A humanoid BVH (path or Bvh) -> ((T, 22, 3) float64 SMPL joints in metres, y up, at `fps`; a report).

    up: the file's up axis, "y", "z" or "auto" (the pelvis -> head direction of the standing pose);
    scale: metres per file unit, or None to pick the unit that makes the standing height human. The standing
    height is the larger of the mapped pose's and the clip's 95th percentile, so that a clip mapped on a
    crouching frame 0 still measures its full height.
    """
    if up not in ("auto", "y", "z"):
        raise ValueError(f"up must be 'auto', 'y' or 'z', got {up!r}")
    if scale is not None and not scale > 0:
        raise ValueError(f"scale must be a positive number of metres per file unit, got {scale}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    bvh = source if isinstance(source, Bvh) else read_bvh(Path(source))
    if len(bvh.motion) == 0:
        raise ValueError(f"{bvh.source}: the file has no frames")
    rotations, positions = bvh.global_transforms()
    pose_name, pose_rotations, pose, bone_map, axis = _map_standing_pose(bvh, rotations, positions, up)
    joints = _smpl_joints(bvh, bone_map, rotations, positions)
    standing = _smpl_joints(bvh, bone_map, pose_rotations, pose)
    if axis == "z":
        joints, standing = joints @ Z_UP_TO_Y_UP.T, standing @ Z_UP_TO_Y_UP.T
    height = max(_standing_height(standing)[0], np.percentile(_standing_height(joints), 95))
    if not height > 0:
        raise ValueError(f"{bvh.source}: the head is not above the feet in {pose_name} nor in the frames")
    if scale is not None:
        unit = f"{scale:g} m per file unit (given)"
    else:
        unit, scale = next(((name, factor) for name, factor in UNITS
                            if PLAUSIBLE_STANDING_HEIGHT[0] <= height * factor <= PLAUSIBLE_STANDING_HEIGHT[1]),
                           (None, DEFAULT_STANDING_HEIGHT / height))
        unit = (f"{unit} (detected)" if unit else
                f"no unit gives a human height, scaled to {DEFAULT_STANDING_HEIGHT} m ({scale:.4g} m per unit)")
    joints = resample(joints * scale, fps, bvh.fps)
    lines = [
        f"{bvh.source}: {len(positions)} frames at {bvh.fps:g} fps -> {len(joints)} frames at {fps:g} fps",
        f"up axis: {axis} ({'detected' if up == 'auto' else 'given'})" + (", rotated to y up" if axis == "z" else ""),
        f"unit: {unit}; standing height (head joint to lowest foot): {height:.4g} file units = "
        f"{height * scale:.2f} m",
        f"bone map (made on {pose_name}):",
        bone_map.report(),
    ]
    if bone_map.unmapped:
        lines.append(f"  {', '.join(bone_map.unmapped)}: placed at the ankle bones' End Sites")
    return joints, "\n".join(lines)
