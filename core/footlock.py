"""Foot locking: feet that slide while they stand get pinned, and the legs bend to reach them.

Generated motion skates: during the frames its 4 contact channels call planted, feet drift tens of cm/s. The
channels are loose besides (HumanML3D calls a foot moving 0.9 m/s planted, and a kick can come out planted
throughout), so they are re-checked on the motion itself (height and speed) before anything is pinned. Each
contact then holds its ankle or toe where it stands, blended in and out over a few frames; a two-bone IK
re-bends the leg to the pinned ankle, keeping thigh and shin lengths and the knee's bend plane; no foot joint
goes below the floor. On a rig, locking runs on the rig's own joints (solve_locked), since a rig with other
proportions slides its feet even under a motion whose feet stand still. Pure numpy: Blender and the CLI use it.
"""
import dataclasses

import numpy as np

from . import solver
from .skeleton import FOOT_CONTACT_JOINTS, JOINT_INDEX

UP = 1  # HumanML3D's up axis (y); the ground is x-z
_HORIZONTAL = np.array([1.0, 0.0, 1.0])
PIN_FADE_SECONDS = 0.2  # a pin fades in before its contact and out after it over this long
# A foot joint stands when it moves slower than this horizontally (m/s) and is this close (m) above its
# standing level: the lowest 5% of the heights that joint kind (ankles, toes) takes in the clip.
CONTACT_SPEED = 0.6
CONTACT_HEIGHT = 0.05
# A pin holds while its joint's own positions span at most this (m); then the foot steps to a new one.
PIN_SPAN = 0.1
_REACH = 0.995  # of the leg's length: a pin further from the hip lets go (a fully straight leg snaps)
_STANDING_PERCENTILE = 5
_LEGS = [tuple(JOINT_INDEX[f"{side}_{j}"] for j in ("hip", "knee", "ankle", "foot")) for side in ("left", "right")]
_CHANNEL = {joint: k for k, joint in enumerate(FOOT_CONTACT_JOINTS)}


def checked_contacts(contacts, frames: int) -> np.ndarray:
    """(frames, 4) bool foot contacts (FOOT_CONTACT_JOINTS order) from bools or 0..1 values; ValueError for
    another shape."""
    contacts = np.asarray(contacts)
    if contacts.shape != (frames, len(FOOT_CONTACT_JOINTS)):
        raise ValueError(f"foot contacts must be ({frames}, {len(FOOT_CONTACT_JOINTS)}) for {frames} frames "
                         f"(l_ankle, l_foot, r_ankle, r_foot), got {contacts.shape}")
    return contacts > 0.5


def _checked(joints, contacts=None) -> tuple[np.ndarray, np.ndarray | None]:
    joints = solver.checked_joints(joints)
    return joints, None if contacts is None else checked_contacts(contacts, len(joints))


def _horizontal_speed(positions: np.ndarray, fps: float) -> np.ndarray:
    """(T, K) horizontal speeds of (T, K, 3) positions (central differences; zero for a single frame)."""
    if len(positions) < 2:
        return np.zeros(positions.shape[:2])
    velocity = np.gradient(positions[..., [0, 2]], axis=0) * fps
    return np.linalg.norm(velocity, axis=-1)


def detect_contacts(joints, fps: float = 20.0, speed: float = CONTACT_SPEED,
                    height: float = CONTACT_HEIGHT) -> np.ndarray:
    """(T, 4) bool: which foot joints (FOOT_CONTACT_JOINTS order) stand in each frame of (T, 22, 3) joints
    (metres, y up): slower than `speed` m/s horizontally and within `height` m of their standing level. Levels
    pool both feet, so a clip standing on one leg still knows where the ground is."""
    joints, _ = _checked(joints)
    feet = joints[:, FOOT_CONTACT_JOINTS]
    heights = feet[..., UP]
    level = np.empty(4)
    for kind in (slice(0, None, 2), slice(1, None, 2)):  # ankles, toes
        level[kind] = np.percentile(heights[:, kind], _STANDING_PERCENTILE)
    return (heights < level + height) & (_horizontal_speed(feet, fps) < speed)


