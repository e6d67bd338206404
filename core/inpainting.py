"""Regenerate frame ranges of an existing motion: inpainting and in-betweening (docs/momask.md, "Inpainting").

The masked transformer rewrites the base tokens that overlap a range; every other token, residual layers included, stays
the source's (unlike the released script). Tokens cover 4 frames but ranges are frames, so the model's output is never
used outside a range: those frames are the source's, copied. Inside, the decoded joints are put on the source's skeleton
and trajectory (matched at the frame before the range, the drift carried off smoothly so that the range ends where the
source goes on) and faded in from the source's own frames at each side (core.blending), so the seams keep the source's
velocity. Joints are the result to splice into an animation: features integrate the root trajectory, so an edit's
features can only follow its joints approximately.

A source longer than the transformers' 196 frames is edited in 196-frame windows around its ranges.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .blending import carried_on, ease, fade, seam_fade_frames
from .features import (CONTACTS, FEATURE_DIM, RIC, ROOT_Y, forward_kinematics, inverse_kinematics,
                           joints_to_features, recover_from_ric)
from .models import MoMaskModels
from .protocol import BadRequest
from .quaternion import qrot
from .limits import EDIT_CONTEXT_FRAMES, MAX_FRAMES, MAX_RANGE_FRAMES, MIN_FRAMES
from .sampling import (StepCounter, decode_features, masked_decode, network_passes, residual_decode,
                           start_request)
from .footlock import UP, lock_feet
from .skeleton import FACE_JOINTS, FOOT_CONTACT_JOINTS, LEG_LENGTH_JOINTS, NUM_JOINTS, PARENTS, RAW_OFFSETS
from .timebase import FPS

BLEND_FRAMES = seam_fade_frames(FPS)  # frames over which a range fades from the source into the new motion


@dataclass
class EditWindow:
    """Source frames [start, stop) that one transformer pass saw, and what it regenerated there."""
    start: int
    stop: int
    ranges: list[tuple[int, int]]  # frame ranges of the source regenerated in this window
    editable: np.ndarray  # (n,) bool, tokens of the window that were regenerated
    tokens: np.ndarray  # (n, Q) the window's token ids after the edit (-1 = no code in that layer)


@dataclass
class InpaintedMotion:
    features: np.ndarray  # (T, 263) float32; rows outside the ranges are the source's when it was features
    joints: np.ndarray  # (T, 22, 3) float32; frames outside the ranges are the source's exactly
    contacts: np.ndarray  # (T, 4) bool, from the features' contact channels
    length: int
    windows: list[EditWindow]


def edit_tokens(models: MoMaskModels, cond: torch.Tensor, token_lens: torch.Tensor, source_ids: torch.Tensor,
                editable: torch.Tensor, generators: list[torch.Generator], on_step: Callable[[], None], *,
                steps: int, cond_scale: float, res_cond_scale: float, temperature: float,
                topk: float) -> torch.Tensor:
    """(B, n, Q) tokens: `editable` (B, n) positions regenerated, all layers of the others kept from
    `source_ids` (B, n, Q), row b's randomness from generators[b]. Rows whose condition is all zeros (no prompt)
    skip guidance: it changes nothing."""
    if not cond.any():
        cond_scale = res_cond_scale = 1.0
    options = dict(temperature=temperature, topk=topk, generator=generators, on_step=on_step)
    ids = masked_decode(models.mask, cond, token_lens, steps=steps, cond_scale=cond_scale,
                        source_ids=source_ids[..., 0], editable=editable, **options)
    if models.residual is None:
        return ids[..., None]
    return residual_decode(models.residual, ids, cond, token_lens, cond_scale=res_cond_scale,
                           source_ids=source_ids, editable=editable, **options)


def _wrap(angle):
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _yaw(angle: np.ndarray) -> np.ndarray:
    """(...) angles -> (..., 4) quaternions turning about +y (+z towards +x)."""
    angle = np.asarray(angle, dtype=np.float64)
    return np.stack([np.cos(angle / 2), 0 * angle, np.sin(angle / 2), 0 * angle], axis=-1)


def facing_yaw(joints: np.ndarray) -> np.ndarray:
    """(..., 22, 3) -> (...) heading in radians, atan2(x, z) of the direction the body faces (hips and
    shoulders, as HumanML3D measures it); turning a frame by R_y(a) adds a."""
    r_hip, l_hip, r_sdr, l_sdr = FACE_JOINTS
    across = joints[..., r_hip, :] - joints[..., l_hip, :] + joints[..., r_sdr, :] - joints[..., l_sdr, :]
    return np.arctan2(across[..., 2], -across[..., 0])  # forward = up x across = (across_z, 0, -across_x)


def _bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(22,) median length of each joint's bone to its parent (0 for the root)."""
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, PARENTS[1:]], axis=-1)
    return np.concatenate([[0.0], np.median(lengths, axis=0)])


