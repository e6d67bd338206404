"""What one request to the models can make, in model frames (20 fps, core.timebase). Torch-free, so that the
worker checks requests against these numbers and Blender checks an operator's input against the same ones before
asking (docs/momask.md, "Lengths and frames")."""
from .timebase import FPS

MIN_FRAMES = 8  # 2 tokens: the shortest motion the transformers were trained on
MAX_FRAMES = 196  # 49 tokens: the longest, one transformer window
EDIT_CONTEXT_FRAMES = 16  # frames of source the model sees at least on each side of a range in a longer motion
MAX_RANGE_FRAMES = MAX_FRAMES - 2 * EDIT_CONTEXT_FRAMES  # the longest range a motion of more than MAX_FRAMES takes


def requested_frames(seconds: float) -> int | None:
    """A requested duration in model frames, None for 0 s (the model chooses). ValueError outside MIN_FRAMES ..
    MAX_FRAMES, saying what to choose."""
    if seconds == 0:
        return None
    frames = round(seconds * FPS)
    if not MIN_FRAMES <= frames <= MAX_FRAMES:
        raise ValueError(f"choose {MIN_FRAMES / FPS:g} to {MAX_FRAMES / FPS:g} s, or 0 to let the model choose")
    return frames
