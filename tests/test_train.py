"""`momask train`: every kind learns on a tiny dataset, logs and plots, resumes bit for bit (after a pause
or a SIGINT), runs under torchrun with two gloo processes that end identical, assembles into a model
directory that generates, and explains bad input."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO
from core.checkpoint import load_model_dir
from core.cli import main
from core.dataset import load_dataset
from core.dataset.prepare import prepare_data
from core.evaluation.evaluator import build_evaluator, load_evaluator
from core.models import build_model
from core.sampling import generate
from core.train import ConfigError, assemble_model_dir, load_config, train
from core.train.config import parse_config
from core.train.data import ClipTokens, action_weights, batch_items, crop_units
from core.train.loop import fingerprint, learning_rate
from core.train.parts import PartError, load_part
from tests.support.files import make_archive
from tests.support.tiny_models import single_thread  # noqa: F401 (autouse fixture)

TINY = REPO / "configs" / "tiny.json"
KINDS = ("rvq", "mask", "residual", "length", "evaluator")


def tiny(**changes):
    """The tiny config's JSON with changes such as {"rvq.iterations": 10} (None deletes the key)."""
    values = json.loads(TINY.read_text())
    for key, value in changes.items():
        *path, last = key.split(".")
        node = values
        for part in path:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return values


def write_config(path, **changes):
    path.write_text(json.dumps(tiny(**changes)))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two clips and their mirrors (49 and 59 frames), prepared from a synthetic archive."""
    tmp = tmp_path_factory.mktemp("train-data")
    prepare_data(make_archive(tmp), tmp / "data", workers=1)
    return tmp / "data"


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    """Every kind trained with the tiny config; the transformers on the tiny RVQ."""
    root = tmp_path_factory.mktemp("runs")
    for kind in KINDS:
        train(kind, TINY, dataset, root / kind, rvq=root / "rvq", progress=False)
    return root


def log_rows(run, timing=False):
    with open(run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows if timing else [{k: v for k, v in r.items() if k not in ("samples_per_s", "seconds")} for r in rows]


# The learning rate logged every 5 steps under configs/tiny.json: rvq 2e-3 halved from step 40 on, the
# transformers 1e-3 halved from step 30 on (both warm up over 5 steps, done by the first row), the rest constant.
LOGGED_LR = {"rvq": [2e-3] * 8 + [1e-3] * 2, "mask": [1e-3] * 6 + [5e-4] * 2, "residual": [1e-3] * 6 + [5e-4] * 2,
             "length": [1e-3] * 8, "evaluator": [1e-3] * 8}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_learns_and_writes_its_log_and_curves(runs, kind):
    rows = log_rows(runs / kind)
    assert [int(r["step"]) for r in rows] == list(range(5, 5 * len(LOGGED_LR[kind]) + 1, 5))
    assert [float(r["lr"]) for r in rows] == pytest.approx(LOGGED_LR[kind])
    first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])
    assert last < 0.9 * first, (kind, first, last)
    png = (runs / kind / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_schedule_warms_up_then_steps_down():
    stage = parse_config(tiny(**{"rvq.lr": 1.0, "rvq.warmup": 4, "rvq.milestones": [6, 8], "rvq.gamma": 0.1})).stage("rvq")
    assert [learning_rate(stage, s) for s in range(10)] == pytest.approx(
        [0.25, 0.5, 0.75, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])


def test_rvq_part_holds_its_normalisation_and_reconstructs_better_than_at_start(runs, dataset):
    rvq, info = load_part(runs / "rvq", "rvq")
    data = load_dataset(dataset, "train")
    np.testing.assert_array_equal(np.load(runs / "rvq" / "mean.npy"), data.mean)
    std = np.load(runs / "rvq" / "std.npy")
    assert (std > 0).all() and np.array_equal(std[data.std > 0], data.std[data.std > 0])  # constant dims -> 1
    assert info["steps"] == 50 and info["hparams"]["nb_code"] == 32 and info["rank_fingerprints"][0]
    rows = log_rows(runs / "rvq")
    assert float(rows[-1]["recon"]) < 0.75 * float(rows[0]["recon"])
    x = torch.from_numpy((data[0].features[:48] - data.mean) / std).float()[None]
    untrained = build_model("rvq", info["hparams"]).eval()
    error = torch.nn.functional.smooth_l1_loss(rvq.decode(rvq.encode(x)), x)
    assert error < 0.75 * torch.nn.functional.smooth_l1_loss(untrained.decode(untrained.encode(x)), x)


def test_transformers_read_the_rvq_tokens_of_every_clip_and_offset(runs, dataset):
    rvq, info = load_part(runs / "rvq", "rvq")
    data = load_dataset(dataset, "train")
    std = np.load(runs / "rvq" / "std.npy")
    with np.load(runs / "mask" / "tokens.npz") as f:
        tokens = ClipTokens(f["ids"], f["counts"], int(f["offsets"]))
    assert tokens.offsets == 4 and list(tokens.counts) == [(n - 3) // 4 for n in data.lengths]
    for clip in range(len(data)):
        x = torch.from_numpy((data[clip].features - data.mean) / std).float()
        n = tokens.counts[clip]
        for offset in range(4):
            expected = rvq.encode(x[None, offset:offset + 4 * n])[0].numpy()
            start = tokens.starts[clip] + offset * n
            np.testing.assert_array_equal(tokens.ids[start:start + n], expected)
    ids, lengths = tokens.crops(np.array([0, 1, 2, 3] * 25), 49, np.random.default_rng(0))
    assert ids.shape == (100, lengths.max(), 3) and (ids[np.arange(ids.shape[1]) >= lengths[:, None]] == 0).all()
    part = json.loads((runs / "mask" / "part.json").read_text())
    assert part["rvq_sha256"] == info["sha256"] and part["hparams"]["cond_dim"] == 384
    assert part["hparams"]["code_dim"] == 32 and part["hparams"]["num_tokens"] == 32


def test_crops_follow_the_loader_rules():
    rng = np.random.default_rng(0)
    units = rng.integers(1, 80, 30000)
    length, start = crop_units(units, 49, rng)
    full = np.minimum(units, 49)
    shortened = length == full - 1
    assert ((length == full) | (shortened & (full > 1))).all()
    assert abs(shortened[full > 1].mean() - 1 / 3) < 0.02
    assert (start >= 0).all() and (start + length <= units).all()
    long = units > 60  # long sequences start anywhere
    assert start[long].max() > 20 and (start[long] == 0).mean() < 0.2


def test_balanced_sampling_draws_each_action_at_its_stated_share():
    """Three actions: 'rare' has 1 clip of 20 frames, 'walk' 50 clips of 100, 'wave' 10 clips of 300; with
    balance 0.5 each action's share is its frames ** 0.5 over the sum, and clips within it by their frames."""
    actions = ["rare"] + ["walk"] * 50 + ["wave"] * 10
    frames = np.array([20] + [100] * 50 + [300] * 10)
    weights = action_weights(actions, frames, 0.5)
    expected = np.sqrt([20, 5000, 3000]) / np.sqrt([20, 5000, 3000]).sum()
    draws = np.concatenate([batch_items(len(actions), 256, step, 0, 1, seed=3, weights=weights) for step in range(400)])
    share = [np.isin(draws, np.flatnonzero(np.array(actions) == a)).mean() for a in ("rare", "walk", "wave")]
    np.testing.assert_allclose(share, expected, atol=0.005)
    assert expected[0] > 20 / frames.sum() * 5  # the rare action is drawn far more often than its frames say
    np.testing.assert_array_equal(batch_items(len(actions), 8, 7, 0, 1, seed=3, weights=weights),
                                  batch_items(len(actions), 8, 7, 0, 1, seed=3, weights=weights))  # resumable
    np.testing.assert_allclose(action_weights(actions, frames, 1.0), frames / frames.sum())


