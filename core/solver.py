"""Joint positions -> bone rotations: a motion's 22 SMPL joints onto any humanoid armature.

MoMask outputs joint positions, and rigs disagree on everything rotations depend on (rest pose, bone rolls and
tails, units, axes, extra bones). So every mapped bone gets the rotation that carries its rest segment (its head
to the heads of its mapped children) onto the motion's segment, and the twist that positions cannot show comes
from anatomy: hinge knees and elbows, level feet, hands and head following their parents (docs/architecture.md,
"Retargeting"). All of it happens in the armature's own space, from bone.matrix_local and
the object's matrix_world, and ends as Blender's matrix_basis per bone. Pure numpy: the Blender side imports
this module and Blender ships numpy, not scipy.
"""
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .bonemap import BoneMap, map_skeleton
from .quaternion import hemisphere_continuity, quat_from_matrix, quat_to_matrix
from .skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS

# HumanML3D (y up, facing +z) -> Blender (z up, facing -y): (x, y, z) -> (x, -z, y); the body's left stays +x.
HUMANML3D_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# Ankle -> toe joint of HumanML3D's subject standing, below horizontal (fixture 000000 frame 0: 15.6 deg left,
# 15.5 right): the rest direction of a foot bone on rigs without a toe bone.
REST_FOOT_PITCH = np.radians(15.5)
MOTIONS = ("root motion", "in place")
HORIZONTAL_BONES = ("pelvis", "root")

# A knee or elbow bent less than this (radians) does not show its hinge plane: the thigh then turns the knee
# towards the toes, the upper arm carries its bend direction over from the frames around; blended in between.
_HINGE_BEND = (np.radians(5.0), np.radians(20.0))
# A limb bent more than this at rest (CesiumMan's knees, 25 deg) bends in its rest plane; less (Quaternius 2019's
# elbows, 8 deg up) is modelling noise and the anatomical plane is used.
_REST_BEND = np.radians(10.0)
# A twist reference within this sine of the bone's own axis says nothing reliable: fade to the parent's twist.
_TWIST_SINE = (0.05, 0.2)
# Feet are levelled in full within 30 deg of horizontal (sine to up 0.87) and twist up to 60 deg off the shin's
# frame (cosine 0.5), not at all beyond 60 deg steep or 90 deg twist.
_LEVEL_SINE, _LEVEL_COSINE = (0.5, 0.87), (0.0, 0.5)
_LEVEL_RELEASE = 5  # frames (odd)
_PELVIS = JOINT_INDEX["pelvis"]
# Where a torso joint's left-right axis sits between the hips' (0) and the collars' (1), when the joint has one
# mapped child (a pelvis whose legs hang elsewhere, as Rigify's controls do from spine_fk.001).
_SPINE_TWIST = {JOINT_INDEX["pelvis"]: 0.0, JOINT_INDEX["spine1"]: 1 / 3, JOINT_INDEX["spine2"]: 2 / 3,
                JOINT_INDEX["spine3"]: 1.0}
# Rounds of the torso solve: shoulders levelled by the chest, then spine and chest turned to the neck, which tilts
# the shoulders again by a little less each round (p99 of the shoulder line under 3.5 deg on the shared rigs).
_TORSO_ROUNDS = 3
_LEFT_RIGHT = {name[5:]: (JOINT_INDEX[name], JOINT_INDEX["right_" + name[5:]])
               for name in JOINT_NAMES if name.startswith("left_")}
# A side pair that starts at one point at rest (a Z-up BVH export's collar bones both at the chest's middle) shows
# no left and right: the next pair down the limbs stands in for it.
_NEXT_PAIR = {"hip": "knee", "collar": "shoulder"}


