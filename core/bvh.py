"""BVH motion capture files: parse, forward kinematics, write. Pure numpy/scipy; no torch.

BVH conventions followed (those of the common readers, Blender's included): a joint's channels may come in any
order; its rotation channels, read left to right, are intrinsic Euler angles in degrees (``Zrotation Xrotation
Yrotation`` is R = Rz Rx Ry); position channels, on any joint, replace that joint's OFFSET components.
"""
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from .skeleton import rest_positions

CHANNEL_NAMES = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
_CANONICAL_CHANNEL = {name.lower(): name for name in CHANNEL_NAMES}


class BvhError(ValueError):
    """A file that is not valid BVH; the message names the file, the line and what is wrong."""


@dataclass
class Bvh:
    """A parsed BVH file; joints in file (depth-first) order, every parent before its children."""
    names: list[str]
    parents: np.ndarray                   # (J,) int, -1 for the root
    offsets: np.ndarray                   # (J, 3) OFFSET of each joint from its parent, file units
    channels: list[tuple[str, ...]]       # per joint, channel names in file order
    end_sites: list[np.ndarray | None]    # per joint, its End Site offset or None
    frame_time: float                     # seconds per frame
    motion: np.ndarray                    # (F, C) channel values, joints' channels concatenated
    source: str = "<string>"

    @property
    def fps(self) -> float:
        """Frame rate; snapped to the nearest integer when within 1e-4 of it, because files write the frame
        time to ~6 digits (0.016667 is 60 fps, not 59.9988) and resampling counts frames from the rate."""
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) <= 1e-4 * fps else fps

    def rest_positions(self) -> np.ndarray:
        """(J, 3) joint positions with every rotation zero and no position channels: the offsets accumulated."""
        return rest_positions(self.offsets, self.parents)

    def global_positions(self) -> np.ndarray:
        """(F, J, 3) joint positions of every frame."""
        return self.global_transforms()[1]

    def global_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """((F, J, 3, 3) world rotations, (F, J, 3) world positions) of every joint and frame: forward
        kinematics, vectorised over frames. A joint's rotation carries its children and End Site."""
        num_frames, num_joints = len(self.motion), len(self.names)
        positions = np.zeros((num_frames, num_joints, 3))
        if num_frames == 0:
            return np.zeros((0, num_joints, 3, 3)), positions
        rotations: list[Rotation] = []
        column = 0
        for j, (parent, channels) in enumerate(zip(self.parents, self.channels)):
            values = self.motion[:, column:column + len(channels)]
            column += len(channels)
            translation = np.tile(self.offsets[j], (num_frames, 1))
            euler_order, euler_columns = "", []
            for k, channel in enumerate(channels):
                axis = "XYZ".index(channel[0])
                if channel.endswith("position"):
                    translation[:, axis] = values[:, k]
                else:
                    euler_order += channel[0]
                    euler_columns.append(k)
            local = (Rotation.from_euler(euler_order, values[:, euler_columns], degrees=True) if euler_order
                     else Rotation.identity(num_frames))
            if parent < 0:
                rotations.append(local)
                positions[:, j] = translation
            else:
                rotations.append(rotations[parent] * local)
                positions[:, j] = positions[:, parent] + rotations[parent].apply(translation)
        return np.stack([rotation.as_matrix() for rotation in rotations], axis=1), positions


class _Tokens:
    """The hierarchy's whitespace-separated words with their line numbers, read front to back."""

    def __init__(self, lines: list[str], source: str):
        self.items = [(word, number) for number, line in enumerate(lines, 1) for word in line.split()]
        self.index = 0
        self.source = source

    def error(self, message: str, line: int | None = None) -> BvhError:
        if line is None:
            line = self.items[min(self.index, len(self.items) - 1)][1] if self.items else 1
        return BvhError(f"{self.source}, line {line}: {message}")

    def next(self, what: str) -> tuple[str, int]:
        if self.index >= len(self.items):
            raise self.error(f"hierarchy ends early, expected {what} (file truncated?)")
        self.index += 1
        return self.items[self.index - 1]

    def peek(self) -> str | None:
        return self.items[self.index][0] if self.index < len(self.items) else None

    def expect(self, keyword: str) -> None:
        word, line = self.next(f"'{keyword}'")
        if word.upper() != keyword.upper():
            raise self.error(f"expected '{keyword}', found '{word}'", line)

    def rest_of_line(self, line: int) -> str:
        """Words that follow on the same line, up to an opening brace: joint names may contain spaces."""
        words = []
        while self.index < len(self.items) and self.items[self.index][1] == line and self.peek() != "{":
            words.append(self.next("a name")[0])
        return " ".join(words)

    def numbers(self, count: int, what: str) -> np.ndarray:
        values = []
        for _ in range(count):
            word, line = self.next(f"{count} numbers after {what}")
            try:
                values.append(float(word))
            except ValueError:
                raise self.error(f"expected {count} numbers after {what}, found '{word}'", line) from None
        return np.array(values)