def test_sampler_deals_each_epoch_once_across_processes():
    items, batch, world = 10, 3, 2
    steps = [[batch_items(items, batch, s, r, world, seed=1) for r in range(world)] for s in range(5)]
    stream = np.concatenate([b for step in steps for b in step])  # 30 = 3 epochs, in global order
    for epoch in range(3):
        assert sorted(stream[epoch * items:(epoch + 1) * items]) == list(range(items))
    assert not np.array_equal(stream[:items], stream[items:2 * items])  # a fresh permutation per epoch
    np.testing.assert_array_equal(batch_items(items, batch, 3, 1, world, seed=1), steps[3][1])
    assert not np.array_equal(batch_items(items, batch, 3, 1, world, seed=2), steps[3][1])


@pytest.mark.parametrize("kind", ["rvq", "mask"])
def test_pause_and_resume_is_bit_for_bit(runs, dataset, tmp_path, kind):
    config = parse_config(tiny(**{f"{kind}.iterations": 20}))
    train(kind, config, dataset, tmp_path / "straight", rvq=runs / "rvq", progress=False)
    train(kind, config, dataset, tmp_path / "paused", rvq=runs / "rvq", progress=False, stop_at=8)  # mid-interval
    assert not (tmp_path / "paused" / "part.json").exists()
    assert torch.load(tmp_path / "paused" / "checkpoint.pt", weights_only=True)["step"] == 8
    train(kind, config, dataset, tmp_path / "paused", rvq=runs / "rvq", progress=False)
    straight, resumed = (load_file(tmp_path / d / "model.safetensors") for d in ("straight", "paused"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert log_rows(tmp_path / "straight") == log_rows(tmp_path / "paused")
    if kind == "rvq":  # the EMA statistics that state_dict leaves out came back too
        a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)["buffers"] for d in ("straight", "paused"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigint_stops_after_a_step_and_the_run_resumes_exactly(dataset, tmp_path):
    config = write_config(tmp_path / "long.json", **{"rvq.iterations": 100000})
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "core", "train", "rvq", "--config", str(config), "--data",
                             str(dataset), "--out", str(run)], cwd=REPO, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not (run / "log.csv").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped after step" in err and "run the same command to resume" in err
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert step >= 5
    train("rvq", config, dataset, run, progress=False, stop_at=step + 3)
    train("rvq", config, dataset, tmp_path / "straight", progress=False, stop_at=step + 3)
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (run, tmp_path / "straight"))
    assert a["step"] == b["step"] == step + 3
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])


