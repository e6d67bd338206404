"""Any humanoid BVH -> the 22 SMPL joints MoMask speaks: metres, y up, a chosen frame rate.

The bone map (core.bonemap) says which file joints make each SMPL joint; this module settles what the map
cannot: the file's up axis, its unit, and its frame rate. Pure numpy/scipy; no torch.
"""
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from .bonemap import UnmappableSkeletonError, map_skeleton
from .bvh import Bvh, read_bvh
from .skeleton import JOINT_INDEX, LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS
from .timebase import resample

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
# The up axis' score: the share of frames upright along it, less _FLOOR_DRIFT times the spread of its floor (the
# lowest joint, in body lengths): a floor wandering by a quarter of the body outweighs a body upright throughout
# (a body lying along the axis looks upright, but travels along the floor as it gets up or down).
_FLOOR_DRIFT = 4.0


def _standing_height(joints: np.ndarray) -> np.ndarray:
    """Head joint above the lowest foot joint (y up) of (F, 22, 3) joints, per frame."""
    return joints[:, JOINT_INDEX["head"], 1] - joints[:, _FEET, 1].min(axis=1)


def _body_length(joints: np.ndarray) -> float:
    """Thigh and shin (mean of the sides) plus pelvis -> head of (F, 22, 3) joints, median over frames: the
    body's size in any pose (crawling, lying), a little short of its standing height (HumanML3D's subject:
    1.45 m, standing 1.57 m)."""
    legs = [np.linalg.norm(joints[:, JOINT_INDEX[f"{side}_{a}"]] - joints[:, JOINT_INDEX[f"{side}_{b}"]], axis=-1)
            for side in ("left", "right") for a, b in (("hip", "knee"), ("knee", "ankle"))]
    torso = np.linalg.norm(joints[:, JOINT_INDEX["head"]] - joints[:, JOINT_INDEX["pelvis"]], axis=-1)
    return float(np.median(sum(legs) / 2 + torso))


def _up_axis(joints: np.ndarray) -> tuple[str, str]:
    """(The up axis of (F, 22, 3) joints in file axes, the evidence) from the whole clip: the axis along which
    the feet -> head direction points in most frames, never upside down on average, whose floor (the lowest
    joint) stays put (_FLOOR_DRIFT). A clip with no upright frame (a crawl, lying down) is decided by its floor
    alone; a tie goes to y, the BVH convention."""
    body = joints[:, JOINT_INDEX["head"]] - joints[:, _FEET].mean(axis=1)
    body /= np.maximum(np.linalg.norm(body, axis=-1, keepdims=True), 1e-12)
    size = _body_length(joints) or 1.0
    evidence = {}
    for axis, column in _AXES.items():
        upright = float(np.mean(body[:, column] > _UPRIGHT_COSINE))
        drift = float(np.std(joints[:, :, column].min(axis=1)) / size)
        evidence[axis] = (upright + min(0.0, float(body[:, column].mean())) - _FLOOR_DRIFT * drift, upright, drift)
    axis = max(evidence, key=lambda a: evidence[a][0])
    return axis, (f"feet -> head within 45 deg of +{axis} in {evidence[axis][1]:.0%} of frames, its floor "
                  f"drifting {evidence[axis][2]:.2g} body lengths")


def _upright(joints: np.ndarray, axis: str) -> bool:
    """Whether the pelvis -> head direction of (22, 3) joints points along +axis (within 45 deg)."""
    spine = joints[JOINT_INDEX["head"]] - joints[JOINT_INDEX["pelvis"]]
    return bool(spine[_AXES[axis]] > _UPRIGHT_COSINE * np.linalg.norm(spine))


# Frames a bone map is tried on where the rest pose gives none, spread over the clip (frame 0 first): a take may
# start mid-kick (CMU 001_14 in Character Creator naming), when the structure sees no legs pointing down.
_MAP_FRAMES = 8


def _mapped_frame(bvh: Bvh, rotations: np.ndarray, positions: np.ndarray):
    """(pose name, (1, J, 3, 3) rotations and (1, J, 3) positions, bone map) on the first of _MAP_FRAMES frames
    that maps, or the UnmappableSkeletonError of frame 0."""
    error = None
    for frame in dict.fromkeys(np.linspace(0, len(positions) - 1, _MAP_FRAMES).astype(int).tolist()):
        try:
            bone_map = map_skeleton(bvh.names, bvh.parents, positions[frame])
            return f"frame {frame}", rotations[frame:frame + 1], positions[frame:frame + 1], bone_map
        except UnmappableSkeletonError as err:
            error = error or err
    raise error


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

    up: the file's up axis, "y", "z" or "auto" (decided on the whole clip, _up_axis);
    scale: metres per file unit, or None to pick the unit that makes the standing height human. The standing
    height is the largest of the mapped pose's, the clip's 95th percentile and the body's length (thighs, shins
    and pelvis -> head), so that a clip mapped on a crouching frame 0, or crawling throughout, still measures
    its full height.
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
    # the map is made on the rest pose, or on a frame where the rest pose is no upright body (zero rotations lay
    # Bandai-Namco's and ACCAD's bones along their parents' x axes) or cannot be mapped
    pose_name, pose = "the rest pose", bvh.rest_positions()[None]
    pose_rotations = np.broadcast_to(np.eye(3), (1, len(bvh.names), 3, 3))
    try:
        bone_map = map_skeleton(bvh.names, bvh.parents, pose[0])
    except UnmappableSkeletonError as err:
        try:
            pose_name, pose_rotations, pose, bone_map = _mapped_frame(bvh, rotations, positions)
        except UnmappableSkeletonError:
            raise err from None
    joints = _smpl_joints(bvh, bone_map, rotations, positions)
    axis, evidence = (up, None) if up != "auto" else _up_axis(joints)
    if pose_name == "the rest pose" and not _upright(bone_map.weights @ pose[0], axis):
        try:
            pose_name, pose_rotations, pose, bone_map = _mapped_frame(bvh, rotations, positions)
            joints = _smpl_joints(bvh, bone_map, rotations, positions)
        except UnmappableSkeletonError:
            pass
    standing = _smpl_joints(bvh, bone_map, pose_rotations, pose)
    if axis == "z":
        joints, standing = joints @ Z_UP_TO_Y_UP.T, standing @ Z_UP_TO_Y_UP.T
    height = max(_standing_height(standing)[0], np.percentile(_standing_height(joints), 95),
                 _body_length(joints))
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
        f"up axis: {axis} ({'given' if up != 'auto' else 'detected: ' + evidence})"
        + (", rotated to y up" if axis == "z" else ""),
        f"unit: {unit}; standing height (head joint to lowest foot): {height:.4g} file units = "
        f"{height * scale:.2f} m",
        f"bone map (made on {pose_name}):",
        bone_map.report(),
    ]
    if bone_map.unmapped:
        lines.append(f"  {', '.join(bone_map.unmapped)}: placed at the ankle bones' End Sites")
    return joints, "\n".join(lines)
