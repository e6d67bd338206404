"""Evaluation: the metric functions against direct computations, the evaluator (loss, padding, folder) and
`momask evaluate` end to end on a tiny model, evaluator and dataset."""
import json
import re

import numpy as np
import pytest
import torch

import core.evaluation.evaluate as evaluate_module
from core.checkpoint import CheckpointError, model_config, save_model_dir
from core.cli import main
from core.dataset import FEATURES, FEATURES_MIRRORED, JOINTS, MANIFEST
from core.dataset.captions import captions_for
from core.dataset.prepare import write_dataset
from core.evaluation import build_evaluator, load_evaluator, save_evaluator
from core.evaluation.evaluate import COLUMNS, ROWS, evaluate, load_eval_set, reconstruct
from core.evaluation.metrics import (diversity, euclidean_distances, fid, frechet_distance, matching_distance,
                                     mean_and_interval, mpjpe, multimodality, r_precision, r_precision_hits)
from core.features import FEATURE_DIM, mirror_features, recover_from_ric
from core.models import MoMaskModels
from tests.support.tiny_models import COND, HashEncoder, models, single_thread  # noqa: F401 (fixtures)

TINY_EVALUATOR = dict(text_dim=COND, movement_dim=16, hidden=16, text_hidden=16, embed_dim=8, dropout=0.0, margin=3.0)


# --- metrics ------------------------------------------------------------------------------------------------

def test_euclidean_distances_and_matching_distance():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(4, 7))
    direct = np.array([[np.sqrt(((x - y) ** 2).sum()) for y in b] for x in a])
    np.testing.assert_allclose(euclidean_distances(a, b), direct)
    assert matching_distance(a[:4], b) == pytest.approx(np.mean([np.sqrt(((x - y) ** 2).sum())
                                                                 for x, y in zip(a[:4], b)]))


def test_r_precision_hits_match_ranks_counted_directly():
    rng = np.random.default_rng(1)
    text = rng.normal(size=(32, 6))
    motion = text + rng.normal(scale=1.0, size=(32, 6))  # related but often outranked
    d = np.linalg.norm(text[:, None] - motion[None], axis=-1)
    rank = (d < np.diag(d)[:, None]).sum(axis=1)  # motions nearer than the true one
    hits = r_precision_hits(text, motion)
    assert hits.tolist() == [(rank < k).sum() for k in (1, 2, 3)]
    assert 0 < hits[0] < hits[2] < 32


def test_r_precision_of_aligned_and_random_embeddings():
    rng = np.random.default_rng(2)
    text = rng.normal(size=(32 * 300, 16))
    np.testing.assert_array_equal(r_precision(text, text + 1e-3 * rng.normal(size=text.shape)), [1, 1, 1])
    chance = r_precision(text, rng.normal(size=text.shape))
    np.testing.assert_allclose(chance, np.array([1, 2, 3]) / 32, atol=0.01)
    # an incomplete last batch is left out: 40 rows score as their first 32
    mixed = rng.normal(size=(40, 16))
    np.testing.assert_array_equal(r_precision(text[:40], mixed), r_precision(text[:32], mixed[:32]))
    with pytest.raises(ValueError, match="at least one full batch of 32"):
        r_precision(text[:31], text[:31])


