"""MoMask networks: released-checkpoint layout (docs/momask.md, "Released checkpoints"), training forwards, RVQ
quantiser behaviour."""
import json
import math

import pytest
import torch

from core.models import build_model
from core.models.rvq import EMACodebook, ResidualQuantizer
from core.models.transformer import PACKING_AVAILABLE, packed_encoder
from tests.support.tiny_models import single_thread  # noqa: F401 (autouse fixture)


def _conv(prefix, out_ch, in_ch, k):
    return [(f"{prefix}.weight", (out_ch, in_ch, k)), (f"{prefix}.bias", (out_ch,))]


def _linear(prefix, out_f, in_f):
    return [(f"{prefix}.weight", (out_f, in_f)), (f"{prefix}.bias", (out_f,))]


def _norm(prefix, dim):
    return [(f"{prefix}.weight", (dim,)), (f"{prefix}.bias", (dim,))]


def _resnet(prefix):
    return [kv for b in range(3) for kv in _conv(f"{prefix}.model.{b}.conv1", 512, 512, 3)
            + _conv(f"{prefix}.model.{b}.conv2", 512, 512, 1)]


def expected_rvq():
    keys = _conv("encoder.model.0", 512, 263, 3)
    for s in (2, 3):
        keys += _conv(f"encoder.model.{s}.0", 512, 512, 4) + _resnet(f"encoder.model.{s}.1")
    keys += _conv("encoder.model.4", 512, 512, 3) + _conv("decoder.model.0", 512, 512, 3)
    for s in (2, 3):
        keys += _resnet(f"decoder.model.{s}.0") + _conv(f"decoder.model.{s}.2", 512, 512, 3)
    keys += _conv("decoder.model.4", 512, 512, 3) + _conv("decoder.model.6", 263, 512, 3)
    return keys + [(f"quantizer.layers.{q}.codebook", (512, 512)) for q in range(6)]


def _body():
    keys = _linear("input_process.poseEmbedding", 384, 512) + [("position_enc.pe", (5000, 1, 384))]
    for i in range(8):
        p = f"seqTransEncoder.layers.{i}"
        keys += [(f"{p}.self_attn.in_proj_weight", (1152, 384)), (f"{p}.self_attn.in_proj_bias", (1152,))]
        keys += _linear(f"{p}.self_attn.out_proj", 384, 384) + _linear(f"{p}.linear1", 1024, 384)
        keys += _linear(f"{p}.linear2", 384, 1024) + _norm(f"{p}.norm1", 384) + _norm(f"{p}.norm2", 384)
    return keys


def _head():
    return (_linear("output_process.dense", 384, 384) + _norm("output_process.LayerNorm", 384)
            + _linear("output_process.poseFinal", 512, 384))


def expected_mask():
    return _body() + _linear("cond_emb", 384, 512) + _head() + [("token_emb.weight", (514, 512))]


def expected_residual():
    return ([("embed_proj_shared_weight", (4, 513, 512)), ("token_embed_weight_", (1, 513, 512)),
             ("output_proj_weight_", (1, 513, 512))]
            + _body() + _linear("quant_emb", 384, 6) + _linear("cond_emb", 384, 512) + _head())


def expected_length():
    return (_linear("output.0", 512, 512) + _norm("output.1", 512) + _linear("output.4", 256, 512)
            + _norm("output.5", 256) + _linear("output.8", 128, 256) + _norm("output.9", 128)
            + _linear("output.11", 50, 128))


@pytest.mark.parametrize("kind, expected, count, params", [
    ("rvq", expected_rvq, 72, 19_436_807),
    ("mask", expected_mask, 108, 12_048_768),
    ("residual", expected_residual, 112, 13_364_224),
    ("length", expected_length, 14, None),
])
def test_released_layout(kind, expected, count, params):
    model = build_model(kind, {})
    layout = [(name, tuple(t.shape)) for name, t in model.state_dict().items()]
    assert layout == expected()
    assert len(layout) == count
    if params is not None:
        assert sum(p.numel() for p in model.parameters()) == params


