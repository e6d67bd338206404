"""Frame rates. Every motion here is at HumanML3D's 20 fps (what the models speak); mocap and Blender scenes
come at their own rates, and motion moves between the two by linear interpolation over time. Interpolating
rather than dropping frames keeps the timing exact for rates that are not multiples (30 -> 20 fps).
Numpy only: the worker, the data preparation and Blender share it."""
import math

import numpy as np

FPS = 20  # HumanML3D's frame rate


def resampled_count(frames: int, fps: float, source_fps: float = FPS) -> int:
    """Frames at `fps` covering `frames` frames at source_fps, the last at or before the last source frame."""
    return math.floor((frames - 1) * fps / source_fps + 1e-6) + 1


def resample(values, fps: float, source_fps: float = FPS) -> np.ndarray:
    """(T, ...) values at source_fps (joint positions, contact weights) -> (resampled_count, ...) at fps, float64,
    by linear interpolation between the neighbouring source frames."""
    values = np.asarray(values, dtype=np.float64)
    if fps <= 0 or source_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {source_fps} -> {fps}")
    if len(values) < 2:
        return values.copy()
    position = np.arange(resampled_count(len(values), fps, source_fps)) * (source_fps / fps)
    below = np.minimum(np.floor(position).astype(int), len(values) - 1)
    above = np.minimum(below + 1, len(values) - 1)
    weight = (position - below).reshape((-1,) + (1,) * (values.ndim - 1))
    return (1 - weight) * values[below] + weight * values[above]