def test_fid_against_closed_forms():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
    assert abs(fid(x, x)) < 1e-8
    shift = rng.normal(size=8)
    assert fid(x, x + shift) == pytest.approx(shift @ shift, rel=1e-6)  # same covariance: squared distance
    # diagonal covariances: sum (sqrt(a) - sqrt(b))^2 + |mu1 - mu2|^2
    a, b, mu = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8), rng.normal(size=8)
    expected = mu @ mu + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu, np.diag(a), np.zeros(8), np.diag(b)) == pytest.approx(expected, rel=1e-9)
    # two samples of one Gaussian are close, a scaled one is not
    y = rng.normal(size=(2000, 8)) @ np.eye(8)
    assert fid(rng.normal(size=(2000, 8)), y) < 0.1 < 1 < fid(2 * rng.normal(size=(2000, 8)), y)
    # fewer samples than dimensions: singular covariances still give a finite, real distance
    assert np.isfinite(fid(rng.normal(size=(10, 16)), rng.normal(size=(10, 16))))
    with pytest.raises(ValueError, match="different sizes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_diversity_and_multimodality():
    rng = np.random.default_rng(4)
    dim = 64
    points = rng.normal(size=(5000, dim))
    expected = np.sqrt(2 * dim) * (1 - 1 / (8 * dim))  # E|x - y| for independent N(0, I) points
    assert diversity(points, 300, rng) == pytest.approx(expected, rel=0.04)
    assert diversity(np.ones((400, dim)), 300, rng) == 0
    with pytest.raises(ValueError, match="at least 300 embeddings"):
        diversity(points[:299], 300, rng)
    spread = 0.5 * rng.normal(size=(100, 30, dim))
    # the two draws of generation indices are independent, so 1 pair in 30 is a generation with itself
    mean_over_draws = np.mean([multimodality(spread, 10, np.random.default_rng(s)) for s in range(100)])
    assert mean_over_draws == pytest.approx(29 / 30 * 0.5 * expected, rel=0.02)
    # the caption's own position does not count, only the spread of its generations
    offset = spread + 10 * rng.normal(size=(100, 1, dim))
    assert multimodality(offset, 10, np.random.default_rng(5)) == pytest.approx(
        multimodality(spread, 10, np.random.default_rng(5)))
    with pytest.raises(ValueError, match=">= 10 generations"):
        multimodality(spread[:, :5], 10, rng)


def test_mpjpe_is_root_relative_per_joint_per_frame():
    rng = np.random.default_rng(6)
    poses = rng.normal(size=(30, 22, 3))
    assert mpjpe(poses, poses + rng.normal(size=(30, 1, 3))) == pytest.approx(0, abs=1e-12)
    moved = poses.copy()
    moved[:, 5] += [0.0, 0.03, 0.04]  # one joint 5 cm off in every frame
    assert mpjpe(poses, moved) == pytest.approx(0.05 / 22)


def test_mean_and_interval():
    """20 repetitions of 0 and 2 (mean 1, standard deviation 1): the interval is 1.96 / sqrt(20)."""
    mean, ci = mean_and_interval(np.array([[0.0], [2.0]] * 10))
    assert mean == pytest.approx([1.0]) and ci == pytest.approx([0.43827], abs=1e-5)


# --- the evaluator ------------------------------------------------------------------------------------------

def related_batch(rng, size=32, groups=4):
    """Texts near one prototype per group; motions carrying that group's oscillation on its own channels."""
    prototypes = np.random.default_rng(99).normal(size=(groups, COND))
    group = rng.integers(groups, size=size)
    text = prototypes[group] + 0.1 * rng.normal(size=(size, COND))
    lengths = rng.integers(4, 11, size=size) * 4
    motion = 0.3 * rng.normal(size=(size, lengths.max(), FEATURE_DIM))
    t = np.arange(lengths.max())
    for row, g in enumerate(group):
        motion[row, :, 20 * g:20 * g + 20] += np.sin(t * (0.3 + 0.4 * g))[:, None]
    return (torch.tensor(text, dtype=torch.float32), torch.tensor(motion, dtype=torch.float32),
            torch.tensor(lengths), torch.tensor(group))


def test_evaluator_loss_decreases_on_related_text_and_motion():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = build_evaluator(TINY_EVALUATOR)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    held_out = related_batch(np.random.default_rng(1))
    with torch.no_grad():
        before = net.loss(*held_out)
    for _ in range(40):
        out = net.loss(*related_batch(rng))
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
    with torch.no_grad():
        after = net.loss(*held_out)
    assert after["loss"] < 0.3 * before["loss"]
    assert after["accuracy"] > 0.9 and after["positive"] < after["negative"]


def test_loss_is_the_margin_loss_over_all_pairs_with_groups_masked():
    torch.manual_seed(1)
    net = build_evaluator(TINY_EVALUATOR).eval()
    text, motion, lengths, _ = related_batch(np.random.default_rng(2), size=6)
    groups = torch.tensor([0, 0, 1, 2, 2, 2])
    with torch.no_grad():
        out = net.loss(text, motion, lengths, groups)
        t, m = net.encode_text(text), net.encode_motion(motion, lengths)
    positive = np.mean([float(((t[i] - m[i]) ** 2).sum()) for i in range(6)])
    hinge = [max(0.0, 3.0 - float((t[i] - m[j]).norm()))
             ** 2 for i in range(6) for j in range(6) if groups[i] != groups[j]]
    assert float(out["loss"]) == pytest.approx(positive + np.mean(hinge), rel=1e-5)
    with torch.no_grad():  # one group for all: nothing is a negative, only the pull remains
        assert float(net.loss(text, motion, lengths, torch.zeros(6, dtype=torch.long))["loss"]) == pytest.approx(
            positive, rel=1e-5)


def test_motion_embedding_ignores_padding_and_checks_its_input():
    torch.manual_seed(2)
    net = build_evaluator(TINY_EVALUATOR).eval()
    motion = torch.randn(3, 40, FEATURE_DIM)
    lengths = torch.tensor([22, 40, 13])
    with torch.no_grad():
        batched = net.encode_motion(motion, lengths)
        garbage = motion.clone()
        garbage[0, 22:], garbage[2, 13:] = 1e3, -1e3
        assert torch.allclose(net.encode_motion(garbage, lengths), batched, atol=1e-5)
        for row in range(3):
            alone = net.encode_motion(motion[row:row + 1, :lengths[row]], lengths[row:row + 1])
            assert torch.allclose(alone, batched[row:row + 1], atol=1e-5)
        with pytest.raises(ValueError, match=r"lengths must be in 4\.\.40 frames, got \[22, 3, 13\]"):
            net.encode_motion(motion, torch.tensor([22, 3, 13]))
        with pytest.raises(ValueError, match=r"\(B, T, 263\)"):
            net.encode_motion(motion[..., :259], lengths)
    with pytest.raises(ValueError, match="bad hyper-parameters for the evaluator"):
        build_evaluator(dict(text_dims=3))


def test_evaluator_folder_round_trip_and_errors(tmp_path):
    torch.manual_seed(3)
    net = build_evaluator(TINY_EVALUATOR)
    rng = np.random.default_rng(3)
    mean, std = rng.normal(size=FEATURE_DIM), rng.uniform(0.5, 2, FEATURE_DIM)
    save_evaluator(net, tmp_path / "ev", mean, std, text_encoder="hash", dataset="synthetic", notes=["test"])
    loaded = load_evaluator(tmp_path / "ev")
    assert loaded.text_encoder == "hash" and loaded.config["hparams"] == net.hparams and not loaded.net.training
    motions = [rng.normal(size=(n, FEATURE_DIM)).astype(np.float32) for n in (12, 33, 20)]
    with torch.no_grad():
        direct = [net.eval().encode_motion(torch.tensor((m - mean) / std, dtype=torch.float32)[None],
                                           torch.tensor([len(m)]))[0].numpy() for m in motions]
    np.testing.assert_allclose(loaded.embed_motions(motions, batch_size=2), direct, atol=1e-4)
    text = torch.randn(4, COND)
    np.testing.assert_allclose(loaded.embed_texts(text), net.encode_text(text).detach().numpy(), atol=1e-5)

    with pytest.raises(CheckpointError, match="no evaluator here"):
        load_evaluator(tmp_path / "missing")
    config = json.loads((tmp_path / "ev" / "config.json").read_text())
    (tmp_path / "ev" / "config.json").write_text(json.dumps(dict(config, hparams=dict(net.hparams, hidden=32))))
    with pytest.raises(CheckpointError, match="evaluator.safetensors: weights do not fit"):
        load_evaluator(tmp_path / "ev")
    (tmp_path / "ev" / "config.json").write_text(json.dumps(dict(config, text_encoder={"name": "x", "dim": 384})))
    with pytest.raises(CheckpointError, match="gives 384-d vectors but the evaluator reads 8-d"):
        load_evaluator(tmp_path / "ev")
    (tmp_path / "ev" / "config.json").write_text(json.dumps(config))
    (tmp_path / "ev" / "std.npy").unlink()
    with pytest.raises(CheckpointError, match="std.npy: missing"):
        load_evaluator(tmp_path / "ev")


# --- momask evaluate ----------------------------------------------------------------------------------------

def write_tiny_dataset(root, clips_per_label=25, seed=0):
    """A prepared-dataset folder of smooth random features: 2 contents x 4 styles, so each label has clips in
    every split (20 test clips, 40 with mirrors)."""
    rng = np.random.default_rng(seed)
    clips, arrays = [], {JOINTS: [], FEATURES: [], FEATURES_MIRRORED: []}
    row = joint_row = 0
    for content in ("walk", "wave-left-hand"):
        for style in ("normal", "active", "elderly", "youthful"):
            for k in range(clips_per_label):
                length = int(rng.integers(24, 60))
                feats = np.cumsum(0.05 * rng.normal(size=(length, FEATURE_DIM)), axis=0).astype(np.float32)
                feats[:, 3] += 0.9  # root height
                clips.append({"name": f"dataset-2_{content}_{style}_{k:03d}", "dataset": 2, "content": content,
                              "style": style, "start": row, "length": length, "joint_start": joint_row,
                              "captions": captions_for(content, style, 3, rng)})
                joints = recover_from_ric(np.concatenate([feats, feats[-1:]]))
                for key, values in ((JOINTS, joints), (FEATURES, feats), (FEATURES_MIRRORED, mirror_features(feats))):
                    arrays[key].append(values.astype(np.float32))
                row, joint_row = row + length, joint_row + length + 1
    root.mkdir(parents=True)
    splits = write_dataset(root, clips, arrays)
    (root / MANIFEST).write_text(json.dumps({"clips": len(clips), "splits": splits}))
    return root


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory, models):  # noqa: F811 (the fixture from tests.support.tiny_models)
    """A model dir (the tiny sampling models, hash text encoder) with an evaluator inside, and a dataset."""
    root = tmp_path_factory.mktemp("evaluate")
    data = write_tiny_dataset(root / "data")
    stats = np.load(data / "mean.npy"), np.load(data / "std.npy")
    model_dir = save_model_dir(MoMaskModels(models.rvq, models.mask, models.residual, models.length, *stats,
                                            model_config("hash", COND, "tiny")), root / "model")
    torch.manual_seed(0)
    save_evaluator(build_evaluator(TINY_EVALUATOR), model_dir / "evaluator", *stats, text_encoder="hash",
                   dataset="tiny")
    return model_dir, data