def foot_skate(joints, contacts, fps: float = 20.0) -> float:
    """Mean horizontal speed (cm/s) of the foot joints over the frame steps where they stand at both ends;
    nan when no joint stands two frames running. joints in metres, y up; contacts (T, 4)."""
    joints, contacts = _checked(joints, contacts)
    feet = joints[:, FOOT_CONTACT_JOINTS][..., [0, 2]]
    steps = np.linalg.norm(np.diff(feet, axis=0), axis=-1)[contacts[1:] & contacts[:-1]]
    return float(steps.mean() * fps * 100) if len(steps) else float("nan")


def _fades(contact: np.ndarray, ramp: int):
    """For each frame: (the last contact frame before it, its weight; the first contact frame after it, its
    weight), -1 where there is none. A frame in contact is its own (weight 1 for both). Weights fade over
    `ramp` frames; in a gap too short for two fades they cross-fade, summing to 1."""
    frames = np.arange(len(contact))
    before = np.maximum.accumulate(np.where(contact, frames, -1))
    after = np.minimum.accumulate(np.where(contact, frames, len(contact))[::-1])[::-1]
    has_before, has_after = before >= 0, after < len(contact)
    after = np.where(has_after, after, -1)
    fade_before = np.where(has_before, solver.smoothstep(1 - (frames - before) / (ramp + 1)), 0.0)
    fade_after = np.where(has_after, solver.smoothstep(1 - (after - frames) / (ramp + 1)), 0.0)
    gap = after - before
    short = has_before & has_after & (gap <= 2 * (ramp + 1))
    across = solver.smoothstep((frames - before) / np.maximum(gap, 1))
    fade_before = np.where(short, 1 - across, fade_before)
    fade_after = np.where(short, across, fade_after)
    return before, fade_before, after, fade_after


def _holds(positions: np.ndarray, contact: np.ndarray, hip: np.ndarray, reach: np.ndarray, ramp: int):
    """The contact frames that pins can hold. A pin sits in the middle of the positions its frames span; a
    contact is split where they would span more than PIN_SPAN horizontally or the pin would be further than
    `reach` from the hip (a body drifting over planted feet, a leg stretching out), and the next pin starts
    `ramp` frames later, so that the foot steps over to it."""
    held = contact.copy()
    t = 0
    while t < len(held):
        if not held[t]:
            t += 1
            continue
        lo = hi = positions[t]
        t += 1
        while t < len(held) and held[t]:
            wider_lo, wider_hi = np.minimum(lo, positions[t]), np.maximum(hi, positions[t])
            if (np.linalg.norm((wider_hi - wider_lo)[[0, 2]]) > PIN_SPAN
                    or np.linalg.norm((wider_lo + wider_hi) / 2 - hip[t]) > reach[t]):
                held[t:t + ramp] = False
                t += ramp
                break
            lo, hi, t = wider_lo, wider_hi, t + 1
    return held


