"""Generation with tiny random MoMask models: shapes, padding, seeds, guidance, schedule, progress, editing."""
import numpy as np
import pytest
import torch

from core.features import recover_from_ric
from core.models import MoMaskModels, transformer
from core.sampling import (GenerationCancelled, generate, guided_logits, mask_counts, masked_decode,
                           residual_decode, sample_top_k)
from tests.support.tiny_models import COND, Q, V, HashEncoder, models, single_thread  # noqa: F401 (fixtures)


def test_generate_shapes_and_outputs(models):
    out = generate(models, HashEncoder(), ["a person walks", "a person jumps"], [40, 23], candidates=2, seed=0)
    assert [len(c) for c in out] == [2, 2]
    for motions, frames in zip(out, (40, 23)):
        for m in motions:
            assert m.length == frames and m.features.shape == (frames, 263) and m.features.dtype == np.float32
            assert m.joints.shape == (frames, 22, 3) and m.joints.dtype == np.float32
            assert m.contacts.shape == (frames, 4) and m.contacts.dtype == bool
            assert m.tokens.shape == (-(-frames // 4), Q)
            assert ((m.tokens[:, 0] >= 0) & (m.tokens[:, 0] < V)).all()
            assert np.allclose(m.joints, recover_from_ric(m.features), atol=1e-5)
            assert np.array_equal(m.contacts, m.features[:, 259:] > 0.5)
    assert not np.array_equal(out[0][0].tokens, out[0][1].tokens)  # candidates differ


def test_odd_lengths_are_trimmed_not_resampled(models):
    motion = generate(models, HashEncoder(), ["wave"], [23], seed=3)[0][0]
    with torch.inference_mode():
        full = models.rvq.decode(torch.as_tensor(motion.tokens)[None])[0].numpy() * models.std + models.mean
    assert full.shape[0] == 24
    assert np.allclose(motion.features, full[:23], atol=1e-5)


def test_seed_reproduces_and_differs(models):
    enc = HashEncoder()
    a = generate(models, enc, ["kick"], [32], candidates=2, seed=7)
    b = generate(models, enc, ["kick"], [32], candidates=2, seed=7)
    c = generate(models, enc, ["kick"], [32], candidates=2, seed=8)
    for x, y in zip(a[0], b[0]):
        assert np.array_equal(x.tokens, y.tokens) and np.array_equal(x.features, y.features)
    assert any(not np.array_equal(x.tokens, z.tokens) for x, z in zip(a[0], c[0]))


@pytest.mark.parametrize("lengths", [[32, 23], None])
def test_candidate_k_is_the_single_request_with_seed_plus_k(models, lengths):
    """Every candidate draws from its own generator (seed + k), its length too when the estimator chooses, so a
    seed printed for a candidate reproduces it alone; the batch it shared changes nothing."""
    enc = HashEncoder()
    together = generate(models, enc, ["kick", "wave"], lengths, candidates=3, seed=7)
    for p, prompt in enumerate(["kick", "wave"]):
        for k in range(3):
            [[alone]] = generate(models, enc, [prompt], None if lengths is None else [lengths[p]], seed=7 + k)
            assert together[p][k].length == alone.length
            np.testing.assert_array_equal(together[p][k].tokens, alone.tokens)
            np.testing.assert_allclose(together[p][k].joints, alone.joints, atol=1e-5)
    assert len({m.tokens.tobytes() for m in together[0]}) == 3


def test_pads_are_never_sampled(models):
    torch.manual_seed(1)
    cond, lens = torch.randn(3, COND), torch.tensor([6, 3, 5])
    with torch.inference_mode():
        base = masked_decode(models.mask, cond, lens, steps=4)
        all_ids = residual_decode(models.residual, base, cond, lens)
    pad = torch.arange(6) >= lens[:, None]
    assert base.shape == (3, 6) and (base[pad] == -1).all()
    assert ((base[~pad] >= 0) & (base[~pad] < V)).all()  # never the mask or pad id
    assert all_ids.shape == (3, 6, Q) and (all_ids[pad] == -1).all() and torch.equal(all_ids[..., 0], base)
    assert (all_ids[~pad] < V).all()


def test_guidance_is_one_batched_pass_equal_to_two_separate_ones(models):
    torch.manual_seed(2)
    cond, ids = torch.randn(2, COND), torch.randint(0, V + 2, (2, 5))
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    with torch.inference_mode():
        guided = guided_logits(models.mask.logits, cond, 4.0, ids=ids, padding_mask=pad)
        cond_l = models.mask.logits(ids=ids, cond=cond, padding_mask=pad)
        uncond_l = models.mask.logits(ids=ids, cond=torch.zeros_like(cond), padding_mask=pad)
        assert torch.allclose(guided, uncond_l + 4.0 * (cond_l - uncond_l), atol=1e-4)
        history, layers = torch.randn(2, 5, 16), torch.tensor([2, 2])
        guided = guided_logits(models.residual.logits, cond, 5.0, history=history, layers=layers, padding_mask=pad)
        cond_l = models.residual.logits(history, layers, cond, pad)
        uncond_l = models.residual.logits(history, layers, torch.zeros_like(cond), pad)
        assert torch.allclose(guided, uncond_l + 5.0 * (cond_l - uncond_l), atol=1e-4)


@pytest.mark.skipif(not transformer.BF16_NATIVE, reason="this CPU has no native bfloat16: auto stays float32")
def test_bfloat16_guided_logits_stay_close_to_float32(models):
    """The worker's default precision ("auto") on this CPU: bfloat16 products, float32 logits layer."""
    torch.manual_seed(4)
    cond, ids = torch.randn(2, COND), torch.randint(0, V + 2, (2, 9))
    pad = torch.tensor([[False] * 9, [False] * 6 + [True] * 3])
    history, layers = torch.randn(2, 9, 16), torch.tensor([1, 2])

    def both():
        with torch.inference_mode():
            return (guided_logits(models.mask.logits, cond, 4.0, ids=ids, padding_mask=pad)[~pad],
                    guided_logits(models.residual.logits, cond, 5.0, history=history, layers=layers,
                                  padding_mask=pad)[~pad])

    assert models.set_precision("float32") == "float32"
    exact = both()
    try:
        assert models.set_precision("auto") == "bfloat16"
        rounded = both()
    finally:
        models.set_precision("float32")
    for a, b in zip(exact, rounded):
        error = (a - b).abs().max() / a.abs().max()
        assert 0 < error < 0.05  # rounded (so bfloat16 really ran), yet within a few percent (guidance x4, x5)


def test_precision_names_are_checked(models):
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16"):
        models.set_precision("fp8")


def test_each_step_is_one_forward_of_the_whole_request(models, monkeypatch):
    batches = []
    for net in (models.mask, models.residual):
        original = net.logits
        monkeypatch.setattr(net, "logits", lambda *a, _f=original, **k: batches.append(len(k["cond"])) or _f(*a, **k))
    generate(models, HashEncoder(), ["a", "b"], [16, 12], candidates=3, seed=0, steps=5)
    assert batches == [12] * (5 + Q - 1)  # 2 prompts x 3 candidates, doubled for guidance
    batches.clear()
    generate(models, HashEncoder(), ["a"], [16], seed=0, steps=5, cond_scale=1, res_cond_scale=1)
    assert batches == [1] * (5 + Q - 1)


def test_mask_schedule_matches_momask_codes():
    assert mask_counts(10, torch.tensor([49]))[:, 0].tolist() == [49, 48, 46, 42, 38, 31, 24, 17, 9, 1]
    counts = mask_counts(10, torch.tensor([3, 0]))
    assert counts[:, 0].max() == 3 and counts[:, 0].min() == 1 and (counts[:, 1] == 0).all()


def test_top_k_filter_and_temperature():
    gen = torch.Generator().manual_seed(0)
    logits = torch.arange(20.0).expand(4000, 20) * 0.01  # nearly flat, so only the filter decides
    picks = sample_top_k(logits, 0.9, 1.0, gen)  # ceil(0.1 * 20) = 2 kept
    assert set(picks.unique().tolist()) == {18, 19}
    assert torch.equal(sample_top_k(logits[:3], 0.9, 0.0, gen), torch.tensor([19, 19, 19]))
    two = torch.tensor([0.0, np.log(3.0)]).expand(20000, 2)
    assert sample_top_k(two, 0.0, 1.0, gen).float().mean().item() == pytest.approx(0.75, abs=0.015)


def test_progress_and_cancel(models):
    calls = []
    generate(models, HashEncoder(), ["a"], [20], seed=0, steps=6, progress=lambda s, t: calls.append((s, t)))
    total = 6 + Q - 1
    assert calls == [(s, total) for s in range(1, total + 1)]
    calls.clear()
    with pytest.raises(GenerationCancelled, match="after step 3"):
        generate(models, HashEncoder(), ["a"], [20], seed=0, steps=6,
                 progress=lambda s, t: calls.append(s), cancel=lambda: len(calls) >= 3)
    assert calls == [1, 2, 3]
    with pytest.raises(GenerationCancelled, match="before"):
        generate(models, HashEncoder(), ["a"], [20], cancel=lambda: True)


@pytest.mark.parametrize("prompts, lengths, message", [
    ([], None, "non-empty list"),
    ("walk", None, "non-empty list"),
    (["walk", ""], [20, 20], "prompt 1 is empty"),
    (["   "], [20], "prompt 0 is empty"),
    (["walk"], [7], r"outside the allowed range 8\.\.196"),
    (["walk"], [197], r"outside the allowed range 8\.\.196"),
    (["walk", "run"], [20], "2 prompts"),
])
def test_bad_requests(models, prompts, lengths, message):
    with pytest.raises(ValueError, match=message):
        generate(models, HashEncoder(), prompts, lengths)


def test_models_must_be_in_eval_mode(models):
    models.mask.train()
    try:
        with pytest.raises(RuntimeError, match="training mode"):
            generate(models, HashEncoder(), ["walk"], [20])
    finally:
        models.eval()


def test_encoder_width_must_match(models):
    class Wide(HashEncoder):
        name, dim = "wide", 384
    with pytest.raises(ValueError, match="384-d vectors.*8-d"):
        generate(models, Wide(), ["walk"], [20])


def test_length_estimator_path(models):
    out = generate(models, HashEncoder(), ["a", "b"], None, candidates=2, seed=0)
    for motions in out:
        assert all(m.length % 4 == 0 and 8 <= m.length <= 196 and len(m.features) == m.length for m in motions)
    head = models.length.output[-1]
    saved = head.bias.detach().clone()
    with torch.no_grad():
        head.bias[:2] = 1e4  # the estimator insists on 0 or 1 tokens, which we cannot generate
        head.bias[7] = 1e3
    try:
        out = generate(models, HashEncoder(), ["a"], None, seed=0)
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)
    assert out[0][0].length == 28
    no_estimator = MoMaskModels(models.rvq, models.mask, models.residual, None, models.mean, models.std)
    with pytest.raises(ValueError, match="no length estimator"):
        generate(no_estimator, HashEncoder(), ["a"])


def test_without_residual_model_only_the_base_layer_is_used(models):
    base_only = MoMaskModels(models.rvq, models.mask, None, models.length, models.mean, models.std)
    motion = generate(base_only, HashEncoder(), ["a"], [16], seed=0)[0][0]
    assert motion.tokens.shape == (4, 1) and motion.features.shape == (16, 263)


def test_editing_keeps_tokens_outside_the_editable_span(models):
    torch.manual_seed(3)
    cond, lens = torch.randn(2, COND), torch.tensor([8, 6])
    source = torch.randint(0, V, (2, 8, Q))
    editable = torch.zeros(2, 8, dtype=torch.bool)
    editable[:, 2:5] = True
    with torch.inference_mode():
        base = masked_decode(models.mask, cond, lens, steps=5, source_ids=source[..., 0], editable=editable)
        all_ids = residual_decode(models.residual, base, cond, lens, source_ids=source, editable=editable)
    keep = ~editable & (torch.arange(8) < lens[:, None])
    assert torch.equal(base[keep], source[..., 0][keep]) and torch.equal(all_ids[keep], source[keep])
    assert (base[1, 6:] == -1).all() and (all_ids[1, 6:] == -1).all()
    assert ((base[editable] >= 0) & (base[editable] < V)).all()
    with pytest.raises(ValueError, match="no source_ids"):
        masked_decode(models.mask, cond, lens, editable=editable)
    with pytest.raises(ValueError, match="needs the source_ids"):
        residual_decode(models.residual, base, cond, lens, editable=editable)


def test_nothing_editable_returns_the_source_tokens(models):
    """A window whose editable span is empty (e.g. a range inside padding) decodes to its source as is."""
    torch.manual_seed(5)
    cond, lens = torch.randn(2, COND), torch.tensor([8, 6])
    source = torch.randint(0, V, (2, 8, Q))
    nothing = torch.zeros(2, 8, dtype=torch.bool)
    with torch.inference_mode():
        base = masked_decode(models.mask, cond, lens, steps=5, source_ids=source[..., 0], editable=nothing)
        all_ids = residual_decode(models.residual, base, cond, lens, source_ids=source, editable=nothing)
    valid = torch.arange(8) < lens[:, None]
    assert torch.equal(all_ids[valid], source[valid]) and (all_ids[~valid] == -1).all()