def _parse_joint(tokens: _Tokens, parent: int, skeleton: dict) -> None:
    """One ROOT/JOINT block (its keyword already read), recursively with its children."""
    keyword_line = tokens.items[tokens.index - 1][1]
    name = tokens.rest_of_line(keyword_line)
    if not name:
        raise tokens.error("joint without a name", keyword_line)
    if name in skeleton["names"]:
        raise tokens.error(f"joint name '{name}' appears twice", keyword_line)
    tokens.expect("{")
    tokens.expect("OFFSET")
    offset = tokens.numbers(3, f"OFFSET of '{name}'")
    channels: list[str] = []
    if (tokens.peek() or "").upper() == "CHANNELS":
        tokens.next("CHANNELS")
        word, line = tokens.next("the channel count")
        if not word.isdigit():
            raise tokens.error(f"expected the channel count of '{name}', found '{word}'", line)
        count = int(word)
        for _ in range(count):
            word, line = tokens.next(f"{count} channel names for '{name}'")
            channel = _CANONICAL_CHANNEL.get(word.lower())
            if channel is None:
                raise tokens.error(f"unknown channel '{word}' on joint '{name}' "
                                   f"(expected one of {', '.join(CHANNEL_NAMES)})", line)
            if channel in channels:
                raise tokens.error(f"joint '{name}' lists channel '{channel}' twice", line)
            channels.append(channel)
    index = len(skeleton["names"])
    skeleton["names"].append(name)
    skeleton["parents"].append(parent)
    skeleton["offsets"].append(offset)
    skeleton["channels"].append(tuple(channels))
    skeleton["end_sites"].append(None)
    while True:
        word, line = tokens.next(f"'}}' closing joint '{name}'")
        keyword = word.upper()
        if keyword == "JOINT":
            _parse_joint(tokens, index, skeleton)
        elif keyword == "END":
            tokens.rest_of_line(line)  # "Site"
            tokens.expect("{")
            tokens.expect("OFFSET")
            skeleton["end_sites"][index] = tokens.numbers(3, f"End Site OFFSET of '{name}'")
            tokens.expect("}")
        elif word == "}":
            return
        else:
            raise tokens.error(f"unexpected '{word}' inside joint '{name}'", line)


def _header_value(lines: list[str], start: int, pattern: str, what: str, source: str) -> tuple[str, int]:
    """The value of the first non-blank line at or after `start`, which must match `pattern`."""
    number = start
    while number < len(lines) and not lines[number].strip():
        number += 1
    match = re.fullmatch(pattern, lines[number].strip(), re.IGNORECASE) if number < len(lines) else None
    if match is None:
        found = f"found '{lines[number].strip()[:40]}'" if number < len(lines) else "the file ends"
        raise BvhError(f"{source}, line {number + 1}: expected '{what}', {found}")
    return match.group(1), number + 1


def _parse_motion(lines: list[str], start: int, num_channels: int, source: str) -> tuple[float, np.ndarray]:
    """The MOTION section after its keyword line: frame count, frame time and the (F, C) channel values."""
    count, number = _header_value(lines, start, r"frames\s*:?\s*(\d+)", "Frames: <count>", source)
    num_frames = int(count)
    text, number = _header_value(lines, number, r"frame\s*time\s*:?\s*(\S+)", "Frame Time: <seconds>", source)
    try:
        frame_time = float(text)
    except ValueError:
        frame_time = float("nan")
    if not frame_time > 0:
        raise BvhError(f"{source}, line {number}: Frame Time must be a positive number, found '{text}'")
    rows = [(n, line.split()) for n, line in enumerate(lines[number:], number + 1) if line.strip()]
    frames = rows[:num_frames]
    for frame, (n, values) in enumerate(frames):
        if len(values) != num_channels:
            if not _all_numbers(values):
                raise BvhError(f"{source}, line {n}: expected frame {frame} of {num_frames}, "
                               f"found '{' '.join(values)[:40]}'")
            raise BvhError(f"{source}, line {n}: frame {frame} has {len(values)} values, the hierarchy "
                           f"declares {num_channels} channels")
    if len(frames) < num_frames:
        raise BvhError(f"{source}: 'Frames: {num_frames}' but only {len(frames)} frame lines follow "
                       f"(file truncated?)")
    try:
        motion = np.array([values for _, values in frames], dtype=np.float64)
    except ValueError:
        n = next(n for n, values in frames if not _all_numbers(values))
        raise BvhError(f"{source}, line {n}: frame values are not all numbers") from None
    extra = [n for n, values in rows[num_frames:] if len(values) == num_channels and _all_numbers(values)]
    if extra:
        raise BvhError(f"{source}, line {extra[0]}: more frame lines than 'Frames: {num_frames}'")
    motion = motion.reshape(num_frames, num_channels)
    if not np.isfinite(motion).all():
        n = rows[int(np.argwhere(~np.isfinite(motion))[0, 0])][0]
        raise BvhError(f"{source}, line {n}: frame values are not all finite")
    return frame_time, motion


def _all_numbers(words: list[str]) -> bool:
    try:
        np.array(words, dtype=np.float64)
    except ValueError:
        return False
    return True