def _runs(held: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True frames."""
    edges = np.diff(np.concatenate([[0], held.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _pins(positions: np.ndarray, held: np.ndarray, floor: float) -> np.ndarray:
    """(T, 3): in each held run, the middle of the positions it spans, at or above the floor (zero elsewhere)."""
    pins = np.zeros_like(positions)
    for start, stop in _runs(held):
        span = positions[start:stop]
        pins[start:stop] = _above((span.min(0) + span.max(0)) / 2, floor)
    return pins


def _pinned(positions: np.ndarray, pins: np.ndarray, held: np.ndarray, ramp: int):
    """((T, 3) positions at their pins where held, the offset blended in before and out after each run;
    (T,) how much of a pin each frame has, 1 where held)."""
    offsets = np.where(held[:, None], pins - positions, 0.0)
    before, fade_before, after, fade_after = _fades(held, ramp)
    blended = fade_before[:, None] * offsets[before] + fade_after[:, None] * offsets[after]
    return positions + np.where(held[:, None], offsets, blended), np.where(held, 1.0, fade_before + fade_after)


def _about(centre: np.ndarray, point: np.ndarray, radius) -> np.ndarray:
    """`point` moved along its line from `centre` to `radius` away from it."""
    return centre + np.expand_dims(radius, -1) * solver.unit(point - centre)


def _two_bone_ik(hip, knee, ankle, target, forward):
    """(knee, ankle) reaching for `target` with the thigh and shin lengths of (T, 3) hip, knee, ankle, the knee
    in the plane of hip, target and its own position (forward of the leg where that leg is straight). An
    out-of-reach target gets the straight leg pointing at it."""
    thigh, shin = np.linalg.norm(knee - hip, axis=-1), np.linalg.norm(ankle - knee, axis=-1)
    reach = target - hip
    distance = np.linalg.norm(reach, axis=-1)
    along = solver.unit(reach)
    slack = 1e-6 * (thigh + shin)
    distance = np.clip(distance, np.abs(thigh - shin) + slack, thigh + shin - slack)
    pole = solver.perpendicular(knee - hip, along)
    straight = np.linalg.norm(pole, axis=-1) < 1e-6 * thigh
    pole = solver.unit(np.where(straight[:, None], solver.perpendicular(forward, along), pole))
    cosine = (thigh ** 2 + distance ** 2 - shin ** 2) / (2 * thigh * distance)
    sine = np.sqrt(np.clip(1 - cosine ** 2, 0.0, 1.0))
    new_knee = hip + thigh[:, None] * (cosine[:, None] * along + sine[:, None] * pole)
    return new_knee, hip + distance[:, None] * along


def _above(point: np.ndarray, floor: float) -> np.ndarray:
    lifted = point.copy()
    lifted[..., UP] = np.maximum(lifted[..., UP], floor)
    return lifted


def _toe(ankle: np.ndarray, toward: np.ndarray, length: float, floor: float) -> np.ndarray:
    """The toe `length` from the ankle towards `toward`, swung level with the ground where it would be below."""
    toe = _about(ankle, toward, length)
    drop = np.minimum(ankle[..., UP] - floor, length)  # how far the toe can go down from the ankle
    ground = solver.unit((toe - ankle) * _HORIZONTAL)
    level = ankle + ground * np.sqrt(length ** 2 - drop ** 2)[..., None]
    level[..., UP] = ankle[..., UP] - drop
    return np.where((toe[..., UP] < floor)[..., None], level, toe)


def held_contacts(joints, contacts=None, fps: float = 20.0, blend: float = PIN_FADE_SECONDS,
                  recheck: bool = True) -> np.ndarray:
    """(T, 4) bool: the foot joints lock_feet pins in each frame. The given contacts (None: detect_contacts),
    kept where detect_contacts confirms them if recheck, split where a pin would have to span more than
    PIN_SPAN or leave the leg's reach (the foot then steps over `blend` seconds)."""
    joints, contacts = _checked(joints, contacts)
    if contacts is None:
        contacts = detect_contacts(joints, fps)
    elif recheck:
        contacts = contacts & detect_contacts(joints, fps)
    ramp = _ramp_frames(blend, fps)
    held = np.empty_like(contacts)
    for hip, knee, ankle, toe in _LEGS:
        leg = _length(joints[:, hip], joints[:, knee]) + _length(joints[:, knee], joints[:, ankle])
        held[:, _CHANNEL[ankle]] = _holds(joints[:, ankle], contacts[:, _CHANNEL[ankle]], joints[:, hip],
                                          _REACH * leg, ramp)
        held[:, _CHANNEL[toe]] = _holds(joints[:, toe], contacts[:, _CHANNEL[toe]], joints[:, hip],
                                        _REACH * (leg + _length(joints[:, ankle], joints[:, toe])), ramp)
    return held


def _length(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(b - a, axis=-1)


def _ramp_frames(blend: float, fps: float) -> int:
    return max(int(round(blend * fps)), 1)


def lock_feet(joints, contacts=None, fps: float = 20.0, floor: float = 0.0,
              blend: float = PIN_FADE_SECONDS) -> np.ndarray:
    """(T, 22, 3) joints (metres, y up) with planted feet: each held contact (held_contacts of the (T, 4)
    contacts in FOOT_CONTACT_JOINTS order, re-checked on the motion since a model's channels can call a kick
    planted; None: detected) keeps its ankle or toe at one position, blended over `blend` seconds either side;
    the legs are re-bent by two-bone IK; every foot joint stays at or above `floor`."""
    joints, _ = _checked(joints)
    return _lock(joints, held_contacts(joints, contacts, fps, blend), fps, floor, blend)


def _lock(joints: np.ndarray, held: np.ndarray, fps: float, floor: float, blend: float) -> np.ndarray:
    """lock_feet on (T, 4) contacts already held (held_contacts)."""
    ramp = _ramp_frames(blend, fps)
    out = joints.copy()
    left = joints[:, JOINT_INDEX["left_hip"]] - joints[:, JOINT_INDEX["right_hip"]]
    forward = np.cross(left, np.eye(3)[UP])
    for hip, knee, ankle, toe in _LEGS:
        ankle_held, toe_held = held[:, _CHANNEL[ankle]], held[:, _CHANNEL[toe]]
        # one foot length (a generated foot stretches): the foot turns about a planted heel or toe
        foot = np.median(_length(joints[:, ankle], joints[:, toe]))
        toe_pins = _pins(joints[:, toe], toe_held, floor)
        ankle_pins = _pins(joints[:, ankle], ankle_held, floor)
        # a flat foot is rigid: a pin that starts while the other joint is held sits a foot's length from it
        pins, holds = (ankle_pins, toe_pins), (ankle_held, toe_held)  # 0: ankle, 1: toe
        for start, kind, stop in sorted([(a, 0, b) for a, b in _runs(ankle_held)] +
                                        [(a, 1, b) for a, b in _runs(toe_held)]):
            if holds[1 - kind][start]:
                pins[kind][start:stop] = (_toe(ankle_pins[start], toe_pins[start], foot, floor) if kind else
                                          _above(_about(toe_pins[start], ankle_pins[start], foot), floor))
        ankle_target, ankle_weight = _pinned(joints[:, ankle], ankle_pins, ankle_held, ramp)
        toe_target, toe_weight = _pinned(joints[:, toe], toe_pins, toe_held, ramp)
        ankle_target, toe_target = _above(ankle_target, floor), _above(toe_target, floor)
        # a held toe carries the heel about it; a held heel stays where it is
        turn = np.where(toe_held, 1.0, toe_weight * (1 - ankle_weight))[:, None]
        ankle_target = _above(ankle_target + turn * (_about(toe_target, ankle_target, foot) - ankle_target), floor)
        out[:, knee], out[:, ankle] = _two_bone_ik(joints[:, hip], joints[:, knee], joints[:, ankle],
                                                   ankle_target, forward)
        out[:, toe] = _toe(out[:, ankle], toe_target, foot, floor)
    return out


def solve_locked(rig: solver.RigDescription, joints, contacts=None, fps: float = 20.0,
                 options: solver.SolveOptions | None = None) -> tuple[solver.RigPose, np.ndarray]:
    """solver.solve with planted feet -> (pose, (T, 4) held contacts). The motion is solved onto the rig once; the
    rig's own joints (its proportions, travelling with the root motion) are raised or lowered so that planted
    feet stand as high as the rig's feet do at rest (a rig with other proportions floats or sinks otherwise),
    locked against the rig's floor (its lowest rest foot joint), contacts re-checked on them; then solved again
    with `options` (in place: the planted feet slide under a body that stays)."""
    options = options or solver.SolveOptions()
    joints, contacts = _checked(joints, contacts)
    placement = (solver.default_placement(rig, joints) if options.placement is None
                 else np.asarray(options.placement, dtype=np.float64))
    first = solver.solve(rig, joints, dataclasses.replace(options, motion="root motion", placement=placement))
    to_motion = np.linalg.inv(placement)
    own = solver.mapped_joint_positions(rig, first) @ to_motion[:3, :3].T + to_motion[:3, 3]
    for name in rig.bone_map.unmapped:  # a toe without a bone: where the motion has it from the rig's ankle
        toe, ankle = JOINT_INDEX[name], JOINT_INDEX[name.replace("_foot", "_ankle")]
        own[:, toe] = own[:, ankle] + joints[:, toe] - joints[:, ankle]
    world = rig.world_matrix
    rest = (solver.rest_joints(rig) @ world[:3, :3].T + world[:3, 3]) @ to_motion[:3, :3].T + to_motion[:3, 3]
    feet = solver.foot_joints(rig)
    floor = rest[feet, UP].min()
    held = held_contacts(own, contacts, fps)
    standing = [k for k, joint in enumerate(FOOT_CONTACT_JOINTS) if joint in feet]
    planted = held[:, standing]
    if planted.any():
        above_rest = own[:, FOOT_CONTACT_JOINTS, UP] - rest[FOOT_CONTACT_JOINTS, UP]
        own[..., UP] -= np.median(above_rest[:, standing][planted])
    locked = _lock(own, held, fps, floor, PIN_FADE_SECONDS)
    return solver.solve(rig, locked, dataclasses.replace(options, placement=placement)), held
