"""Our model directory format: round trip of every part, optional parts, and clear errors on broken dirs."""
import json

import numpy as np
import pytest
import torch

import core.checkpoint as checkpoint
from core.checkpoint import DEFAULT_MODEL_DIR, CheckpointError, load_model_dir, resolve_model_dir, save_model_dir
from core.models import MoMaskModels
from tests.conftest import REPO
from tests.support.tiny_models import TEXT_DIM, small_models


@torch.no_grad()
def model_outputs(models: MoMaskModels, seed=1) -> dict:
    """One forward pass of every present part on fixed random inputs."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 16, (2, 5, 3), generator=g)
    cond = torch.randn(2, TEXT_DIM, generator=g)
    pads = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    out = {"decode": models.rvq.decode(ids), "encode": models.rvq.encode(torch.randn(2, 20, 263, generator=g)),
           "mask": models.mask.logits(ids[..., 0], cond, pads)}
    if models.residual is not None:
        history = torch.randn(2, 5, 32, generator=g)
        out["residual"] = models.residual.logits(history, torch.tensor([1, 2]), cond, pads)
    if models.length is not None:
        out["length"] = models.length(cond)
    return out


def test_round_trip_keeps_weights_outputs_and_config(tmp_path):
    models = small_models()
    save_model_dir(models, tmp_path / "model")
    loaded = load_model_dir(tmp_path / "model", precision="float32")  # exact products, to compare bit for bit

    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json", "length.safetensors", "mask.safetensors", "mean.npy", "residual.safetensors",
        "rvq.safetensors", "std.npy"]
    for name in ("rvq", "mask", "residual", "length"):
        original, copy = getattr(models, name), getattr(loaded, name)
        assert copy.hparams == original.hparams and not copy.training
        torch.testing.assert_close(copy.state_dict(), original.state_dict(), rtol=0, atol=0)
    for key, value in model_outputs(models).items():
        torch.testing.assert_close(model_outputs(loaded)[key], value, rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.mean, models.mean)
    np.testing.assert_array_equal(loaded.std, models.std)
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format_version"] == 1 and config["text_encoder"] == {"name": "minilm", "dim": 384}
    assert (config["dataset"], config["fps"], config["joints"], config["feature_dim"]) == ("bandai", 20, 22, 263)
    assert config["parts"]["mask"]["hparams"]["latent_dim"] == 32 and config["notes"] == ["trained in a test"]
    assert loaded.config["warnings"] == [] and loaded.config["precision"] == "float32"
    assert "precision" not in config and "warnings" not in config  # this machine's, never saved
    assert load_model_dir(tmp_path / "model").config["precision"] == models.set_precision("auto")


def test_optional_parts_load_as_none_with_warnings(tmp_path):
    save_model_dir(small_models(), tmp_path)  # a full model first: its residual/length files must go
    models = small_models(seed=3, parts=("rvq", "mask"))
    save_model_dir(models, tmp_path)
    loaded = load_model_dir(tmp_path, precision="float32")

    assert loaded.residual is None and loaded.length is None
    assert not (tmp_path / "residual.safetensors").exists() and not (tmp_path / "length.safetensors").exists()
    assert any("residual" in w for w in loaded.config["warnings"])
    assert any("length" in w for w in loaded.config["warnings"])
    torch.testing.assert_close(model_outputs(loaded)["mask"], model_outputs(models)["mask"], rtol=0, atol=0)


def test_required_part_cannot_be_saved_missing(tmp_path):
    models = small_models()
    models.mask = None
    with pytest.raises(CheckpointError, match="without its mask part"):
        save_model_dir(models, tmp_path)


def test_default_model_dir_and_resolution(monkeypatch, tmp_path):
    assert DEFAULT_MODEL_DIR == REPO / "models" / "default"
    assert resolve_model_dir(None) == DEFAULT_MODEL_DIR
    assert resolve_model_dir("~/mine") == resolve_model_dir("~/mine").expanduser() != DEFAULT_MODEL_DIR
    monkeypatch.setattr(checkpoint, "DEFAULT_MODEL_DIR", tmp_path / "absent")
    with pytest.raises(CheckpointError, match="default model is not installed.*import-momask"):
        load_model_dir(None)
    save_model_dir(small_models(), tmp_path / "absent")
    assert load_model_dir().mask.hparams["latent_dim"] == 32


@pytest.fixture
def saved(tmp_path):
    save_model_dir(small_models(), tmp_path)
    return tmp_path


def edit_config(path, change):
    config = json.loads((path / "config.json").read_text())
    change(config)
    (path / "config.json").write_text(json.dumps(config))


def test_missing_directory_and_files(tmp_path, saved):
    with pytest.raises(CheckpointError, match=r"nowhere: model directory not found"):
        load_model_dir(tmp_path / "nowhere")
    (saved / "mean.npy").unlink()
    with pytest.raises(CheckpointError, match=r"mean\.npy: missing"):
        load_model_dir(saved)
    (saved / "mask.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"mask\.safetensors: missing"):
        load_model_dir(saved)
    (saved / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        load_model_dir(saved)


def test_corrupt_config(saved):
    (saved / "config.json").write_text('{"format": "momask-blender-model", ')
    with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON"):
        load_model_dir(saved)
    (saved / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="not a momask-blender-model config"):
        load_model_dir(saved)


def test_text_encoder_must_be_named_with_its_dim(saved):
    edit_config(saved, lambda c: c.update(text_encoder={"name": "minilm"}))
    with pytest.raises(CheckpointError, match="'text_encoder' must give the encoder's name and dim"):
        load_model_dir(saved)


def test_newer_format_version_is_refused(saved):
    edit_config(saved, lambda c: c.update(format_version=2))
    with pytest.raises(CheckpointError, match="format version 2 is not supported"):
        load_model_dir(saved)


def test_required_part_missing_from_config(saved):
    edit_config(saved, lambda c: c["parts"].update(rvq=None))
    with pytest.raises(CheckpointError, match="required rvq part is missing"):
        load_model_dir(saved)


def test_corrupt_safetensors(saved):
    data = (saved / "residual.safetensors").read_bytes()
    (saved / "residual.safetensors").write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match=r"residual\.safetensors: not a readable safetensors file"):
        load_model_dir(saved)


def test_weights_that_do_not_fit_the_hparams(saved):
    edit_config(saved, lambda c: c["parts"]["mask"]["hparams"].update(ff_size=48))
    with pytest.raises(CheckpointError, match=r"mask\.safetensors: weights do not fit.*linear1"):
        load_model_dir(saved)


def test_bad_hparams(saved):
    edit_config(saved, lambda c: c["parts"]["length"]["hparams"].update(layers=3))
    with pytest.raises(CheckpointError, match=r"parts\.length: cannot build the model.*layers"):
        load_model_dir(saved)


def test_text_encoder_dim_must_match_the_conditioning(saved):
    edit_config(saved, lambda c: c.update(text_encoder={"name": "clip-vit-b32", "dim": 512}))
    with pytest.raises(CheckpointError, match="conditioned on 384-d text.*'clip-vit-b32' gives 512-d"):
        load_model_dir(saved)


def test_bad_normalisation_statistics(saved):
    np.save(saved / "mean.npy", np.zeros(251, np.float32))
    with pytest.raises(CheckpointError, match=r"mean\.npy: expected 263 finite values, got shape \(251,\)"):
        load_model_dir(saved)
    np.save(saved / "mean.npy", np.zeros(263, np.float32))
    std = np.ones(263, np.float32)
    std[7] = 0
    np.save(saved / "std.npy", std)
    with pytest.raises(CheckpointError, match=r"std\.npy: standard deviations must be positive \(dims \[7\]\)"):
        load_model_dir(saved)