@dataclass(frozen=True, eq=False)
class RigDescription:
    """An armature as the solver needs it, gathered without bpy. rest_matrices: (B, 4, 4) bone.matrix_local
    (armature space); world_matrix: (4, 4) the armature object's matrix_world (uniform scale); bone_map: the
    22 SMPL joints -> bone names."""
    names: tuple[str, ...]
    parents: np.ndarray
    rest_matrices: np.ndarray
    world_matrix: np.ndarray
    bone_map: BoneMap

    def __post_init__(self):
        for field, dtype in (("parents", np.int64), ("rest_matrices", np.float64), ("world_matrix", np.float64)):
            object.__setattr__(self, field, np.asarray(getattr(self, field), dtype=dtype))
        count = len(self.names)
        if np.shape(self.parents) != (count,) or np.shape(self.rest_matrices) != (count, 4, 4):
            raise ValueError(f"rig of {count} bones: parents {np.shape(self.parents)} and rest_matrices "
                             f"{np.shape(self.rest_matrices)} should be ({count},) and ({count}, 4, 4)")
        if np.shape(self.world_matrix) != (4, 4) or not np.isfinite(self.world_matrix).all():
            raise ValueError(f"world_matrix must be a finite 4x4 matrix, got shape {np.shape(self.world_matrix)}")
        linear = self.world_matrix[:3, :3]
        scale = np.abs(np.linalg.det(linear)) ** (1 / 3)
        if not scale > 0 or not np.allclose(linear.T @ linear, scale ** 2 * np.eye(3), atol=1e-4 * scale ** 2):
            raise ValueError("world_matrix must rotate, translate and scale uniformly (no shear or per-axis "
                             "scale: bone rotations cannot follow a stretched armature); apply its scale first")
        rotations = self.rest_matrices[:, :3, :3]
        error = np.abs(rotations @ np.swapaxes(rotations, 1, 2) - np.eye(3)).max(axis=(1, 2))
        rigid = np.isfinite(self.rest_matrices).all(axis=(1, 2)) & (error < 1e-4) & (np.linalg.det(rotations) > 0)
        if not rigid.all():
            raise ValueError(f"rest matrix of bone '{self.names[np.flatnonzero(~rigid)[0]]}' is not a rotation "
                             "and a translation (expected bone.matrix_local)")
        if len(self.bone_map.bones) != NUM_JOINTS:
            raise ValueError(f"bone_map has {len(self.bone_map.bones)} joints, expected {NUM_JOINTS}")
        missing = [name for name in self.bone_map.bones if name is not None and name not in self.names]
        if missing:
            raise ValueError(f"bone_map names bones the rig lacks: {', '.join(missing)}")
        bad = [i for i, p in enumerate(self.parents) if not -1 <= p < count or p == i]
        if bad:
            raise ValueError(f"parent of bone '{self.names[bad[0]]}' is {self.parents[bad[0]]}: not another bone")

    @cached_property
    def ancestors(self) -> tuple[tuple[int, ...], ...]:
        """Each bone's ancestors, nearest first; refuses cycles."""
        paths = []
        for bone in range(len(self.names)):
            path = [int(self.parents[bone])]
            while path[-1] >= 0:
                if len(path) > len(self.names):
                    raise ValueError(f"parents contain a cycle through bone '{self.names[bone]}'")
                path.append(int(self.parents[path[-1]]))
            paths.append(tuple(path[:-1]))
        return tuple(paths)

    @cached_property
    def order(self) -> np.ndarray:
        """Bone indices, parents before children."""
        return np.argsort([len(path) for path in self.ancestors], kind="stable")

    @cached_property
    def bone_of(self) -> dict[int, int]:
        """SMPL joint -> bone index, for the joints the map gives a bone of their own."""
        index = {name: i for i, name in enumerate(self.names)}
        return {j: index[name] for j, name in enumerate(self.bone_map.bones) if name is not None}


def describe_rig(names, parents, rest_matrices, world_matrix=None, preset=None, overrides=None) -> RigDescription:
    """A RigDescription with its bone map made on the world-space rest heads (preset/overrides as in
    core.bonemap.map_skeleton)."""
    rest = np.asarray(rest_matrices, dtype=np.float64)
    world = np.eye(4) if world_matrix is None else np.asarray(world_matrix, dtype=np.float64)
    if rest.ndim != 3 or rest.shape[1:] != (4, 4):
        raise ValueError(f"rest_matrices must be (B, 4, 4), got {rest.shape}")
    heads = rest[:, :3, 3] @ world[:3, :3].T + world[:3, 3]
    bone_map = map_skeleton(names, parents, heads, preset=preset, overrides=overrides)
    return RigDescription(tuple(str(n) for n in names), np.asarray(parents, dtype=np.int64), rest, world, bone_map)


@dataclass(frozen=True)
class SolveOptions:
    """motion: "root motion" (the pelvis travels) or "in place" (horizontal travel removed, turns kept).
    horizontal_on: "pelvis", or "root" to carry the horizontal travel on the bone at the top of the pelvis'
    hierarchy (UE `root`). placement: (4, 4) similarity from HumanML3D metres to world, None for
    default_placement. torso_chain: the spine solved as one chain (_solve_torso: a rig of other proportions
    bends and leans as the motion does); False aims each spine segment on its own, exact on a skeleton of the
    motion's own proportions (the template BVH export)."""
    motion: str = "root motion"
    horizontal_on: str = "pelvis"
    placement: np.ndarray | None = None
    torso_chain: bool = True


@dataclass(frozen=True, eq=False)
class RigPose:
    """Per frame and bone, Blender's matrix_basis: rotations (T, B, 4) quaternions (w, x, y, z), continuous over
    time; locations (T, B, 3), non-zero only on the bones in `located`; placement as used."""
    rotations: np.ndarray
    locations: np.ndarray
    located: tuple[str, ...]
    placement: np.ndarray


