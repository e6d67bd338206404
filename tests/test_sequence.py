"""Long motions and prompt sequences with tiny random models: window plan, kept context, one decode, progress."""
import numpy as np
import pytest
import torch

import core.sequence as sequence
from core.features import recover_from_ric
from core.sampling import GenerationCancelled, decode_features
from core.sequence import TokenWindow, generate_long, plan_windows
from tests.support.tiny_models import Q, HashEncoder, models, single_thread  # noqa: F401 (fixtures)


def test_windows_cover_a_long_segment_in_near_equal_parts_keeping_context():
    windows = plan_windows([300], 49, 12)
    assert len(windows) == 8  # the fewest: 49 new tokens, then 7 windows of at most 49 - 12 new ones
    assert windows[0] == TokenWindow(0, 0, 0, 48)
    for prev, w in zip(windows, windows[1:]):
        assert w.start + w.keep == prev.stop and w.keep == 12 and w.stop - w.start == 48
    assert windows[-1].stop == 300


def test_windows_never_span_two_segments():
    windows = plan_windows([10, 100, 3], 49, 12)
    assert [(w.segment, w.start, w.keep, w.stop) for w in windows] == [
        (0, 0, 0, 10), (1, 0, 10, 45), (1, 33, 12, 78), (1, 66, 12, 110), (2, 98, 12, 113)]
    with pytest.raises(ValueError, match="between 1 and 48"):
        plan_windows([10], 49, 49)


def test_a_minute_of_motion_from_two_prompts_is_one_continuous_decode(models, monkeypatch):
    calls, original = [], sequence.edit_tokens

    def spy(models_, cond, token_lens, source_ids, editable, *args, **kwargs):
        out = original(models_, cond, token_lens, source_ids, editable, *args, **kwargs)
        calls.append((cond.clone(), source_ids.clone(), editable.clone(), out.clone()))
        return out
    monkeypatch.setattr(sequence, "edit_tokens", spy)
    encoder = HashEncoder()
    motions = generate_long(models, encoder, [("a person walks", 602), ("a person jumps", 598)], candidates=2,
                            seed=0, steps=2)
    windows = plan_windows([150, 150], 49, 12)
    assert len(calls) == len(windows) == 9
    assembled = torch.full((2, 300, Q), -1)
    for w, (cond, source_ids, editable, out) in zip(windows, calls):
        assert torch.equal(cond, encoder.encode([["a person walks", "a person jumps"][w.segment]]).expand(2, -1))
        assert torch.equal(editable, (torch.arange(w.stop - w.start) >= w.keep).expand(2, -1))
        # the kept tokens, every layer, are what earlier windows made there, and they stay in the output
        assert torch.equal(source_ids[:, :w.keep], assembled[:, w.start:w.start + w.keep])
        assert torch.equal(out[:, :w.keep], source_ids[:, :w.keep])
        assembled[:, w.start:w.stop] = out
    for c, motion in enumerate(motions):
        assert motion.length == 1200 and motion.features.shape == (1200, 263) and motion.joints.shape == (1200, 22, 3)
        assert np.array_equal(motion.tokens, assembled[c].numpy()) and (motion.tokens[:, 0] >= 0).all()
        assert motion.segment_starts == [0, 600]  # 602 frames snap to 150.5 -> 150 tokens
        assert motion.seams == [(w.start + w.keep) * 4 for w in windows[1:]]
        with torch.inference_mode():
            whole = decode_features(models, torch.as_tensor(motion.tokens)[None], torch.tensor([300]))[0]
        np.testing.assert_allclose(motion.features, whole[:1200], atol=1e-5)  # batch of 2 vs 1: rounding
        np.testing.assert_allclose(motion.joints, recover_from_ric(motion.features), atol=1e-5)
    assert not np.array_equal(motions[0].tokens, motions[1].tokens)


def test_seed_reproduces_and_an_empty_prompt_is_unconditional(models, monkeypatch):
    conds, original = [], models.mask.logits
    monkeypatch.setattr(models.mask, "logits", lambda *a, **k: conds.append(k["cond"].clone()) or original(*a, **k))
    segments = [("wave", 100), ("", 120)]
    a = generate_long(models, HashEncoder(), segments, seed=5, steps=2)[0]
    b = generate_long(models, HashEncoder(), segments, seed=5, steps=2)[0]
    assert np.array_equal(a.features, b.features) and a.length == 220
    # "wave": guided (prompt + zeros in one batch); "": a single pass on the zero vector
    assert [c.shape[0] for c in conds[:4]] == [2, 2, 1, 1]
    assert conds[0][0].any() and not conds[0][1].any() and not conds[2].any()


def test_progress_counts_every_pass_of_every_window_and_cancel_stops_between_them(models):
    calls = []
    generate_long(models, HashEncoder(), [("run", 300)], seed=0, steps=3, progress=lambda s, t: calls.append((s, t)))
    total = 2 * (3 + Q - 1)  # 75 tokens: two windows
    assert calls == [(s, total) for s in range(1, total + 1)]
    calls.clear()
    with pytest.raises(GenerationCancelled, match=f"after step 6 of {total}"):
        generate_long(models, HashEncoder(), [("run", 300)], steps=3, progress=lambda s, t: calls.append(s),
                      cancel=lambda: len(calls) >= 6)
    assert calls == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("segments, message", [
    ([], "non-empty list"),
    ("walk", "non-empty list"),
    ([("walk", 40), ("run",)], "segment 1 must be a .prompt, frames. pair"),
    ([(None, 40)], "prompt of segment 0 must be a string"),
    ([("walk", 4)], "segment 0 lasts 4 frames"),
    ([("walk", 40), ("run", 12.5)], "segment 1 lasts 12.5 frames"),
])
def test_bad_segments(models, segments, message):
    with pytest.raises(ValueError, match=message):
        generate_long(models, HashEncoder(), segments)


def test_context_must_leave_room_for_new_tokens(models):
    with pytest.raises(ValueError, match=r"context_frames must be in 1\.\.98"):
        generate_long(models, HashEncoder(), [("walk", 400)], context_frames=120)
