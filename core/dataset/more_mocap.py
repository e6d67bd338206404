"""Our captions for the more-mocap archive (../shared/data/more-mocap.tar.xz): one JSON object per segment in
more_mocap.jsonl, e.g.

    {"file": "accad/general/Female-Walk_turn_left_45.bvh", "start": 0.0, "end": 4.041,
     "action": "walk-turn-left", "captions": ["a woman walks forward and turns to her left.", ...]}

`file` is the BVH path inside the archive below more-mocap/; `start`/`end` are seconds on the file's own clock
(its first frame at 0, end exclusive); `action` is a lowercase hyphenated id whose side, if any, is the
separate word "left" or "right" (so mirroring can swap it); `captions` are at least three sentences that say
what the body does. Run `python -m core.dataset.more_mocap` for segments and seconds per action. Numpy only.
"""
import json
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .captions import mirror_caption
from ..timebase import FPS

DEFAULT = Path(__file__).with_name("more_mocap.jsonl")
MIN_SECONDS, MAX_SECONDS = 1.5, 10.0
MIN_CAPTIONS = 3
FIELDS = ("file", "start", "end", "action", "captions")
SIDES = ("left", "right")
_ACTION = re.compile(r"[a-z]+(?:-[a-z]+)*")
# Words that name a side or a turning sense; each must be one that mirror_caption swaps, or not a side at all.
_SIDE_LIKE = re.compile(r"[a-z]*(?:left|right|clockwise)[a-z]*", re.IGNORECASE)
_NOT_SIDES = {"upright", "bright", "brightly", "alright", "outright", "downright", "forthright"}


@dataclass(frozen=True)
class Segment:
    """One captioned stretch of a more-mocap file."""
    file: str
    start: float
    end: float
    action: str
    captions: tuple[str, ...]

    @property
    def side(self) -> str | None:
        """'left' or 'right' for a sided action id, else None."""
        return next((word for word in self.action.split("-") if word in SIDES), None)


def _side_problem(caption: str) -> str | None:
    """Why the caption's side wording would not mirror correctly, or None."""
    for match in _SIDE_LIKE.finditer(caption):
        word = match.group(0)
        if word.lower() in _NOT_SIDES:
            continue
        if mirror_caption(word) == word:
            return f"'{word}' names a side in a way mirroring cannot swap (write 'left'/'right')"
    return None


def _parsed(line: str, where: str) -> Segment:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [field for field in FIELDS if field not in record]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    extra = sorted(set(record) - set(FIELDS))
    if extra:
        raise ValueError(f"{where}: unknown field(s) {', '.join(extra)}")
    file, start, end, action, captions = (record[field] for field in FIELDS)
    if not isinstance(file, str) or not file.endswith(".bvh") or file.startswith("/") or ".." in file.split("/"):
        raise ValueError(f"{where}: file must be a relative .bvh path inside more-mocap/, got {file!r}")
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in (start, end)):
        raise ValueError(f"{where}: start and end must be numbers of seconds, got {start!r}, {end!r}")
    if start < 0 or end <= start:
        raise ValueError(f"{where}: needs 0 <= start < end, got start {start}, end {end}")
    if not MIN_SECONDS <= end - start <= MAX_SECONDS + 1e-9:
        raise ValueError(f"{where}: segment lasts {end - start:.3f} s; it must last {MIN_SECONDS} to {MAX_SECONDS} s")
    if not isinstance(action, str) or not _ACTION.fullmatch(action):
        raise ValueError(f"{where}: action must be lowercase words joined by hyphens, got {action!r}")
    words = action.split("-")
    glued = [w for w in words if w not in SIDES and _SIDE_LIKE.fullmatch(w)]
    if glued or sum(w in SIDES for w in words) > 1:
        raise ValueError(f"{where}: action {action!r} must name at most one side, as the separate word left or right")
    if not isinstance(captions, list) or not all(isinstance(c, str) and c.strip() for c in captions):
        raise ValueError(f"{where}: captions must be a list of non-empty strings")
    if len(set(captions)) < MIN_CAPTIONS:
        raise ValueError(f"{where}: {len(set(captions))} different caption(s); at least {MIN_CAPTIONS} are needed")
    segment = Segment(file, float(start), float(end), action, tuple(captions))
    for caption in captions:
        problem = _side_problem(caption)
        if problem:
            raise ValueError(f"{where}: caption {caption!r}: {problem}")
        if segment.side and not re.search(rf"\b{segment.side}\b", caption, re.IGNORECASE):
            raise ValueError(f"{where}: caption {caption!r} of sided action {action!r} does not say '{segment.side}'")
    return segment


def load_annotations(path=DEFAULT) -> list[Segment]:
    """The segments of a JSON-lines caption file (blank lines skipped); ValueError naming the line otherwise."""
    path = Path(path)
    segments = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            segments.append(_parsed(line, f"{path}:{number}"))
    return segments


def cut_segment(joints_20fps: np.ndarray, segment: Segment) -> np.ndarray:
    """The frames of a whole file's (T, ...) motion at 20 fps (frame i at i / 20 s) with start <= time < end.
    The end may overhang the last frame by less than one frame (a file's duration is frames x frame time)."""
    joints = np.asarray(joints_20fps)
    first, stop = (math.ceil(t * FPS - 1e-6) for t in (segment.start, segment.end))
    if stop > len(joints) + 1:
        raise ValueError(f"{segment.file}: segment {segment.start}-{segment.end} s ends after the motion "
                         f"({len(joints)} frames = {len(joints) / FPS:.2f} s at {FPS} fps)")
    return joints[first:min(stop, len(joints))]


def summary(segments: list[Segment]) -> str:
    """Segments and seconds per action id, most seconds first."""
    counts, seconds = defaultdict(int), defaultdict(float)
    for segment in segments:
        counts[segment.action] += 1
        seconds[segment.action] += segment.end - segment.start
    rows = [f"{'action':<24}{'segments':>9}{'seconds':>9}"]
    rows += [f"{action:<24}{counts[action]:>9}{seconds[action]:>9.1f}"
             for action in sorted(counts, key=lambda a: (-seconds[a], a))]
    rows.append(f"{'total':<24}{len(segments):>9}{sum(seconds.values()):>9.1f}")
    return "\n".join(rows)


if __name__ == "__main__":
    print(summary(load_annotations(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)))
