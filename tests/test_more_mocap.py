"""The more-mocap caption file: loading, its error messages, and cutting segments out of converted files."""
import json
import re

import numpy as np
import pytest

from core.dataset.captions import mirror_caption
from core.dataset.more_mocap import DEFAULT, Segment, cut_segment, load_annotations, summary
from tests.conftest import shared_path

GOOD = {"file": "accad/general/Female-Walk.bvh", "start": 0.0, "end": 3.8, "action": "walk-turn-left",
        "captions": ["a woman walks and turns left.", "she turns to her left while walking.",
                     "someone walks forward, then heads off to the left."]}


def _write(tmp_path, *records):
    path = tmp_path / "captions.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_committed_file_loads_and_covers_the_folders():
    segments = load_annotations()
    assert len(segments) > 300
    folders = {s.file.rsplit("/", 1)[0] for s in segments}
    assert {"accad/general", "accad/martial_arts", "idle/acted", "idle/genuine", "cmu/salsa"} <= folders
    assert not any(s.file.startswith("cmu/expmap") for s in segments)
    assert all(len(set(s.captions)) >= 3 and 1.5 <= s.end - s.start <= 10.0 for s in segments)
    # no segment is captioned twice, and windows of one file do not overlap
    spans = sorted((s.file, s.start, s.end) for s in segments)
    assert all(a[0] != b[0] or a[2] <= b[1] for a, b in zip(spans, spans[1:]))


def test_sided_actions_come_in_both_sides_and_captions_name_their_side():
    segments = load_annotations()
    sided = {s.action for s in segments if s.side}
    assert {"punch-left", "punch-right", "kick-left", "kick-right", "side-step-left", "side-step-right"} <= sided
    assert all(mirror_caption(a) in sided for a in sided)
    for s in segments:
        if s.side:
            assert all(s.side in c for c in s.captions), s


def test_a_good_line_loads(tmp_path):
    [segment] = load_annotations(_write(tmp_path, GOOD, ""))
    assert segment == Segment(GOOD["file"], 0.0, 3.8, "walk-turn-left", tuple(GOOD["captions"]))
    assert segment.side == "left"
    assert "walk-turn-left" in summary([segment]) and "3.8" in summary([segment])


@pytest.mark.parametrize("change, message", [
    ({"captions": None}, "missing field(s) captions"),
    ({"end": None}, "missing field(s) end"),
    ({"style": "happy"}, "unknown field(s) style"),
    ({"end": 0.0}, "needs 0 <= start < end"),
    ({"start": 2.0, "end": 1.0}, "needs 0 <= start < end"),
    ({"end": 10.5}, "it must last 1.5 to 10.0 s"),
    ({"end": 1.0}, "it must last 1.5 to 10.0 s"),
    ({"end": "4"}, "must be numbers of seconds"),
    ({"captions": GOOD["captions"][:2]}, "at least 3 are needed"),
    ({"captions": GOOD["captions"][:2] + GOOD["captions"][:1]}, "at least 3 are needed"),
    ({"action": "Walk_Turn_Left"}, "lowercase words joined by hyphens"),
    ({"action": "walk-turn-leftwards"}, "as the separate word left or right"),
    ({"action": "turn-left-right"}, "as the separate word left or right"),
    ({"file": "/abs/x.bvh"}, "relative .bvh path"),
    ({"file": "cmu/expmap/x.txt"}, "relative .bvh path"),
    ({"captions": GOOD["captions"][:2] + ["she spins clockwise to the left."]}, "'clockwise' names a side"),
    ({"captions": GOOD["captions"][:2] + ["she walks, then heads leftish."]}, "'leftish' names a side"),
    ({"captions": GOOD["captions"][:2] + ["she walks and turns to the right."]}, "does not say 'left'"),
])
def test_malformed_lines_name_the_line(tmp_path, change, message):
    record = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = _write(tmp_path, GOOD, "", record)
    with pytest.raises(ValueError) as err:
        load_annotations(path)
    assert f"{path}:3:" in str(err.value) and message in str(err.value)


def test_not_json_names_the_line(tmp_path):
    path = _write(tmp_path, "{\"file\": ")
    with pytest.raises(ValueError, match=r":1: not JSON"):
        load_annotations(path)


def test_side_free_words_pass(tmp_path):
    captions = ["he stands upright.", "he stands upright, then turns right away to the left.",
                "the man walks leftward and stands up straight."]
    [segment] = load_annotations(_write(tmp_path, {**GOOD, "action": "idle", "captions": captions}))
    assert segment.captions == tuple(captions)


def test_cut_segment_takes_the_frames_in_its_time_span():
    joints = np.arange(100, dtype=float)[:, None, None] * np.ones((1, 22, 3))  # frame i at i / 20 s
    cut = cut_segment(joints, Segment("a.bvh", 0.5, 2.0, "walk", ("a", "b", "c")))
    assert cut.shape == (30, 22, 3) and cut[0, 0, 0] == 10 and cut[-1, 0, 0] == 39
    # a start between frames begins at the next frame; an end on a frame excludes it
    assert cut_segment(joints, Segment("a.bvh", 0.51, 2.05, "walk", ("a", "b", "c")))[[0, -1], 0, 0].tolist() == [11, 40]
    # a file's end (frames x frame time) may overhang its last 20 fps frame by less than a frame
    tail = cut_segment(joints, Segment("a.bvh", 3.0, 5.04, "walk", ("a", "b", "c")))
    assert tail[0, 0, 0] == 60 and tail[-1, 0, 0] == 99
    with pytest.raises(ValueError, match="ends after the motion"):
        cut_segment(joints, Segment("a.bvh", 3.0, 6.0, "walk", ("a", "b", "c")))


