"""Chained prompts split into their parts, and what a prompt is understood as: the nearest known actions, with a
warning naming what the model knows when even the nearest is far."""
import numpy as np
import pytest

from core.known_actions import FAR_SIMILARITY, KnownActions, build_known_actions, understood_line
from core.prompt_sequence import split_sequence


@pytest.mark.parametrize("prompt, parts", [
    ("a person waves with the right hand, then bows", ["a person waves with the right hand", "a person bows"]),
    ("he walks forward and then turns left and then runs", ["he walks forward", "he turns left", "he runs"]),
    ("walk forward then bow", ["walk forward", "bow"]),
    ("a man walks forward. After that, he sits down", ["a man walks forward", "he sits down"]),
    ("the old man walks forward, then he bows", ["the old man walks forward", "he bows"]),
    ("someone jumps; crouches", ["someone jumps", "someone crouches"]),
    ("a person walks forward", ["a person walks forward"]),
    ("a man authentically walks to the theatre", ["a man authentically walks to the theatre"]),
    ("  then  ", ["then"]),
])
def test_chained_prompts_split_into_parts_with_the_subject_carried_over(prompt, parts):
    assert split_sequence(prompt) == parts


class FakeDataset:
    """Two actions with captions, one clip each, as ClipDataset presents them."""
    def __init__(self):
        self.records = [("walk", ("a man walks", "someone strolls")), ("bow", ("a person bows", "he bows deeply")),
                        ("walk+wave-left-hand", ("she walks while waving her left hand", "a man walks and waves"))]

    def __len__(self):
        return len(self.records)

    def content(self, i):
        return self.records[i][0]

    def action(self, i):
        return "composed" if "+" in self.records[i][0] else self.records[i][0]

    def __getitem__(self, i):
        return type("Clip", (), {"captions": self.records[i][1]})


def _encode(texts):
    """Embeddings where captions sharing a verb are close: one axis per verb."""
    verbs = ("walk", "stroll", "bow", "wave")
    out = np.array([[1.0 if v in t else 0.0 for v in verbs] + [0.3] for t in texts])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_known_actions_name_the_nearest_action_and_round_trip(tmp_path):
    known = build_known_actions(FakeDataset(), _encode)
    assert known.names == ["bow", "walk", "walk+wave-left-hand"] and known.clips == [1, 1, 1]
    closest = known.closest(_encode(["he bows to the queen"])[0], count=2)
    assert closest[0][0] == "bow" and closest[0][1] > 0.99 and closest[1][1] < closest[0][1]
    known.save(tmp_path)
    again = KnownActions.load(tmp_path)
    assert again.names == known.names and again.examples == known.examples
    assert again.closest(_encode(["a guy strolls"])[0])[0][0] == "walk"
    assert KnownActions.load(tmp_path / "nothing") is None


def test_a_far_prompt_is_warned_about_and_the_known_actions_named():
    known = build_known_actions(FakeDataset(), _encode)
    near = understood_line([("bow", 0.9), ("walk", 0.2)], known)
    assert near == "understood as: bow (0.90), walk (0.20)"
    far = understood_line([("bow", FAR_SIMILARITY - 0.01)], known)
    assert far.startswith("warning: the prompt is far from every action this model learned")
    assert far.endswith("Known actions: bow, walk")  # compositions are not listed as actions