@pytest.fixture
def hash_text_encoder(monkeypatch):
    def get_text_encoder(name, **opts):
        assert name == HashEncoder.name
        return HashEncoder()
    monkeypatch.setattr(evaluate_module, "get_text_encoder", get_text_encoder)


def test_eval_set_is_fixed_windows_and_captions(tiny_setup):
    _, data = tiny_setup
    first, again = load_eval_set(data, "test"), load_eval_set(data, "test")
    assert len(first.names) == 40 and first.names == again.names and first.captions == again.captions
    assert all(n % 4 == 0 and 24 <= n <= 56 for n in first.lengths)
    assert all(np.array_equal(a, b) for a, b in zip(first.motions, again.motions))
    assert len(set(first.captions)) > 30
    subset = load_eval_set(data, "test", limit=10)
    assert len(subset.names) == 10 and set(subset.names) <= set(first.names)


def test_reconstruction_batches_by_length_like_one_by_one(tiny_setup, models):  # noqa: F811
    _, data = tiny_setup
    motions = load_eval_set(data, "test").motions[:6]
    batched = reconstruct(models, motions)
    for motion, out in zip(motions, batched):
        assert out.shape == motion.shape
        np.testing.assert_allclose(out, reconstruct(models, [motion])[0], atol=1e-4)


