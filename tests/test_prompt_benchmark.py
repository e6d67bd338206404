"""The prompt-following benchmark: its prompts were never training captions, every action has prompts and
checks, and the kinematic checks tell actions apart on synthetic motion."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from core.dataset.captions import CONTENTS, STYLES, every_caption, mirror_content
from core.dataset.composition import ARM_ACTIONS, LOCOMOTION, every_composed_caption
from core.dataset.more_mocap import load_annotations
from core.evaluation.motion_checks import action_checks, describe_checks, judge, motion_statistics
from core.prompt_sequence import split_sequence
from core.skeleton import JOINT_INDEX, TARGET_OFFSETS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bench_prompts import load_prompts  # noqa: E402

PROMPTS = load_prompts()


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower().rstrip("."))


def test_every_action_has_eight_prompts_and_checks():
    for action, prompts in PROMPTS.items():
        assert len(set(prompts)) >= 8, action
        for part in action.split(">"):
            assert describe_checks(part)  # raises for an action without checks


def test_first_prompts_are_single_actions_with_checks():
    """scripts/first_prompts.json (the plainest prompts, a sanity set next to the benchmark) is read the same way."""
    first = load_prompts(REPO / "scripts" / "first_prompts.json")
    assert len(first) >= 5
    for action, prompts in first.items():
        assert len(set(prompts)) >= 6 and describe_checks(action), action
        assert all(len(split_sequence(p)) == 1 for p in prompts), action


def test_chained_prompts_split_into_their_actions():
    for action, prompts in PROMPTS.items():
        if ">" in action:
            for prompt in prompts:
                assert len(split_sequence(prompt)) == len(action.split(">")), prompt


def test_no_benchmark_prompt_is_a_training_caption():
    prompts = {_normal(p): a for a, ps in PROMPTS.items() for p in ps}
    generated = set()
    for dataset, contents in CONTENTS.items():
        for content in contents:
            for style in STYLES[dataset]:
                generated.update(_normal(c) for c in every_caption(content, style))
    generated.update(_normal(c) for s in load_annotations() for c in s.captions)
    overlap = sorted(set(prompts) & generated)
    assert not overlap, overlap
    assert len(generated) > 100_000  # the enumeration really covers the vocabulary


def test_composed_prompts_are_not_composed_captions():
    composed = {a: {_normal(p) for p in ps} for a, ps in PROMPTS.items() if "+" in a}
    assert composed, "the benchmark has composed actions"
    for action, prompts in composed.items():
        locomotion, arm = action.split("+")
        assert locomotion in LOCOMOTION and arm in ARM_ACTIONS, action
        captions = {_normal(c) for c in every_composed_caption(locomotion, arm)}
        assert not prompts & captions, sorted(prompts & captions)


# --- the checks on synthetic motion -----------------------------------------------------------------------

def _rest_pose() -> np.ndarray:
    """The template skeleton standing, facing +z, feet on the floor."""
    from core.skeleton import PARENTS
    joints = np.zeros((22, 3))
    for j in range(1, 22):
        joints[j] = joints[PARENTS[j]] + TARGET_OFFSETS[j]
    joints[:, 1] -= joints[:, 1].min()
    return joints


def _motion(seconds=4.0, velocity=(0.0, 0.0), raise_wrist: str | None = None) -> np.ndarray:
    frames = int(seconds * 20) + 1
    t = np.arange(frames) / 20
    joints = np.repeat(_rest_pose()[None], frames, axis=0)
    joints[:, :, 0] += velocity[0] * t[:, None]
    joints[:, :, 2] += velocity[1] * t[:, None]
    if raise_wrist:
        wrist, shoulder = JOINT_INDEX[f"{raise_wrist}_wrist"], JOINT_INDEX[f"{raise_wrist}_shoulder"]
        joints[:, wrist] = joints[:, shoulder] + [0, 0.5, 0]
        joints[:, wrist, 0] += 0.1 * np.sin(2 * np.pi * 2 * t)  # waving across the body
    return joints


def test_checks_tell_walking_directions_apart():
    forward, backward = motion_statistics(_motion(velocity=(0, 1.2))), motion_statistics(_motion(velocity=(0, -0.8)))
    assert judge("walk", forward) and not judge("walk-back", forward) and not judge("run", forward)
    assert judge("walk-back", backward) and not judge("walk", backward)
    assert judge("run", motion_statistics(_motion(velocity=(0, 3.0))))
    # the body's left is +x when it faces +z
    left = motion_statistics(_motion(velocity=(0.5, 1.0)))
    assert judge("walk-left", left) and not judge("walk-right", left)


def test_checks_tell_hands_and_sides_apart():
    left = motion_statistics(_motion(raise_wrist="left"))
    assert judge("raise-up-left-hand", left) and judge("wave-left-hand", left)
    assert not judge("raise-up-right-hand", left) and not judge("wave-right-hand", left)
    assert not judge("raise-up-both-hands", left)
    still = motion_statistics(_motion())
    assert not any(judge(a, still) for a in ("walk", "raise-up-left-hand", "bow", "kick", "wave-both-hands"))


def test_mirrored_actions_swap_sides():
    stats = motion_statistics(_motion(raise_wrist="right"))
    for action in ("wave-right-hand", "raise-up-right-hand"):
        assert judge(action, stats) and not judge(mirror_content(action), stats)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="no kinematic checks for action 'moonwalk'"):
        action_checks("moonwalk")
    with pytest.raises(ValueError, match=r"shape \(T >= 2, 22, 3\)"):
        motion_statistics(np.zeros((10, 21, 3)))


def test_prompt_file_is_valid_json_with_actions():
    data = json.loads((REPO / "scripts" / "bench_prompts.json").read_text())
    assert set(data) == {"about", "actions"} and PROMPTS == data["actions"]
