"""The two clocks. Every motion here is at HumanML3D's 20 fps (model frames, what the models speak; a range of them
is half-open, [start, stop)); mocap and Blender scenes come at their own rates (scene frames; a range of them is
inclusive, first-last, as Blender counts it: SceneRange). Motion moves between the two by linear interpolation over
time: interpolating rather than dropping frames keeps the timing exact for rates that are not multiples (30 -> 20
fps). All conversion between the clocks is here (docs/architecture.md, "Two clocks"). Numpy only: the worker, the
data preparation and Blender share it."""
import math
from dataclasses import dataclass

import numpy as np

FPS = 20  # HumanML3D's frame rate: model frames
ON_FRAME = 1e-6  # times are computed in floating point (29.97 fps is 30000/1001): this close to a frame is on it


def to_model_frames(scene_frames: float, fps: float) -> float:
    """A time in scene frames at `fps` -> the same time in model frames."""
    return scene_frames * FPS / fps


def to_scene_frames(model_frames: float, fps: float) -> float:
    """A time in model frames -> the same time in scene frames at `fps`."""
    return model_frames * fps / FPS


@dataclass(frozen=True, order=True)
class SceneRange:
    """Scene frames first..last, both included: a range as the animator and Blender count it."""
    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def frames(self) -> int:
        return self.last - self.first + 1

    def model_range(self, origin: int, fps: float) -> tuple[int, int]:
        """The model frames [start, stop) whose times fall inside this range at `fps`, model frame 0 being scene
        frame `origin`; at least one frame."""
        start = math.ceil(to_model_frames(self.first - origin, fps) - ON_FRAME)
        stop = math.floor(to_model_frames(self.last - origin, fps) + ON_FRAME) + 1
        return start, max(stop, start + 1)

    def model_frames_inside(self, fps: float) -> int:
        """Model frames that fit strictly between the scene frames on either side of this range (a gap's fill):
        the range's span plus one frame, in model frames, less one; at least one."""
        return max(1, round(to_model_frames(self.frames + 1, fps)) - 1)

    def fill_rate(self, model_frames: int) -> float:
        """The frame rate at which `model_frames` frames, with one more on either side, span this range's frames
        with the scene frames on either side of it: the model's fill of a gap, played in the gap."""
        return FPS * (self.frames + 1) / (model_frames + 1)


def resampled_count(frames: int, fps: float, source_fps: float = FPS) -> int:
    """Frames at `fps` covering `frames` frames at source_fps, the last at or before the last source frame."""
    return math.floor((frames - 1) * fps / source_fps + ON_FRAME) + 1


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