def test_default_path_is_next_to_the_module():
    assert DEFAULT.name == "more_mocap.jsonl" and DEFAULT.exists()


# ---- every checkable claim of the committed captions against the joints (needs ../shared: CI) ----
# A claim is checked where the action id or the captions name a side or a direction; the statistic is the one
# an annotator reads off a render: which way the facing turns, where the pelvis goes in the body's initial
# facing frame, which wrist moves fastest, which ankle rises highest, which way the head slips.
_TURN_PHRASE = re.compile(r"\bturn(?:s|ing)?\b(?:\s+\w+){0,4}?\s+(?:to\s+(?:the|his|her|their)\s+)?(left|right)\b")


def _heading(joints):
    """Facing angle per frame (radians, unwrapped, median-filtered); it grows when the body turns left."""
    left = (joints[:, 1] - joints[:, 2]) + (joints[:, 16] - joints[:, 17])
    angle = np.unwrap(np.arctan2(-left[:, 2], left[:, 0]))
    padded = np.pad(angle, 2, mode="edge")
    return np.median(np.stack([padded[i:i + len(angle)] for i in range(5)]), axis=0)


def _turn_degrees(joints):
    heading, n = _heading(joints), max(2, len(joints) // 10)
    return float(np.degrees(np.median(heading[-n:]) - np.median(heading[:n])))


def _initial_frame(joints):
    """(forward, left) unit vectors on the floor (x, z) of the body's initial facing."""
    angle = np.median(_heading(joints)[:max(2, len(joints) // 10)])
    return np.array([np.sin(angle), np.cos(angle)]), np.array([np.cos(angle), -np.sin(angle)])


def _travel(joints):
    """(forward, left) metres the pelvis travels in the initial facing frame."""
    forward, left = _initial_frame(joints)
    step = joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]]
    return float(step @ forward), float(step @ left)


def _head_slip(joints):
    """The side the head moves furthest to, sideways from its start, in the initial facing frame."""
    _, left = _initial_frame(joints)
    lateral = (joints[:, 15, [0, 2]] - joints[0, 15, [0, 2]]) @ left
    return "left" if lateral.max() > -lateral.min() else "right"


def _faster_wrist(joints):
    speed = [np.linalg.norm(np.diff(joints[:, w], axis=0), axis=1).max() for w in (20, 21)]
    return "left" if speed[0] > speed[1] else "right"


def _higher_ankle(joints):
    return "left" if joints[:, 7, 1].max() > joints[:, 8, 1].max() else "right"


def _turn_side(joints):
    return "left" if _turn_degrees(joints) > 0 else "right"


# action id (without its side) -> what its side must match
_SIDED = {"walk-turn": _turn_side, "run-turn": _turn_side, "turn": _turn_side,
          "side-step": lambda j: "left" if _travel(j)[1] > 0 else "right",
          "punch": _faster_wrist, "block": _faster_wrist, "kick": _higher_ankle, "dodge": _head_slip}
_BACKWARD = {"walk-back", "run-backward", "crawl-backward", "retreat"}
_FORWARD = {"walk", "run", "crawl-forward", "advance"}


def _claims(segment):
    """(what is claimed, check(joints) -> bool) for each side or direction the segment states."""
    claims = []
    if segment.side:
        kind = "-".join(w for w in segment.action.split("-") if w != segment.side)
        if kind in _SIDED:
            claims.append((f"{kind} side {segment.side}", lambda j, f=_SIDED[kind]: f(j) == segment.side))
        if kind in ("walk-turn", "run-turn", "turn"):
            claims.append(("turns at least 20 degrees", lambda j: abs(_turn_degrees(j)) >= 20))
    elif segment.action in _BACKWARD:
        claims.append(("travels backward", lambda j: _travel(j)[0] < -0.3))
    elif segment.action in _FORWARD:
        claims.append(("travels forward", lambda j: _travel(j)[0] > 0.3))
    else:
        sides = {m.group(1).lower() for c in segment.captions for m in _TURN_PHRASE.finditer(c.lower())}
        if len(sides) == 1:
            side = sides.pop()
            claims.append((f"turns {side}", lambda j, s=side: _turn_side(j) == s))
    return claims


def _converted(archive, files):
    """{file: (T, 22, 3) joints at 20 fps} for the files the mocap conversion handles; the others are left out."""
    import tarfile

    from core.bvh import parse_bvh
    from core.mocap import bvh_to_smpl_joints

    joints = {}
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar:
            name = member.name.removeprefix("more-mocap/")
            if name in files:
                text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                try:
                    joints[name] = bvh_to_smpl_joints(parse_bvh(text, source=name), fps=20)[0]
                except ValueError:  # includes UnmappableSkeletonError: a convention not handled yet
                    continue
    return joints


def test_captions_agree_with_the_joints_sides_and_directions():
    archive = shared_path("data", "more-mocap.tar.xz")
    checked = [(s, _claims(s)) for s in load_annotations()]
    checked = [(s, claims) for s, claims in checked if claims]
    joints = _converted(archive, {s.file for s, _ in checked})
    failures, done = [], 0
    for segment, claims in checked:
        if segment.file not in joints:
            continue
        frames = cut_segment(joints[segment.file], segment)
        for claim, holds in claims:
            done += 1
            if not holds(frames):
                failures.append(f"{segment.file} {segment.start}-{segment.end} {segment.action}: {claim}")
    assert done >= 150, f"only {done} claims could be checked: the conversion handled too few files"
    assert not failures, "\n".join(failures)