def parse_bvh(text: str, source: str = "<string>") -> Bvh:
    """Parse BVH text; `source` names the file in error messages."""
    lines = text.splitlines()
    motion_line = next((n for n, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    if motion_line is None:
        raise BvhError(f"{source}: no MOTION line after the hierarchy (file truncated or not BVH)")
    tokens = _Tokens(lines[:motion_line], source)
    tokens.expect("HIERARCHY")
    tokens.expect("ROOT")
    skeleton = {"names": [], "parents": [], "offsets": [], "channels": [], "end_sites": []}
    _parse_joint(tokens, -1, skeleton)
    if tokens.peek() is not None:
        word = tokens.peek()
        problem = "a second ROOT (only one skeleton per file is supported)" if word.upper() == "ROOT" else \
            f"unexpected '{word}' after the root joint's closing brace"
        raise tokens.error(problem)
    num_channels = sum(len(channels) for channels in skeleton["channels"])
    frame_time, motion = _parse_motion(lines, motion_line + 1, num_channels, source)
    return Bvh(names=skeleton["names"], parents=np.array(skeleton["parents"], dtype=np.int64),
               offsets=np.array(skeleton["offsets"]).reshape(-1, 3), channels=skeleton["channels"],
               end_sites=skeleton["end_sites"], frame_time=frame_time, motion=motion, source=source)


def read_bvh(path) -> Bvh:
    """Read and parse a .bvh file."""
    path = Path(path)
    return parse_bvh(path.read_text(encoding="utf-8", errors="replace"), source=str(path))


def write_bvh(path, names, parents, offsets, local_rotations, root_positions, frame_time: float,
              order: str = "ZYX", end_sites=None) -> Path:
    """Write a BVH: the root with 3 position + 3 rotation channels, every other joint 3 rotation channels.

    local_rotations: (F, J, 3, 3) matrices or (F, J, 4) unit quaternions (w, x, y, z), each joint relative
    to its parent's frame; root_positions (F, 3); order: intrinsic Euler order of the rotation channels;
    end_sites: optional per-joint End Site offsets (None entries allowed) for joints without children,
    which otherwise get a zero End Site. Joints are written depth-first, children in index order.
    """
    parents = np.asarray(parents)
    offsets = np.asarray(offsets, dtype=np.float64)
    local_rotations = np.asarray(local_rotations, dtype=np.float64)
    root_positions = np.asarray(root_positions, dtype=np.float64)
    num_joints = len(names)
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"order must be a permutation of 'XYZ' (intrinsic, upper case), got '{order}'")
    if local_rotations.shape[-2:] == (3, 3):
        num_frames = local_rotations.shape[0]
        rotations = Rotation.from_matrix(local_rotations.reshape(-1, 3, 3))
    elif local_rotations.shape[-1] == 4:
        num_frames = local_rotations.shape[0]
        rotations = Rotation.from_quat(local_rotations.reshape(-1, 4), scalar_first=True)
    else:
        raise ValueError(f"local_rotations must be (F, J, 3, 3) or (F, J, 4), got {local_rotations.shape}")
    if local_rotations.shape[1] != num_joints or parents.shape != (num_joints,) or \
            offsets.shape != (num_joints, 3) or root_positions.shape != (num_frames, 3):
        raise ValueError(f"inconsistent shapes: {num_joints} names, parents {parents.shape}, offsets "
                         f"{offsets.shape}, local_rotations {local_rotations.shape}, root_positions "
                         f"{root_positions.shape}")
    roots = np.flatnonzero(parents < 0)
    if len(roots) != 1:
        raise ValueError(f"a BVH needs exactly one root joint, parents has {len(roots)}")
    euler = rotations.as_euler(order, degrees=True).reshape(num_frames, num_joints, 3)
    children = [np.flatnonzero(parents == j).tolist() for j in range(num_joints)]
    rotation_channels = " ".join(f"{axis}rotation" for axis in order)
    lines, columns = ["HIERARCHY"], []

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {names[j]}")
        lines.append(pad + "{")
        lines.append(pad + "\tOFFSET " + " ".join(f"{v:.10g}" for v in offsets[j]))
        if depth == 0:
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rotation_channels}")
            columns.append(root_positions)
        else:
            lines.append(f"{pad}\tCHANNELS 3 {rotation_channels}")
        columns.append(euler[:, j])
        for child in children[j]:
            emit(child, depth + 1)
        if not children[j]:
            end = end_sites[j] if end_sites is not None and end_sites[j] is not None else np.zeros(3)
            lines.extend([f"{pad}\tEnd Site", pad + "\t{",
                          pad + "\t\tOFFSET " + " ".join(f"{v:.10g}" for v in end), pad + "\t}"])
        lines.append(pad + "}")

    emit(int(roots[0]), 0)
    if len(columns) != num_joints + 1:
        raise ValueError("parents do not form a tree reachable from the root (a cycle?)")
    lines += ["MOTION", f"Frames: {num_frames}", f"Frame Time: {frame_time:.10g}"]
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="\n") as file:
        file.write("\n".join(lines) + "\n")
        np.savetxt(file, np.concatenate(columns, axis=1), fmt="%.10g")
    return path