def test_evaluate_command_prints_every_row_and_column(tiny_setup, hash_text_encoder, tmp_path, capsys):
    model_dir, data = tiny_setup
    out = tmp_path / "table.csv"
    assert main(["evaluate", str(model_dir), "--data", str(data), "--quick", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("|")]
    assert lines[0] == "| Method | " + " | ".join(COLUMNS.values()) + " |"
    assert [line.split("|")[1].strip() for line in lines[2:]] == list(ROWS)
    cells = {row: [c.strip() for c in line.split("|")[2:-1]] for row, line in zip(ROWS, lines[2:])}
    number = r"-?\d+\.\d+"
    for row, values in cells.items():
        assert len(values) == len(COLUMNS)
        for name, cell in zip(COLUMNS, values[:6]):  # R-precision, FID, MM-Dist, diversity: mean ± interval
            assert re.fullmatch(f"{number}±{number}", cell), (row, name, cell)
    assert cells["Real motion"][6:] == ["-", "-"] and cells["Generated"][7] == "-"
    assert re.fullmatch(f"{number}±{number}", cells["Generated"][6])
    assert re.fullmatch(number, cells["RVQ reconstruction"][7]) and cells["RVQ reconstruction"][6] == "-"
    assert abs(float(cells["Real motion"][3].split("±")[0])) < 1e-3  # real against itself
    assert "repetition 2/2" in captured.err and "40 clips, 32 per repetition" in captured.err
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert rows[0][:3] == ["method", "top1", "top1_ci"] and [r[0] for r in rows[1:]] == list(ROWS)


def test_evaluate_is_reproducible_and_seed_dependent(tiny_setup, hash_text_encoder, models, tmp_path):  # noqa: F811
    model_dir, data = tiny_setup
    kwargs = dict(data=data, quick=True, repeats=1, mm_samples=2, log=lambda line: None)
    a, b = evaluate(model_dir, seed=5, **kwargs), evaluate(model_dir, seed=5, **kwargs)
    c = evaluate(model_dir, seed=6, **kwargs)
    assert a.values == b.values
    assert a.values["Generated"]["fid"] != c.values["Generated"]["fid"]
    assert a.values["RVQ reconstruction"]["mpjpe_mm"] == c.values["RVQ reconstruction"]["mpjpe_mm"]
    skipped = evaluate(model_dir, seed=5, **dict(kwargs, mm_samples=0))
    assert "multimodality" not in skipped.values["Generated"] and "MultiModality skipped" in skipped.protocol
    skipped.write(tmp_path / "table.md")
    assert (tmp_path / "table.md").read_text() == f"{skipped.protocol}\n\n{skipped.table()}\n"
    # MPJPE is that of the reconstructions' joints against the windows' joints
    windows = load_eval_set(data, "test").motions
    loaded_models = MoMaskModels(models.rvq, models.mask, models.residual, models.length,
                                 np.load(data / "mean.npy"), np.load(data / "std.npy"))
    joints = [np.concatenate([recover_from_ric(m) for m in motions])
              for motions in (windows, reconstruct(loaded_models, windows))]
    assert a.values["RVQ reconstruction"]["mpjpe_mm"][0] == pytest.approx(1000 * mpjpe(*joints), rel=1e-4)


def test_evaluate_explains_missing_parts(tiny_setup, hash_text_encoder, tmp_path, capsys):
    model_dir, data = tiny_setup
    assert main(["evaluate", str(model_dir), "--data", str(data), "--evaluator", str(tmp_path), "--quick"]) == 2
    assert f"{tmp_path}: no evaluator here" in capsys.readouterr().err
    with pytest.raises(ValueError, match="the test split has 10 clips; the metrics need at least one batch of 32"):
        evaluate(model_dir, data=data, quick=True, limit=10)
