"""Seams between new motion and the motion it continues (numpy only: the worker and Blender both use it).

Matching positions at a seam is not enough: the model's velocity there is its own, and a regenerated range
that starts at another speed shows as a kick (1.2-4.2 x the clip's 99th-percentile velocity change with the
default model). So new motion is faded in from the motion it replaces or continues, with weights whose
velocity, acceleration and jerk are zero at the seam: next to it the result moves as the old motion did.
"""
import numpy as np

SEAM_FADE_SECONDS = 0.5  # how long new motion fades in from the motion it continues, at each seam


def seam_fade_frames(fps: float) -> int:
    """SEAM_FADE_SECONDS in frames at `fps`."""
    return round(SEAM_FADE_SECONDS * fps)


def ease(x: np.ndarray) -> np.ndarray:
    """0 -> 1 over [0, 1] with zero velocity, acceleration and jerk at both ends (septic smoothstep)."""
    x = np.clip(x, 0.0, 1.0)
    return x ** 4 * (35.0 + x * (-84.0 + x * (70.0 - 20.0 * x)))


def fade(new: np.ndarray, before: np.ndarray | None, after: np.ndarray | None, frames: int) -> np.ndarray:
    """(n, ...) `new` faded in from `before` over its first `frames` frames and out into `after` over its
    last (at most half of it each, or all of it but one frame with one seam): before/after are motions of the
    same shape that the seams continue, None where there is no seam. frames 0 leaves `new` as it is."""
    n = len(new)
    if frames <= 0:
        return new
    k = max(1, min(frames, n // 2 if before is not None and after is not None else n - 1))
    t = np.arange(n).reshape(-1, *(1,) * (new.ndim - 1))
    if before is not None:
        new = before + ease((t + 1) / (k + 1)) * (new - before)
    if after is not None:
        new = after + ease((n - t) / (k + 1)) * (new - after)
    return new


def carried_on(before: np.ndarray, after: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The two clips around a gap of `frames` frames carried into it at constant velocity: (the clip before
    going on from its last frame, the clip after coming from before its first), each (frames, ...), the motions
    a fill of the gap fades from and into."""
    t = np.arange(1, frames + 1).reshape(-1, *(1,) * (before.ndim - 1))
    velocity_before = before[-1] - before[-2] if len(before) > 1 else np.zeros_like(before[-1])
    velocity_after = after[1] - after[0] if len(after) > 1 else np.zeros_like(after[0])
    return before[-1] + t * velocity_before, after[0] - (frames + 1 - t) * velocity_after