@pytest.mark.parametrize("kind", ["rvq", "residual"])  # EMA codebooks; a parameter some steps leave unused
def test_two_gloo_processes_end_with_identical_weights(runs, dataset, tmp_path, kind):
    run = tmp_path / "ddp"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "core", "train", kind, "--config", str(TINY), "--data", str(dataset),
                             "--out", str(run), "--rvq", str(runs / "rvq")], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    part = json.loads((run / "part.json").read_text())
    prints = part["rank_fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1]
    state = torch.load(run / "checkpoint.pt", weights_only=True)  # rank 0's weights and EMA state
    net = build_model(kind, part["hparams"])
    before = fingerprint(net)
    net.load_state_dict(state["net"])
    for name, buffer in net.named_buffers():
        if name in state["buffers"]:
            buffer.copy_(state["buffers"][name])
    assert fingerprint(net) == prints[0] != before
    rows = log_rows(run, timing=True)
    assert int(rows[-1]["step"]) == part["steps"] == load_config(TINY).stage(kind).iterations
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


class PoolEncoder:
    """The training captions' own embeddings, read from the caption pool cache (no encoder to load)."""
    name, dim = "minilm", 384

    def __init__(self, dataset):
        (pool,) = (dataset / "caption_pools").glob("*.npz")
        with np.load(pool) as f:
            self.vectors = dict(zip(f["captions"].tolist(), torch.from_numpy(f["embeddings"])))

    def encode(self, prompts):
        return torch.stack([self.vectors[p] for p in prompts])


def test_assembled_model_directory_loads_and_generates(runs, dataset, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", "assemble", "--rvq", str(runs / "rvq"), "--mask", str(runs / "mask"), "--residual",
                 str(runs / "residual"), "--length", str(runs / "length"), "--evaluator", str(runs / "evaluator"),
                 "--out", str(out)]) == 0
    models = load_model_dir(out)
    assert models.config["text_encoder"] == {"name": "minilm", "dim": 384} and models.config["warnings"] == []
    np.testing.assert_array_equal(models.mean, np.load(runs / "rvq" / "mean.npy"))
    mask, _ = load_part(runs / "mask", "mask")
    assert all(torch.equal(v, mask.state_dict()[k]) for k, v in models.mask.state_dict().items())
    encoder = PoolEncoder(dataset)
    prompt = next(iter(encoder.vectors))
    (given,), (estimated,) = (generate(models, encoder, [prompt], lengths, seed=0) for lengths in ([40], None))
    assert given[0].joints.shape == (40, 22, 3) and np.isfinite(given[0].joints).all()
    assert estimated[0].length % 4 == 0 and estimated[0].tokens.shape[1] == 3
    assert load_evaluator(out / "evaluator").net.hparams["embed_dim"] == 8
    assert main(["train", "assemble", "--rvq", str(runs / "rvq"), "--out", str(out)]) == 2
    assert "assemble needs --mask" in capsys.readouterr().err