def match_skeleton(decoded: np.ndarray, bone_lengths: np.ndarray) -> np.ndarray:
    """Decoded (T, 22, 3) joints re-posed on bones of `bone_lengths` (22,): every bone keeps its direction,
    the root path scales with the leg length (as HumanML3D's uniform skeleton, the other way round)."""
    legs = list(LEG_LENGTH_JOINTS)
    scale = bone_lengths[legs].sum() / _bone_lengths(decoded)[legs].sum()
    identity = np.broadcast_to(np.array([1.0, 0.0, 0.0, 0.0]), (len(decoded), 4))
    return forward_kinematics(inverse_kinematics(decoded, identity), decoded[:, 0] * scale,
                              RAW_OFFSETS * bone_lengths[:, None])


def splice_range(source: np.ndarray, decoded: np.ndarray, start: int, stop: int,
                 blend_frames: int = BLEND_FRAMES) -> np.ndarray:
    """The frames [start, stop) to put into `source` (T, 22, 3), taken from `decoded` (T, 22, 3), the same
    frames as the model made them (placed anywhere, any skeleton) -> (stop - start, 22, 3).

    1. `decoded` takes the source's bone lengths (median over the frames outside the range).
    2. Each frame is turned about +y and moved: at the frame before the range (the anchor s) the decoded
       root and heading equal the source's; the turn and shift needed at the frame after it (anchor e)
       are reached by easing over s..e, so the range ends on the source's trajectory. With one
       anchor (prefix or suffix range) the motion is placed rigidly at it.
    3. The range fades in from the source's own frames over `blend_frames` frames at each anchor (at most
       half the range; core.blending.fade), so joint positions and velocities run on from the source's."""
    length = len(source)
    if not 0 <= start < stop <= length or decoded.shape != source.shape:
        raise ValueError(f"splice_range: range [{start}, {stop}) of {length} frames, decoded {decoded.shape} "
                         f"for source {source.shape}")
    outside = np.r_[0:start, stop:length]
    decoded = match_skeleton(decoded, _bone_lengths(source[outside] if len(outside) else source))
    before, after = (start - 1 if start > 0 else None), (stop if stop < length else None)
    s = before if before is not None else (after if after is not None else 0)
    e = after if after is not None else s
    turn_s, turn_e = _wrap(facing_yaw(source[[s, e]]) - facing_yaw(decoded[[s, e]]))
    turn_e = turn_s + _wrap(turn_e - turn_s)
    drift = source[e, 0] - source[s, 0] - qrot(_yaw(turn_e), decoded[e, 0] - decoded[s, 0])
    frames = np.arange(start, stop)
    weight = ease((frames - s) / (e - s)) if e > s else np.zeros(len(frames))
    turn = turn_s + weight * (turn_e - turn_s)
    placed = qrot(_yaw(turn)[:, None], decoded[frames] - decoded[s, 0]) + source[s, 0] + weight[:, None, None] * drift
    replaced = source[start:stop]
    return fade(placed, replaced if before is not None else None, replaced if after is not None else None,
                blend_frames)