def test_positional_encoding_is_sin_cos():
    pe = build_model("mask", dict(num_layers=1)).position_enc.pe[:, 0]
    pos = torch.arange(5000.0)
    assert torch.allclose(pe[:, 0], torch.sin(pos), atol=1e-4)
    assert torch.allclose(pe[:, 1], torch.cos(pos), atol=1e-4)
    assert torch.allclose(pe[:, 382], torch.sin(pos * 10000 ** (-382 / 384)), atol=1e-4)


def test_build_model_round_trips_hparams_and_rejects_bad_input():
    model = build_model("mask", dict(cond_dim=384, num_layers=2))
    rebuilt = build_model("mask", json.loads(json.dumps(model.hparams)))
    assert rebuilt.cond_emb.weight.shape == (384, 384)
    rebuilt.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="unknown model kind 'vae'"):
        build_model("vae", {})
    with pytest.raises(ValueError, match="residual model.*share_codebook"):
        build_model("residual", dict(share_codebook=True))


TINY_TRANSFORMER = dict(num_tokens=16, code_dim=16, latent_dim=32, ff_size=64, num_layers=2, num_heads=2, cond_dim=8)


def _assert_all_parameters_learn(model, loss):
    assert torch.isfinite(loss)
    loss.backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


def test_mask_transformer_training_forward():
    torch.manual_seed(0)
    model = build_model("mask", TINY_TRANSFORMER).train()
    ids, lens = torch.randint(0, 16, (8, 12)), torch.tensor([12, 10, 7, 12, 3, 9, 12, 5])
    loss, accuracy = model(ids, torch.randn(8, 8), lens)
    assert 0 <= accuracy <= 1
    assert abs(loss.item() - math.log(16)) < 1.0  # untrained: close to uniform over 16 codes
    _assert_all_parameters_learn(model, loss)


def test_training_forwards_ignore_tokens_beyond_length():
    """Tokens at pad positions must not change the loss (same random draws, different pad content)."""
    for kind, shape in (("mask", (4, 10)), ("residual", (4, 10, 6))):
        model = build_model(kind, TINY_TRANSFORMER).train()
        ids, cond, lens = torch.randint(0, 16, shape), torch.randn(4, 8), torch.tensor([10, 6, 4, 8])
        other = ids.clone()
        other[1, 6:], other[2, 4:] = 3, 5
        torch.manual_seed(1)
        loss_a, _ = model(ids, cond, lens)
        torch.manual_seed(1)
        loss_b, _ = model(other, cond, lens)
        assert loss_a.item() == pytest.approx(loss_b.item(), abs=1e-6)


def test_residual_transformer_training_forward():
    torch.manual_seed(0)
    model = build_model("residual", TINY_TRANSFORMER).train()
    ids, lens = torch.randint(0, 16, (32, 12, 6)), torch.randint(2, 13, (32,))
    loss, accuracy = model(ids, torch.randn(32, 8), lens)
    assert 0 <= accuracy <= 1
    _assert_all_parameters_learn(model, loss)  # includes W5 and every shared table


def test_residual_projections_share_tables():
    model = build_model("residual", TINY_TRANSFORMER)
    emb, out = model.token_embeddings(), model.output_projections()
    assert torch.equal(emb[0], model.token_embed_weight_[0])
    assert torch.equal(emb[1:], out[:-1])  # E_j = W_j for j = 1..4
    assert torch.equal(out[-1], model.output_proj_weight_[0])


def test_length_estimator_loss():
    model = build_model("length", dict(cond_dim=8, hidden=32)).train()
    loss = model.loss(torch.randn(6, 8), torch.tensor([0, 10, 49, 3, 20, 7]))
    _assert_all_parameters_learn(model, loss)