def test_assembly_refuses_transformers_of_another_rvq(runs, dataset, tmp_path):
    other = train("rvq", parse_config(tiny(**{"rvq.iterations": 3})), dataset, tmp_path / "other", progress=False)
    with pytest.raises(PartError, match="trained on another RVQ"):
        assemble_model_dir(tmp_path / "model", other, runs / "mask")
    with pytest.raises(PartError, match="holds a trained 'mask' part, not a rvq part"):
        assemble_model_dir(tmp_path / "model", runs / "mask", runs / "mask")


def test_corrupt_part_weights_are_named(runs, tmp_path):
    broken = tmp_path / "mask"
    shutil.copytree(runs / "mask", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(PartError, match=f"{weights}: not a readable safetensors file"):
        load_part(broken, "mask")


def test_shipped_configs_build_every_network():
    for path in (TINY, REPO / "configs" / "default.json"):
        config = load_config(path)
        assert set(config.stages) == set(KINDS), path
        rvq = build_model("rvq", config.stage("rvq").model)
        derived = dict(cond_dim=384, code_dim=rvq.hparams["code_dim"], num_tokens=rvq.hparams["nb_code"])
        build_model("mask", config.stage("mask").model | derived)
        build_model("residual", config.stage("residual").model | derived | {"num_quantizers": len(rvq.quantizer.layers)})
        assert build_model("length", config.stage("length").model | {"cond_dim": 384}).hparams["num_lengths"] > 49
        build_evaluator(config.stage("evaluator").model | {"text_dim": 384})


@pytest.mark.parametrize("changes, message", [
    ({"rvq.itertions": 5}, "tiny: rvq: unknown key\\(s\\) itertions"),
    ({"rvq.iterations": 1.5}, "rvq.iterations: must be a positive integer"),
    ({"rvq.lr": None}, "rvq: missing key\\(s\\) lr"),
    ({"rvq.optimizer": "sgd"}, "rvq.optimizer: must be one of adamw, adam"),
    ({"rvq.milestones": [50, 10]}, "rvq.milestones: must be increasing"),
    ({"amp": "fp8"}, "amp: must be one of bf16, fp16, off"),
    ({"mask.token_offsets": 5}, "mask.token_offsets: must be 1..4"),
])
def test_bad_configs_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(tiny(**changes), "tiny")


def test_bad_runs_are_explained(runs, dataset, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="training config not found: .*nothing.json"):
        train("rvq", tmp_path / "nothing.json", dataset, tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        train("rvq", TINY, tmp_path / "no-data", tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="has no 'length' section"):
        train("length", parse_config(tiny(length=None)), dataset, tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="no training clip is 400 frames long .*longest has 59"):
        train("rvq", parse_config(tiny(**{"rvq.window": 400})), dataset, tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="needs the trained RVQ: give --rvq DIR"):
        train("mask", TINY, dataset, tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="mask.model.code_dim is 99 but must be 32"):
        train("mask", parse_config(tiny(**{"mask.model.code_dim": 99})), dataset, tmp_path / "a", rvq=runs / "rvq",
              progress=False)
    train("rvq", TINY, dataset, tmp_path / "unfinished", progress=False, stop_at=2)
    with pytest.raises(PartError, match="no finished rvq training here .*has not finished"):
        train("mask", TINY, dataset, tmp_path / "a", rvq=tmp_path / "unfinished", progress=False)
    with pytest.raises(ConfigError, match="started with other settings \\(rvq.lr differ\\)"):
        train("rvq", parse_config(tiny(**{"rvq.lr": 0.1})), dataset, tmp_path / "unfinished", progress=False)
    with pytest.raises(ConfigError, match="a checkpoint of a 'rvq' run, not mask"):
        train("mask", TINY, dataset, tmp_path / "unfinished", rvq=runs / "rvq", progress=False)
    train("mask", TINY, dataset, tmp_path / "mask", rvq=runs / "rvq", progress=False, stop_at=2)
    other = train("rvq", parse_config(tiny(**{"rvq.iterations": 2})), dataset, tmp_path / "other", progress=False)
    with pytest.raises(ConfigError, match="started with other inputs \\(rvq_sha256 differ\\)"):
        train("mask", TINY, dataset, tmp_path / "mask", rvq=other, progress=False)
    bad = write_config(tmp_path / "bad.json", **{"rvq.batch_size": 0})
    assert main(["train", "rvq", "--config", str(bad), "--data", str(dataset), "--out", str(tmp_path / "b")]) == 2
    assert "momask train: error: " in capsys.readouterr().err
    assert main(["train", "mask", "--data", str(dataset)]) == 2
    assert "needs --config FILE and --out DIR" in capsys.readouterr().err
