"""The more-mocap caption file: loading, its error messages, and cutting segments out of converted files."""
import json

import numpy as np
import pytest

from core.dataset.captions import mirror_caption
from core.dataset.more_mocap import DEFAULT, Segment, cut_segment, load_annotations, summary

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