@pytest.mark.skipif(not PACKING_AVAILABLE, reason="this PyTorch build has no oneDNN linear packing")
def test_packed_inference_encoder_matches_pytorch_and_follows_weight_changes():
    torch.manual_seed(0)
    model, other = build_model("mask", TINY_TRANSFORMER).eval(), build_model("mask", TINY_TRANSFORMER)
    encoder = model.seqTransEncoder
    seq, pads = torch.randn(3, 7, 32), torch.zeros(3, 7, dtype=torch.bool)
    pads[1, 4:], pads[2, 6:] = True, True
    assert packed_encoder(encoder, seq) is None  # gradients on: PyTorch's own path
    with torch.no_grad():
        packed = packed_encoder(encoder, seq)
        for mask in (pads, None):
            assert torch.allclose(packed(seq, mask)[~pads], encoder(seq, src_key_padding_mask=mask)[~pads], atol=1e-5)
        model.load_state_dict(other.state_dict())
        repacked = packed_encoder(encoder, seq)
        assert repacked is not packed
        assert torch.allclose(repacked(seq, pads)[~pads], encoder(seq, src_key_padding_mask=pads)[~pads], atol=1e-5)
        assert packed_encoder(encoder, seq) is repacked
        assert packed_encoder(encoder.train(), seq) is None


TINY_RVQ = dict(nb_code=8, code_dim=16, width=32, depth=2, num_quantizers=4)


def _rvq_with_codebooks(**overrides):
    torch.manual_seed(0)
    rvq = build_model("rvq", {**TINY_RVQ, **overrides})
    for layer in rvq.quantizer.layers:
        layer.codebook.normal_()
        layer.initialised.fill_(True)
    return rvq


def test_rvq_loss_terms_and_gradients():
    torch.manual_seed(0)
    rvq = build_model("rvq", TINY_RVQ).train()
    terms = rvq.loss(torch.randn(3, 16, 263))
    assert set(terms) == {"loss", "recon", "ric", "commit", "perplexity"}
    expected = terms["recon"] + 0.5 * terms["ric"] + 0.02 * terms["commit"]
    assert terms["loss"].item() == pytest.approx(expected.item())
    _assert_all_parameters_learn(rvq, terms["loss"])
    assert all(layer.initialised for layer in rvq.quantizer.layers)  # first batch initialised the codebooks


def test_rvq_encode_is_nearest_residual_and_decode_handles_missing_layers():
    rvq = _rvq_with_codebooks().eval()
    rvq.quantizer.train()  # the quantiser's encode ignores training mode: no Gumbel, no EMA update
    before = [layer.codebook.clone() for layer in rvq.quantizer.layers]
    x = torch.randn(2, 16, 263)
    ids = rvq.encode(x)
    assert ids.shape == (2, 4, 4) and torch.equal(ids, rvq.encode(x))
    assert all(torch.equal(a, layer.codebook) for a, layer in zip(before, rvq.quantizer.layers))
    residual = rvq.encoder(x.transpose(1, 2)).transpose(1, 2).reshape(-1, 16)
    for q, layer in enumerate(rvq.quantizer.layers):
        assert torch.equal(torch.cdist(residual, layer.codebook).argmin(-1), ids[..., q].reshape(-1))
        residual = residual - layer.codebook[ids[..., q].reshape(-1)]
    assert rvq.decode(ids).shape == (2, 16, 263)
    two_layers = rvq.decode(ids[..., :2])
    assert torch.equal(two_layers, rvq.decode(torch.cat([ids[..., :2], torch.full_like(ids[..., :2], -1)], -1)))
    codes = rvq.quantizer.codes(ids[..., :2])
    books = [layer.codebook for layer in rvq.quantizer.layers]
    assert torch.allclose(codes, books[0][ids[..., 0]] + books[1][ids[..., 1]])
    assert torch.equal(rvq.quantizer.codes(torch.full((1, 3, 4), -1)), torch.zeros(1, 3, 16))


def test_rvq_training_uses_gumbel_choice_and_eval_uses_nearest():
    torch.manual_seed(0)
    layer = EMACodebook(64, 4, mu=0.99)
    layer.codebook.normal_(std=0.1)
    layer.initialised.fill_(True)
    x = torch.randn(256, 4) * 0.1
    nearest = layer.nearest(x)
    _, train_ids, _, _ = layer.train()(x, temperature=0.5)
    assert (train_ids != nearest).any()
    layer.eval()
    _, eval_ids, _, _ = layer(x, temperature=0.5)
    assert torch.equal(eval_ids, layer.nearest(x))