def seam_velocity_ratio(joints: np.ndarray, seam_frames, percentile: float = 99.0) -> np.ndarray:
    """How rough each seam is compared with the clip itself: for a seam at frame s (the first frame after a
    join), the largest change of joint velocity around it (max over joints of |v_t - v_{t-1}|, v_t the
    displacement t -> t+1, t = s-1 and s) over the `percentile` of that change in the rest of the clip.
    <= 1 means no rougher than the clip's own motion at that percentile."""
    joints = np.asarray(joints, dtype=np.float64)
    seams = np.atleast_1d(np.asarray(seam_frames, dtype=int))
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) < 8:
        raise ValueError(f"seam_velocity_ratio: expected joints (T >= 8, 22, 3), got {joints.shape}")
    if ((seams < 2) | (seams > len(joints) - 2)).any():
        raise ValueError(f"seam_velocity_ratio: seams must lie in 2..{len(joints) - 2}, got {seams.tolist()}")
    # jerk[i] is the velocity change at frame i + 1 (between displacements i -> i+1 and i+1 -> i+2)
    jerk = np.linalg.norm(np.diff(joints, n=2, axis=0), axis=-1).max(axis=-1)
    near = (seams[:, None] - 2 + np.arange(2)).ravel()
    rest = np.delete(jerk, near)
    return jerk[seams[:, None] - 2 + np.arange(2)].max(axis=1) / np.percentile(rest, percentile)


def source_motion(source) -> tuple[np.ndarray, np.ndarray, bool]:
    """(features (T, 263), joints (T, 22, 3), given as features?) in float32; ValueError for a source `inpaint`
    cannot edit (shape, NaN, too short), which callers can check before loading a model. Joints get their last
    frame repeated before computing features, so feature row t describes frame t (joints_to_features gives one
    row fewer than frames)."""
    source = np.asarray(source, dtype=np.float32)
    if source.ndim == 2 and source.shape[1] == FEATURE_DIM:
        features, joints, as_features = source, recover_from_ric(source).astype(np.float32), True
    elif source.ndim == 3 and source.shape[1:] == (NUM_JOINTS, 3):
        joints, as_features = source, False
        if not np.isfinite(joints).all():
            raise BadRequest("inpaint: the source joints contain NaN or infinite values")
        features = joints_to_features(np.concatenate([joints, joints[-1:]])).astype(np.float32)
    else:
        raise BadRequest(f"inpaint: the source must be features (T, {FEATURE_DIM}) or joints "
                         f"(T, {NUM_JOINTS}, 3), got shape {source.shape}")
    if not np.isfinite(features).all():
        raise BadRequest("inpaint: the source features contain NaN or infinite values")
    if len(features) < MIN_FRAMES:
        raise BadRequest(f"inpaint: the source has {len(features)} frames; at least {MIN_FRAMES} are needed")
    return features, joints, as_features


def check_ranges(ranges, length: int) -> list[tuple[int, int]]:
    """Frame ranges [start, stop) -> sorted list; touching ranges are merged. Empty, out of bounds and
    overlapping ranges are errors, and so are ranges longer than MAX_RANGE_FRAMES in a long motion."""
    def is_pair(x):
        return isinstance(x, (tuple, list, np.ndarray)) and len(x) == 2 and all(
            isinstance(v, (int, np.integer)) for v in x)
    if is_pair(ranges):
        ranges = [ranges]
    if not isinstance(ranges, (tuple, list, np.ndarray)) or not len(ranges):
        raise BadRequest(f"inpaint: no frame range given; expected (start, stop) pairs, got {ranges!r}")
    checked = []
    for i, pair in enumerate(ranges):
        if not is_pair(pair):
            raise BadRequest(f"inpaint: range {i} must be a pair of frame numbers (start, stop), got {pair!r}")
        start, stop = int(pair[0]), int(pair[1])
        if start >= stop:
            raise BadRequest(f"inpaint: range {i} [{start}, {stop}) is empty; stop must be after start")
        if start < 0 or stop > length:
            raise BadRequest(f"inpaint: range {i} [{start}, {stop}) is outside the motion's frames [0, {length})")
        checked.append((start, stop))
    checked.sort()
    merged = [checked[0]]
    for start, stop in checked[1:]:
        if start < merged[-1][1]:
            raise BadRequest(f"inpaint: ranges [{merged[-1][0]}, {merged[-1][1]}) and [{start}, {stop}) overlap")
        merged[-1:] = [(merged[-1][0], stop)] if start == merged[-1][1] else [merged[-1], (start, stop)]
    for start, stop in merged:
        if length > MAX_FRAMES and stop - start > MAX_RANGE_FRAMES:
            raise BadRequest(f"inpaint: range [{start}, {stop}) has {stop - start} frames (touching ranges count as "
                             f"one); in a motion longer than {MAX_FRAMES} frames a range can have at most "
                             f"{MAX_RANGE_FRAMES}")
    return merged