# ----------------------------------------------------------------------------------------------- rotations
def unit(v: np.ndarray) -> np.ndarray:
    """Vectors along the last axis scaled to length 1 (zero vectors stay zero)."""
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def _apply(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Matrices (..., 3, 3) times vectors (..., 3) or one vector (3,)."""
    return m @ v if v.ndim == 1 else (m @ v[..., None])[..., 0]


def _axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices about unit axes (..., 3) by angles (...) (Rodrigues)."""
    x, y, z = np.moveaxis(axis, -1, 0)
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(axis.shape[:-1] + (3, 3))
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotations taking unit vectors a onto unit vectors b; a half turn about an axis perpendicular
    to a where they are opposite."""
    a, b = np.broadcast_arrays(a, b)
    axis = np.cross(a, b)
    sine, cosine = np.linalg.norm(axis, axis=-1), (a * b).sum(-1)
    opposite = (cosine < 0) & (sine < 1e-9)
    helper = np.eye(3)[np.argmin(np.abs(a), axis=-1)]
    axis = np.where(opposite[..., None], np.cross(a, helper), axis)
    return _axis_angle(unit(axis), np.arctan2(sine, cosine))


def smoothstep(x: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """0 below lo, 1 above hi, a smooth cubic in between: blends without a kink at either end."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def perpendicular(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The part of v square to the unit axis."""
    return v - (v * axis).sum(-1, keepdims=True) * axis


def _swing(parent: np.ndarray, rest_axis: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The parent's delta, then the smallest turn carrying the rest axis onto the unit `axis`."""
    return _rotation_between(unit(_apply(parent, rest_axis)), axis) @ parent


def _twist(swing: np.ndarray, axis: np.ndarray, rest_ref: np.ndarray, ref: np.ndarray):
    """(angle about the unit axis that brings the swung rest reference to `ref`, both seen perpendicular to the
    axis; the smaller sine of either reference to the axis, which says how far that angle can be trusted)."""
    carried, ref = _apply(swing, rest_ref), np.broadcast_to(ref, axis.shape)
    a, b = perpendicular(carried, axis), perpendicular(ref, axis)
    sine = np.minimum(np.linalg.norm(a, axis=-1) / np.linalg.norm(carried, axis=-1),
                      np.linalg.norm(b, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1), 1e-12))
    return np.arctan2((np.cross(a, b) * axis).sum(-1), (a * b).sum(-1)), sine


def _aim(parent: np.ndarray, rest_axis: np.ndarray, axis: np.ndarray, rest_ref=None, ref=None) -> np.ndarray:
    """Delta rotation (T, 3, 3) of a bone: swung onto `axis`, then twisted so that the rest reference turns to
    `ref`; the twist fades out where either reference nears the axis."""
    axis = unit(axis)
    swing = _swing(parent, rest_axis, axis)
    if rest_ref is None:
        return swing
    angle, sine = _twist(swing, axis, rest_ref, ref)
    return _axis_angle(axis, angle * smoothstep(sine, *_TWIST_SINE)) @ swing


def _foot(parent: np.ndarray, rest_axis: np.ndarray, axis: np.ndarray, rest_up: np.ndarray, up: np.ndarray):
    """Ankle: pointing at the toes, its sole levelled by a twist from the shin's frame. Levelling stops where it
    means nothing or would turn the foot over: a foot steeper than _LEVEL_SINE allows (let go of over a few
    frames, not in one), or needing a twist past _LEVEL_COSINE (a kick back shows the sole upwards)."""
    axis = unit(axis)
    swing = _swing(parent, rest_axis, axis)  # the rest sole up, square to the rest foot (CesiumMan's points down)
    angle, sine = _twist(swing, axis, perpendicular(rest_up, unit(rest_axis)), up)
    level = smoothstep(sine, *_LEVEL_SINE)
    # a foot kicked up fast leaves the band within a frame: its level fades over _LEVEL_RELEASE frames instead
    level = np.maximum(level, np.convolve(np.pad(level, _LEVEL_RELEASE // 2, mode="edge"),
                                          np.full(_LEVEL_RELEASE, 1 / _LEVEL_RELEASE), mode="valid"))
    return _axis_angle(axis, angle * level * smoothstep(np.cos(angle), *_LEVEL_COSINE)) @ swing


# ------------------------------------------------------------------------------------------------- placing
def _leg_length(joints: np.ndarray) -> float:
    """Mean hip -> knee -> ankle length over both legs (and frames) of (..., 22, 3) joints."""
    total = 0.0
    for side in ("left", "right"):
        hip, knee, ankle = (joints[..., JOINT_INDEX[f"{side}_{j}"], :] for j in ("hip", "knee", "ankle"))
        total += np.mean(np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(ankle - knee, axis=-1))
    return total / 2


def rest_joints(rig: RigDescription) -> np.ndarray:
    """(22, 3) rest joints in armature space, interpolated ones blended (unmapped rows are zero)."""
    return rig.bone_map.weights @ rig.rest_matrices[:, :3, 3]


def _body_frame(joints: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, forward) unit vectors, level with `up`, of a (22, 3) standing body, left from hips and shoulders."""
    left = perpendicular(sum(unit(joints[a] - joints[b]) for a, b in (_LEFT_RIGHT["hip"], _LEFT_RIGHT["shoulder"])),
                         up)
    if np.linalg.norm(left) < 1e-6:
        raise ValueError("cannot tell which way the rig faces: its hips and shoulders are not side by side at rest")
    left = unit(left)
    return left, np.cross(left, up)


def foot_joints(rig: RigDescription) -> list[int]:
    """The ankle and toe joints the rig has bones for: where it stands."""
    return [j for side in ("left", "right") for j in (JOINT_INDEX[f"{side}_ankle"], JOINT_INDEX[f"{side}_foot"])
            if j in rig.bone_of]


def default_placement(rig: RigDescription, joints: np.ndarray) -> np.ndarray:
    """(4, 4) similarity from HumanML3D metres to world: the clip starts where the rig stands (frame 0's pelvis
    over the rest pelvis), facing where the rig faces, its feet on the rig's feet (the clip's lowest foot joint
    at the rig's lowest rest foot joint, over the joints the rig has), scaled by leg length in world units."""
    joints = checked_joints(joints)
    world = rig.world_matrix
    rest = rest_joints(rig) @ world[:3, :3].T + world[:3, 3]
    scale = _leg_length(rest) / _leg_length(joints)
    up = np.array([0.0, 0.0, 1.0])
    _, forward = _body_frame(rest, up)
    yaw = np.arctan2(forward[0], -forward[1])  # the turn about world z taking -y (HumanML3D's facing) to forward
    linear = scale * _axis_angle(up, np.array(yaw)) @ HUMANML3D_TO_BLENDER
    feet = foot_joints(rig)
    start = joints[0, _PELVIS].copy()
    start[1] = joints[:, feet, 1].min()
    anchor = np.array([rest[_PELVIS, 0], rest[_PELVIS, 1], rest[feet, 2].min()])
    placement = np.eye(4)
    placement[:3, :3], placement[:3, 3] = linear, anchor - linear @ start
    return placement


def checked_joints(joints) -> np.ndarray:
    """(T, 22, 3) float64 joints, or a ValueError saying what is wrong with them."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise ValueError(f"joints must be (T, {NUM_JOINTS}, 3) with T >= 1, got {joints.shape}")
    if not np.isfinite(joints).all():
        frame = np.flatnonzero(~np.isfinite(joints).all(axis=(1, 2)))[0]
        raise ValueError(f"joints are not finite (first at frame {frame})")
    return joints


# ---------------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class _Plan:
    """Which joint each mapped joint hangs from. A bone hangs from its nearest mapped rig ancestor when its
    SMPL parent's bone is above it in the rig (so CMU's LHipJoint changes nothing, and Rigify's thighs hang from
    spine_fk.001); otherwise it is free (feet parented to the root in IK rigs): it follows its SMPL parent and
    gets a location."""
    parent: dict[int, int | None]
    free: frozenset[int]
    children: dict[int, list[int]]
    order: list[int]


def _plan(rig: RigDescription) -> _Plan:
    bone_of = rig.bone_of
    joint_of = {b: j for j, b in bone_of.items()}
    parent, free = {}, set()
    for j, bone in bone_of.items():
        smpl = PARENTS[j]
        while smpl >= 0 and smpl not in bone_of:
            smpl = PARENTS[smpl]
        if smpl < 0:
            parent[j] = None
            free.add(j)
        elif bone_of[smpl] in rig.ancestors[bone]:
            parent[j] = next(joint_of[a] for a in rig.ancestors[bone] if a in joint_of)
        else:
            parent[j] = smpl
            free.add(j)
    depth = {}

    def depth_of(j, seen=()):
        if j in seen:
            raise ValueError(f"the bone map makes '{rig.names[bone_of[j]]}' its own ancestor")
        if j not in depth:
            depth[j] = 0 if parent[j] is None else depth_of(parent[j], seen + (j,)) + 1
        return depth[j]

    order = sorted(bone_of, key=lambda j: (depth_of(j), j))
    children = {j: [k for k in order if parent[k] == j] for j in order}
    return _Plan(parent, frozenset(free), children, order)


# ------------------------------------------------------------------------------------------------- solving
def _deltas(rig: RigDescription, plan: _Plan, targets: np.ndarray, up: np.ndarray, torso_chain: bool = True):
    """Delta rotations G (rest -> posed, armature space) and head positions of the mapped joints, parents first,
    and the deltas of unmapped spine bones (_solve_torso, with torso_chain). targets: (T, 22, 3) in armature
    space; up: the motion's up in armature space."""
    rest = rest_joints(rig)
    rest_up = unit(np.linalg.solve(rig.world_matrix[:3, :3], (0.0, 0.0, 1.0)))  # world up, armature space
    left, forward = _body_frame(rest, rest_up)
    lateral = {name: (unit(rest[a] - rest[b]), unit(targets[:, a] - targets[:, b]))
               for name in ("hip", "collar") for a, b in [_side_pair(rest, name)]}
    frames = len(targets)
    deltas, heads, spine, aimed = {}, {}, {}, {}
    torso = _torso_chain(rig, plan) if torso_chain else None
    for j in plan.order:
        up_joint = plan.parent[j]
        if up_joint is None:
            parent, heads[j] = np.broadcast_to(np.eye(3), (frames, 3, 3)), targets[:, j]
        else:
            parent = aimed.get(up_joint, deltas[up_joint])
            heads[j] = heads[up_joint] + _apply(deltas[up_joint], rest[j] - rest[up_joint])
        kids = plan.children[j]
        name = JOINT_NAMES[j]
        if len(kids) > 1:
            deltas[j] = _hub(parent, j, kids, rest, targets)
        elif kids:
            k = kids[0]
            rest_axis, axis = rest[k] - rest[j], targets[:, k] - targets[:, j]
            if j in _SPINE_TWIST:
                t = _SPINE_TWIST[j]
                deltas[j] = _aim(parent, rest_axis, axis, (1 - t) * lateral["hip"][0] + t * lateral["collar"][0],
                                 (1 - t) * lateral["hip"][1] + t * lateral["collar"][1])
            elif name.endswith(("_hip", "_shoulder")):
                deltas[j] = _hinge(parent, j, k, plan, rest, targets, forward)
            elif name.endswith("_ankle"):
                deltas[j] = _foot(parent, rest_axis, axis, rest_up, up)
            else:
                deltas[j] = _aim(parent, rest_axis, axis)
        elif name.endswith("_ankle"):  # no toe bone: a rest foot pointing forward, pitched like HumanML3D's
            toe = j + 3
            rest_axis = np.cos(REST_FOOT_PITCH) * forward - np.sin(REST_FOOT_PITCH) * rest_up
            deltas[j] = _foot(parent, rest_axis, targets[:, toe] - targets[:, j], rest_up, up)
        else:  # head, hands, toes: they keep their parent's frame
            deltas[j] = parent
        if torso is not None and j == torso.chest:  # its children swing from the chest as aimed: their twists
            aimed[j] = deltas[j]  # (an arm's bend carried over straight frames) stay as the motion has them
            spine = _solve_torso(rig, torso, deltas, heads, targets)
    return deltas, heads, spine


def _side_pair(rest: np.ndarray, name: str) -> tuple[int, int]:
    """The left and right joints whose difference is the left-right axis of the `name` pair (hip, collar)."""
    a, b = _LEFT_RIGHT[name]
    if name in _NEXT_PAIR and np.linalg.norm(rest[a] - rest[b]) < 1e-3 * np.ptp(rest, axis=0).max():
        return _LEFT_RIGHT[_NEXT_PAIR[name]]
    return a, b


def _hub(parent, j, kids, rest, targets) -> np.ndarray:
    """A bone with several children (pelvis, chest): aimed from its side pair's middle to its torso child(ren),
    twisted by the pair's left-right vector. Congruent rest and target shapes come out exact."""
    names = {JOINT_NAMES[k]: k for k in kids}
    side = next((n for n in _LEFT_RIGHT if "left_" + n in names and "right_" + n in names), None)
    torso = [k for k in kids if not JOINT_NAMES[k].startswith(("left_", "right_"))]
    if side is None or not torso:
        raise ValueError(f"cannot orient {JOINT_NAMES[j]}: its mapped children ({', '.join(names)}) have no "
                         "left-right pair and torso child")
    pair, (left, right) = list(_LEFT_RIGHT[side]), _side_pair(rest, side)

    def frame(points):
        return (points[..., torso, :].mean(-2) - points[..., pair, :].mean(-2),
                points[..., left, :] - points[..., right, :])

    (rest_axis, rest_ref), (axis, ref) = frame(rest), frame(targets)
    return _aim(parent, rest_axis, axis, rest_ref, ref)


def _hinge(parent, j, k, plan, rest, targets, forward) -> np.ndarray:
    """Thigh or upper arm: twisted so that the knee or elbow bends in its rest bend plane (exact once the bend
    shows). A near-straight leg turns the knee towards the toes; a near-straight arm carries its bend direction
    (seen from its parent) over in time from the frames where the elbow bends."""
    leg = JOINT_NAMES[j].endswith("_hip")
    rest_axis, axis = unit(rest[k] - rest[j]), unit(targets[:, k] - targets[:, j])
    lower = plan.children[k]
    if not lower:
        return _aim(parent, rest_axis, axis)
    lower = lower[0]
    bend_side = unit(perpendicular(-forward if leg else forward, rest_axis))  # knees fold back, elbows forward
    rest_lower = unit(rest[lower] - rest[k])
    rest_bend = unit(perpendicular(rest_lower, rest_axis))
    if rest_lower @ rest_axis < np.cos(_REST_BEND) and rest_bend @ bend_side > np.cos(np.pi / 4):
        bend_side = rest_bend  # clearly bent at rest, roughly the anatomical way: its own plane
    target_lower = unit(targets[:, lower] - targets[:, k])
    bend = smoothstep(np.arccos(np.clip((target_lower * axis).sum(-1), -1, 1)), *_HINGE_BEND)
    target_bend = unit(perpendicular(target_lower, axis))
    if not leg:  # the bend direction seen from the parent, carried over the straight frames
        seen = _apply(np.swapaxes(parent, -1, -2), target_bend)
        return _aim(parent, rest_axis, axis, bend_side, _apply(parent, _carried_over(seen, bend)))
    toes = unit(perpendicular(targets[:, lower + 3] - targets[:, lower], axis))  # ankle -> toe
    return _aim(parent, rest_axis, axis, bend_side, bend[:, None] * target_bend - (1 - bend[:, None]) * toes)


def _carried_over(vectors: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """(T, 3) vectors kept where confidence is 1, interpolated in time from those frames where it is 0, blended
    in between; with no confident frame the frames with any confidence lead, with none they are all zero."""
    anchors = np.flatnonzero(confidence >= 1)
    if not len(anchors):
        anchors = np.flatnonzero(confidence > 0)
    if not len(anchors):
        return np.zeros_like(vectors)
    frames = np.arange(len(vectors))
    filled = np.stack([np.interp(frames, anchors, v[anchors]) for v in vectors.T], -1)
    return confidence[:, None] * vectors + (1 - confidence[:, None]) * filled


def _reach(v: np.ndarray, offset: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The smallest rotations R (T, 3, 3) that put R v + offset along the unit `direction` (T, 3): v turned onto
    the point of the ray at v's length from -offset (the ray's nearest point where none is that far)."""
    along = (direction * offset).sum(-1)
    room = along ** 2 - (offset * offset).sum(-1) + (v * v).sum(-1)
    wanted = (along + np.sqrt(np.maximum(room, 0.0)))[:, None] * direction - offset
    return _rotation_between(unit(v), unit(wanted))


@dataclass(frozen=True)
class _Torso:
    """The spine solved as one chain: chest (the joint the arms hang from), end (its neck, else its head), path
    (the rig's bones from base up to the chest bone, bottom to top), base (the lowest mapped joint above the
    pelvis, whose place the pelvis decides; or the last one on the way located on its own: Rigify's controls hang
    spine_fk.002 beside spine_fk.001)."""
    chest: int
    end: int
    path: tuple[int, ...]
    base: int


def _torso_chain(rig: RigDescription, plan: _Plan) -> _Torso | None:
    """The torso chain of a rig, or None where the spine is no chain of bones from the pelvis to the chest (no
    chest or neck to aim at) or carries the legs."""
    bone_of = rig.bone_of
    arm = next((j for j in (JOINT_INDEX["left_collar"], JOINT_INDEX["left_shoulder"]) if j in bone_of), None)
    chest = plan.parent.get(arm)
    end = next((j for j in (JOINT_INDEX["neck"], JOINT_INDEX["head"]) if plan.parent.get(j) == chest), None)
    if chest not in _SPINE_TWIST or chest == _PELVIS or end is None or _PELVIS not in bone_of:
        return None
    pelvis, top = bone_of[_PELVIS], bone_of[chest]
    if pelvis not in rig.ancestors[top]:
        return None
    path = tuple(rig.ancestors[top][:rig.ancestors[top].index(pelvis)][::-1]) + (top,)
    legs = set().union(*(rig.ancestors[bone_of[j]] for j in (JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"])
                         if j in bone_of))
    if legs.intersection(path):
        return None
    joint_of = {b: j for j, b in bone_of.items()}
    located = [i for i, b in enumerate(path) if joint_of.get(b) in plan.free]
    first = located[-1] if located else next(i for i, b in enumerate(path) if b in joint_of)
    return _Torso(chest, end, path[first:], joint_of[path[first]])


def _solve_torso(rig: RigDescription, torso: _Torso, deltas: dict, heads: dict, targets: np.ndarray):
    """Solves the spine of `torso` as one chain so that the rig's pelvis -> neck direction is the motion's and its
    shoulder line nearly so, whatever the rig's spine: the chest turns its shoulders onto the motion's shoulder
    line (_shoulders_level), then the spine bones (mapped ones as aimed, the others carried along) and the chest
    turn together about the spine's first joint until the neck (the head where no neck is mapped) lies where the
    motion's does, seen from the pelvis. Turning the spine and chest as one keeps the turn smooth in time (bending
    a short spine alone to reach the neck swings it wildly near the end of its reach). A rig of the motion's
    proportions comes out as aimed. Updates the deltas and heads of the chest and the mapped spine joints;
    returns the deltas of the unmapped spine bones."""
    bone_of, rest, chest = rig.bone_of, rig.rest_matrices[:, :3, 3], torso.chest
    joint_of, top = {b: j for j, b in bone_of.items()}, bone_of[chest]
    bent, carried = {}, None
    for b in torso.path[:-1]:  # mapped spine joints as aimed, the bones between carried along
        bent[b] = carried = deltas[joint_of[b]] if b in joint_of else carried
    spine = sum((_apply(bent[b], rest[n] - rest[b]) for b, n in zip(torso.path, torso.path[1:])), np.zeros(3))
    low = heads[torso.base] - heads[_PELVIS]
    wanted = unit(targets[:, torso.end] - targets[:, _PELVIS])
    for _ in range(_TORSO_ROUNDS if len(torso.path) > 1 else 1):  # levelling the shoulders moves the neck a little
        _shoulders_level(rig, deltas, targets, chest)
        if len(torso.path) == 1:  # no spine joint below the chest: nothing to turn to the neck
            break
        neck = _apply(deltas[chest], rest[bone_of[torso.end]] - rest[top])
        turn = _reach(spine + neck, low, wanted)
        spine, deltas[chest] = _apply(turn, spine), turn @ deltas[chest]
        bent = {b: turn @ g for b, g in bent.items()}
    head = heads[torso.base]
    for b, n in zip(torso.path, torso.path[1:] + (None,)):
        if b in joint_of:
            heads[joint_of[b]] = head
            deltas[joint_of[b]] = bent.pop(b, deltas[joint_of[b]])
        if n is not None:
            head = head + _apply(bent.get(b, deltas.get(joint_of.get(b))), rest[n] - rest[b])
    return bent


def _shoulders_level(rig: RigDescription, deltas: dict, targets: np.ndarray, chest: int) -> None:
    """Turns the chest's delta so that the rig's shoulder line (left minus right shoulder: the chest's own line
    between its collar heads, plus the collars, which point where the motion's do) lies along the motion's. The
    turn needed grows as the chest's own line shrinks next to the collars' (UE5's clavicles start 6 cm apart and
    reach 38 cm): only the share of it that the chest's line carries is made (all of it without collars), so that
    the chest never turns more than the shoulder line is off, and the collars stay exact."""
    rest, bone_of = rig.rest_matrices[:, :3, 3], rig.bone_of
    wanted = unit(targets[:, JOINT_INDEX["left_shoulder"]] - targets[:, JOINT_INDEX["right_shoulder"]])
    sides = []
    for side in ("left", "right"):
        collar, shoulder = JOINT_INDEX[f"{side}_collar"], JOINT_INDEX[f"{side}_shoulder"]
        if collar in bone_of:
            length = np.linalg.norm(rest[bone_of[shoulder]] - rest[bone_of[collar]])
            sides.append((collar, unit(targets[:, shoulder] - targets[:, collar]) * length))
        else:
            sides.append((shoulder, np.zeros(3)))
    (left, left_arm), (right, right_arm) = sides
    own = rest[bone_of[left]] - rest[bone_of[right]]
    share = min(1.0, np.linalg.norm(own) / max(np.linalg.norm(left_arm[0] - right_arm[0]), 1e-12))
    if share > 0:
        turn = quat_from_matrix(_reach(_apply(deltas[chest], own), left_arm - right_arm, wanted))
        turn = turn * np.where(turn[..., :1] < 0, -1.0, 1.0)
        angle = 2 * np.arctan2(np.linalg.norm(turn[..., 1:], axis=-1), turn[..., 0])
        deltas[chest] = _axis_angle(unit(turn[..., 1:]), share * angle) @ deltas[chest]


def _root_bone(rig: RigDescription) -> int:
    pelvis = rig.bone_of[_PELVIS]
    if not rig.ancestors[pelvis]:
        raise ValueError(f"travel on the root bone: the pelvis bone '{rig.names[pelvis]}' has no bone above it to "
                         "carry the horizontal motion; put the travel on the pelvis (horizontal_on='pelvis')")
    return rig.ancestors[pelvis][-1]


def _checked_options(options: SolveOptions) -> None:
    if options.motion not in MOTIONS:
        raise ValueError(f"motion must be one of {', '.join(MOTIONS)}; got {options.motion!r}")
    if options.horizontal_on not in HORIZONTAL_BONES:
        raise ValueError(f"horizontal_on must be one of {', '.join(HORIZONTAL_BONES)}; got {options.horizontal_on!r}")
    if options.placement is not None and np.shape(options.placement) != (4, 4):
        raise ValueError(f"placement must be a 4x4 matrix, got shape {np.shape(options.placement)}")


def solve(rig: RigDescription, joints: np.ndarray, options: SolveOptions | None = None) -> RigPose:
    """Pose the rig after (T, 22, 3) joints in HumanML3D space (metres, y up, facing +z): per frame and bone the
    matrix_basis rotation and location. Unmapped bones stay at rest (extra and twist bones follow their
    parents); the pelvis, and bones not hanging from their SMPL parent's bone, get locations."""
    options = options or SolveOptions()
    _checked_options(options)
    joints = checked_joints(joints)
    if options.motion == "in place":
        joints = joints.copy()
        joints[:, :, [0, 2]] -= (joints[:, _PELVIS, [0, 2]] - joints[0, _PELVIS, [0, 2]])[:, None]
    placement = (default_placement(rig, joints) if options.placement is None
                 else np.asarray(options.placement, dtype=np.float64))
    to_armature = np.linalg.inv(rig.world_matrix) @ placement
    targets = joints @ to_armature[:3, :3].T + to_armature[:3, 3]
    up = unit(to_armature[:3, 1])
    plan = _plan(rig)
    deltas, heads, spine = _deltas(rig, plan, targets, up, options.torso_chain)
    joint_of = {b: j for j, b in rig.bone_of.items()}
    root = _root_bone(rig) if options.horizontal_on == "root" else None
    if root is not None:  # the pelvis' travel off the rest pelvis, along the ground
        travel = perpendicular(targets[:, _PELVIS] - rest_joints(rig)[_PELVIS], up)

    frames, count = len(targets), len(rig.names)
    rotations = np.broadcast_to(np.eye(3), (frames, count, 3, 3)).copy()
    locations = np.zeros((frames, count, 3))
    posed = {}  # bone -> (posed rotation (T, 3, 3) in armature space, posed head (T, 3))
    needed = set(joint_of).union(*(rig.ancestors[b] for b in joint_of))
    for bone in (b for b in rig.order if b in needed):
        carried_rotation, carried_head = _carry(rig, posed, bone)
        rest_rotation = rig.rest_matrices[bone, :3, :3]
        j = joint_of.get(bone)
        delta = deltas[j] if j is not None else spine.get(bone)
        if delta is not None:
            rotation = delta @ rest_rotation
            rotations[:, bone] = np.swapaxes(carried_rotation, -1, -2) @ rotation
            head = heads[j] if j in plan.free else carried_head
        else:
            rotation = carried_rotation
            head = carried_head + travel if bone == root else carried_head
        locations[:, bone] = _apply(np.swapaxes(carried_rotation, -1, -2), head - carried_head)
        posed[bone] = rotation, head
    located = tuple(rig.names[b] for b in sorted(joint_of) if joint_of[b] in plan.free) + (
        (rig.names[root],) if root is not None else ())
    return RigPose(hemisphere_continuity(quat_from_matrix(rotations)), locations, located, placement)


def _carry(rig: RigDescription, posed: dict, bone: int):
    """Where a bone's rest frame goes with its parent's pose, before its own matrix_basis: (rotation, head)."""
    rest_rotation, rest_head = rig.rest_matrices[bone, :3, :3], rig.rest_matrices[bone, :3, 3]
    parent = int(rig.parents[bone])
    if parent < 0:
        return rest_rotation, rest_head
    parent_rotation, parent_head = posed[parent]
    delta = parent_rotation @ rig.rest_matrices[parent, :3, :3].T
    return delta @ rest_rotation, parent_head + _apply(delta, rest_head - rig.rest_matrices[parent, :3, 3])


# --------------------------------------------------------------------------------------------- checking
def _posed(rig: RigDescription, pose: RigPose) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Bone -> (posed rotation (T, 3, 3), posed head (T, 3)) in armature space, as Blender evaluates the pose."""
    bases = quat_to_matrix(pose.rotations)
    posed = {}
    for bone in rig.order:
        carried_rotation, carried_head = _carry(rig, posed, bone)
        posed[bone] = (carried_rotation @ bases[:, bone],
                       carried_head + _apply(carried_rotation, pose.locations[:, bone]))
    return posed


def forward(rig: RigDescription, pose: RigPose) -> np.ndarray:
    """(T, B, 3) world-space bone heads of the posed rig (Blender's pose evaluation, in numpy)."""
    posed = _posed(rig, pose)
    heads = np.stack([posed[b][1] for b in range(len(rig.names))], axis=1)
    return heads @ rig.world_matrix[:3, :3].T + rig.world_matrix[:3, 3]


def world_turns(rig: RigDescription, pose: RigPose) -> np.ndarray:
    """(T, B, 3, 3) each bone's turn from its rest orientation, in world axes: how far a bone really turns from
    frame to frame (a flip shows here, whatever its parents do)."""
    posed = _posed(rig, pose)
    turns = np.stack([posed[b][0] @ rig.rest_matrices[b, :3, :3].T for b in range(len(rig.names))], axis=1)
    linear = rig.world_matrix[:3, :3]
    rotation = linear / np.cbrt(np.linalg.det(linear))
    return rotation @ turns @ rotation.T


def mapped_joint_positions(rig: RigDescription, pose: RigPose) -> np.ndarray:
    """(T, 22, 3) world-space SMPL joints of the posed rig through the bone map (unmapped joints are zero)."""
    return np.einsum("jb,tbc->tjc", rig.bone_map.weights, forward(rig, pose))