def test_ema_update_and_dead_code_reset():
    torch.manual_seed(0)
    layer = EMACodebook(8, 4, mu=0.99).train()
    first = torch.randn(16, 4)
    quantised, ids, _, _ = layer(first)  # initialises from the first 8 rows, then one EMA step
    assert torch.equal(ids[:8], torch.arange(8))  # each initial code is its own nearest latent
    counts = torch.bincount(ids, minlength=8).float()
    sums = torch.zeros(8, 4).index_add_(0, ids, first)
    assert torch.allclose(layer.codebook, (0.99 * first[:8] + 0.01 * sums) / (0.99 + 0.01 * counts)[:, None])
    assert torch.allclose(quantised, first[:8][ids])  # straight-through value: pre-update codes

    code_before = layer.codebook.clone()
    second = code_before[0] + 0.01 * torch.randn(16, 4)  # only code 0 is used now
    _, ids, _, _ = layer(second)
    assert (ids == 0).all()
    count0 = 0.99 * (0.99 + 0.01 * counts[0]) + 0.01 * 16
    assert layer.code_count[0].item() == pytest.approx(count0.item(), rel=1e-5)
    assert not torch.equal(layer.codebook[0], code_before[0])
    dead = layer.code_count < 1
    assert torch.equal(dead[1:], 0.99 * (0.99 + 0.01 * counts[1:]) < 1) and dead.any()
    for row in layer.codebook[dead]:  # replaced by latents of the current batch
        assert (second == row).all(dim=1).any()


def test_loaded_codebook_counts_as_initialised():
    """A loaded codebook is EMA-updated from where it is, not re-seeded from the next batch."""
    source = _rvq_with_codebooks()
    fresh = build_model("rvq", TINY_RVQ)
    fresh.load_state_dict(source.state_dict())
    layer, loaded = fresh.quantizer.layers[0].train(), source.quantizer.layers[0].codebook
    assert layer.initialised and torch.equal(layer.code_sum, loaded) and (layer.code_count == 1).all()
    x = torch.randn(2, 16)
    _, ids, _, _ = layer(x)
    assert torch.equal(ids, torch.cdist(x, loaded).argmin(-1))
    used = ids.unique()
    assert torch.allclose(layer.codebook[used], loaded[used], atol=0.1)


def test_quantisation_dropout_keeps_a_prefix_of_layers():
    torch.manual_seed(0)
    quantizer = ResidualQuantizer(6, 8, 4, mu=0.99, dropout_prob=1.0).train()
    kept = set()
    for _ in range(40):
        _, ids, _, _ = quantizer(torch.randn(2, 5, 4), temperature=0.0)
        used = (ids >= 0).all(dim=(0, 1))
        n = int(used.sum())
        assert used[:n].all() and not used[n:].any() and n >= 1
        kept.add(n)
    assert kept == set(range(1, 7))
    quantizer.eval()
    assert (quantizer(torch.randn(2, 5, 4), temperature=0.0)[1] >= 0).all()


@pytest.mark.parametrize("kind", ["mask", "residual"])
def test_logits_at_needed_positions_equal_the_full_logits_there(kind):
    """Sampling asks only for the logits it uses (packed path skips the rest); padding included."""
    torch.manual_seed(0)
    hparams = TINY_TRANSFORMER if kind == "mask" else dict(TINY_TRANSFORMER, num_quantizers=4)
    model = build_model(kind, hparams).eval()
    cond, pads = torch.randn(3, 8), torch.zeros(3, 9, dtype=torch.bool)
    pads[1, 5:], pads[2, 7:] = True, True
    needed = (torch.rand(3, 9) < 0.5) & ~pads
    needed[0, 0] = True
    if kind == "mask":
        inputs = (torch.randint(0, 16, (3, 9)), cond, pads)
    else:
        inputs = (torch.randn(3, 9, 16), torch.tensor([1, 2, 3]), cond, pads)
    with torch.no_grad():  # CPU inference: the packed path
        full, part = model.logits(*inputs), model.logits(*inputs, needed=needed)
    assert part.shape == (int(needed.sum()), full.shape[-1])
    assert torch.allclose(part, full[needed], atol=1e-5)