def edit_windows(length: int, ranges: list[tuple[int, int]]) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """(start, stop, ranges) of each window the transformer edits: the whole motion when it fits in
    MAX_FRAMES, else MAX_FRAMES-frame windows centred on groups of ranges that fit in one together with
    EDIT_CONTEXT_FRAMES frames of source on each side."""
    if length <= MAX_FRAMES:
        return [(0, length, list(ranges))]
    groups = [[ranges[0]]]
    for pair in ranges[1:]:
        if pair[1] - groups[-1][0][0] <= MAX_RANGE_FRAMES:
            groups[-1].append(pair)
        else:
            groups.append([pair])
    windows = []
    for group in groups:
        centre = (group[0][0] + group[-1][1]) // 2
        start = min(max(centre - MAX_FRAMES // 2, 0), length - MAX_FRAMES)
        windows.append((start, start + MAX_FRAMES, group))
    return windows


def inpaint(models: MoMaskModels, text_encoder, source, ranges, prompt: str = "", *, candidates: int = 1,
            seed: int | None = None, steps: int = 10, cond_scale: float = 4.0, res_cond_scale: float = 5.0,
            temperature: float = 1.0, topk: float = 0.9, blend_frames: int = BLEND_FRAMES,
            progress: Callable[[int, int], None] | None = None,
            cancel: Callable[[], bool] | None = None) -> list[InpaintedMotion]:
    """Regenerate the frame `ranges` of `source` under `prompt` -> one InpaintedMotion per candidate.

    source: de-normalised features (T, 263), or joints (T, 22, 3) in metres, y up, 20 fps; T >= 8.
    ranges: one (start, stop) pair or several, frames [start, stop) at any frame. prompt "": unconditional.
    Joints outside the ranges are the source's (as float32) exactly; inside, see `splice_range`.
    Features: from a joints source, HumanML3D features of the returned joints (last frame repeated, so row
    t describes frame t); from a features source, its rows outside the ranges exactly, and inside the rows
    of the returned joints' features with the height channels on the source's floor. Their velocities,
    root-relative joints and contacts describe the returned joints; integrating them (recover_from_ric)
    follows the joints only approximately after a range (the root trajectory is relative).
    All windows and candidates run as one batch; progress/cancel as in `generate`."""
    features, joints, as_features = source_motion(source)
    length = len(features)
    ranges = check_ranges(ranges, length)
    if not isinstance(blend_frames, (int, np.integer)) or blend_frames < 0:
        raise BadRequest(f"inpaint: blend_frames must be a whole number of frames >= 0, got {blend_frames!r}")
    cond, generators = start_request(models, text_encoder, [prompt], candidates, steps, topk, temperature, seed,
                                     "inpaint")
    windows = edit_windows(length, ranges)
    fpt, window_len = models.rvq.frames_per_token, windows[0][1] - windows[0][0]
    n = -(-window_len // fpt)
    editable = np.zeros((len(windows), n), dtype=bool)
    normalised = np.empty((len(windows), n * fpt, FEATURE_DIM), dtype=np.float32)
    for w, (start, stop, group) in enumerate(windows):
        for a, b in group:
            editable[w, (a - start) // fpt: -(-(b - start) // fpt)] = True
        rows = (features[start:stop] - models.mean) / models.std
        normalised[w] = np.concatenate([rows, np.repeat(rows[-1:], n * fpt - window_len, axis=0)])
    num_layers = models.residual.num_quantizers if models.residual is not None else 1
    counter = StepCounter(network_passes(models, steps), progress, cancel)
    device = cond.device
    with torch.inference_mode():
        source_ids = models.rvq.encode(torch.from_numpy(normalised).to(device))[..., :num_layers]
        batch = len(windows) * candidates
        token_lens = torch.full((batch,), n, device=device)
        ids = edit_tokens(models, cond.expand(batch, -1), token_lens, source_ids.repeat_interleave(candidates, 0),
                          torch.from_numpy(editable).to(device).repeat_interleave(candidates, 0),
                          generators * len(windows),
                          counter, steps=steps, cond_scale=cond_scale, res_cond_scale=res_cond_scale,
                          temperature=temperature, topk=topk)
        decoded = decode_features(models, ids, token_lens)
    tokens, motions = ids.cpu().numpy(), []
    for c in range(candidates):
        out, edits = joints.copy(), []
        for w, (start, stop, group) in enumerate(windows):
            row = w * candidates + c
            window_joints = recover_from_ric(decoded[row][:window_len])
            for a, b in group:
                out[a:b] = splice_range(joints[start:stop].astype(np.float64), window_joints, a - start, b - start,
                                        blend_frames)
            edits.append(EditWindow(start, stop, group, editable[w], tokens[row]))
        motions.append(_with_features(out, features, ranges, as_features, edits))
    return motions


def lock_feet_in_ranges(motion: InpaintedMotion, source, blend_frames: int = BLEND_FRAMES) -> InpaintedMotion:
    """`motion`, inpaint's result for `source`, with the feet planted inside its ranges as Regenerate Range does
    in Blender with Lock Feet: the whole motion locked (core.footlock.lock_feet with its contacts, on the lowest
    floor the source's feet reach), each range faded in from and out into the source's own frames as the splice
    is, and every frame outside the ranges left exactly as it was (locking the whole motion would move kept
    knees and feet: a pin holds the middle of a contact that runs across a range's edge). Features are those of
    the locked joints, as `inpaint` makes them."""
    features, joints, as_features = source_motion(source)
    if motion.joints.shape != joints.shape:
        raise ValueError(f"lock_feet_in_ranges: motion {motion.joints.shape} is not an edit of source {joints.shape}")
    ranges = [pair for window in motion.windows for pair in window.ranges]
    floor = joints[:, FOOT_CONTACT_JOINTS, UP].min()
    locked = lock_feet(motion.joints, motion.contacts, fps=FPS, floor=floor)
    out, length = motion.joints.copy(), len(joints)
    for a, b in ranges:
        out[a:b] = fade(locked[a:b], joints[a:b] if a > 0 else None, joints[a:b] if b < length else None,
                        blend_frames)
    return _with_features(out, features, ranges, as_features, motion.windows)


def _with_features(joints: np.ndarray, source_features: np.ndarray, ranges, as_features: bool,
                   windows: list[EditWindow]) -> InpaintedMotion:
    """Wrap the spliced joints with their features (see `inpaint`)."""
    features = joints_to_features(np.concatenate([joints, joints[-1:]]).astype(np.float64))
    if as_features:
        floor = joints[0, 0, 1] - features[0, ROOT_Y.start]  # joints_to_features puts the floor at 0
        features[:, ROOT_Y] += floor
        features[:, RIC.start + 1: RIC.stop: 3] += floor
        inside = np.zeros(len(features), dtype=bool)
        for a, b in ranges:
            inside[a:b] = True
        features[~inside] = source_features[~inside]
    features = features.astype(np.float32)
    return InpaintedMotion(features, joints, features[:, CONTACTS] > 0.5, len(joints), windows)


def inbetween(models: MoMaskModels, text_encoder, before, after, gap_frames: int, prompt: str = "",
              **options) -> list[InpaintedMotion]:
    """Fill `gap_frames` frames between the joints `before` (Tb, 22, 3) and `after` (Ta, 22, 3), both in one
    world space, under `prompt` ("" = unconditional) -> per candidate the whole Tb + gap + Ta frames, the
    gap at [Tb, Tb + gap). The model sees (and the fill fades from and into) the two clips carried into the
    gap at their velocities, crossfaded (core.blending); `options` are `inpaint`'s."""
    before, after = np.asarray(before, dtype=np.float32), np.asarray(after, dtype=np.float32)
    for name, part in (("before", before), ("after", after)):
        if part.ndim != 3 or part.shape[1:] != (NUM_JOINTS, 3) or len(part) < 1:
            raise BadRequest(f"inbetween: `{name}` must be joints (T >= 1, {NUM_JOINTS}, 3), got {part.shape}")
    if not isinstance(gap_frames, (int, np.integer)) or gap_frames < 1:
        raise BadRequest(f"inbetween: gap_frames must be a whole number of frames >= 1, got {gap_frames!r}")
    lead_in, lead_out = carried_on(before, after, gap_frames)
    gap = fade(lead_in, None, lead_out, gap_frames).astype(np.float32)
    source = np.concatenate([before, gap, after])
    return inpaint(models, text_encoder, source, [(len(before), len(before) + gap_frames)], prompt, **options)
