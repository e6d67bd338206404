"""Our model directory: what a trained or imported MoMask model is on disk.

    config.json        format version, text encoder (name, dim), dataset, fps, joints, feature dim,
                       per part its constructor hparams, provenance notes
    rvq.safetensors    one weight file per part (mask, residual, length likewise); parameter names follow
    ...                the released momask-codes checkpoints
    mean.npy, std.npy  the feature normalisation the models were trained with

safetensors rather than pickles: loading a model someone sent you can never run code. The RVQ-VAE and the
masked transformer are required; the residual transformer and the length estimator are optional (without
them motions decode from the base token layer only, and lengths must be given).
"""
import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from .features import FEATURE_DIM
from .model_dirs import DEFAULT_MODEL_DIR
from .models import MoMaskModels, build_model
from .skeleton import NUM_JOINTS
from .timebase import FPS

FORMAT_NAME = "momask-blender-model"
FORMAT_VERSION = 1
PARTS = ("rvq", "mask", "residual", "length")
REQUIRED_PARTS = ("rvq", "mask")
MISSING_PART_WARNINGS = {
    "residual": "no residual transformer: motions decode from the base token layer only (coarser detail)",
    "length": "no length estimator: every prompt needs an explicit length",
}


class CheckpointError(ValueError):
    """A model directory that cannot be loaded; the message names the file and what is wrong."""


def model_config(text_encoder: str, text_dim: int, dataset: str, notes: list[str] = ()) -> dict:
    """The model-level part of config.json (save_model_dir adds the parts); goes into MoMaskModels.config."""
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "text_encoder": {"name": text_encoder, "dim": text_dim}, "dataset": dataset, "fps": FPS,
            "joints": NUM_JOINTS, "feature_dim": FEATURE_DIM, "notes": list(notes)}


def resolve_model_dir(path: str | os.PathLike | None) -> Path:
    """The model directory to use: the given one, or the default model shipped in the repository."""
    return DEFAULT_MODEL_DIR if path is None else Path(path).expanduser()


def save_model_dir(models: MoMaskModels, path: str | os.PathLike) -> Path:
    """Write `models` as a model directory (created if needed; part files of absent parts are removed).
    config.json is written last, so an interrupted save never looks like a complete model."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, stats in (("mean", models.mean), ("std", models.std)):
        if np.shape(stats) != (models.config["feature_dim"],):
            raise CheckpointError(f"{name}: expected shape ({models.config['feature_dim']},), got {np.shape(stats)}")
        np.save(path / f"{name}.npy", np.asarray(stats, dtype=np.float32))
    parts = {}
    for name in PARTS:
        module, file = getattr(models, name), path / f"{name}.safetensors"
        if module is None:
            if name in REQUIRED_PARTS:
                raise CheckpointError(f"cannot save a model without its {name} part")
            file.unlink(missing_ok=True)
            parts[name] = None
            continue
        save_model(module, str(file))  # drops tied aliases; load_model restores them from the rebuilt module
        parts[name] = {"file": file.name, "hparams": module.hparams}
    config = {k: v for k, v in models.config.items() if k not in LOAD_TIME_KEYS}
    config.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, parts=parts)
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return path


def _read_config(path: Path) -> dict:
    file = path / "config.json"
    if not path.is_dir():
        hint = ""
        if path == DEFAULT_MODEL_DIR:
            hint = (" (the default model is not installed; import released MoMask checkpoints with "
                    "`momask import-momask CHECKPOINTS/t2m OUT_DIR` and choose OUT_DIR)")
        raise CheckpointError(f"{path}: model directory not found{hint}")
    if not file.is_file():
        raise CheckpointError(f"{file}: missing; {path} is not a model directory")
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{file}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{file}: expected a JSON object")
    if config.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{file}: not a {FORMAT_NAME} config (format: {config.get('format')!r})")
    if not isinstance(config.get("format_version"), int) or config["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{file}: format version {config.get('format_version')!r} is not supported "
                              f"(this version reads up to {FORMAT_VERSION}); update momask-blender")
    encoder = config.get("text_encoder")
    if not isinstance(encoder, dict) or not {"name", "dim"} <= encoder.keys():
        raise CheckpointError(f"{file}: 'text_encoder' must give the encoder's name and dim")
    if not isinstance(config.get("parts"), dict) or not isinstance(config.get("feature_dim"), int):
        raise CheckpointError(f"{file}: missing 'parts' or 'feature_dim'")
    return config


def summarise_load_error(err: Exception, limit: int = 3) -> str:
    """torch's strict-load error lists every mismatching tensor; the first few tell the user enough."""
    problems = [line.strip() for line in str(err).splitlines()[1:] if line.strip()] or [str(err)]
    more = f"; ... {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


def load_torch_pickle(file: Path):
    """torch.load limited to tensors and plain containers (weights_only): a .tar/.pt from elsewhere can
    never run code while loading."""
    try:
        with warnings.catch_warnings():  # torch's request to report pickle protocols it may not read: not the user's
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # what the weights-only unpickler refused, amid its boilerplate
        text = str(err)
        lines = [line.strip() for line in text.split("WeightsUnpickler error:")[-1].splitlines() if line.strip()
                 and not line.startswith(("Weights only load failed", "Check the documentation"))]
        detail = lines[0].partition(". ")[0].rstrip(".") if lines else text.splitlines()[0]  # not torch's advice
        if detail.startswith("Unsupported operand"):  # the pickle opcodes torch.save never writes
            raise CheckpointError(f"{file}: a plain Python pickle or another format, not a file saved with torch.save "
                                  f"({detail}); not loaded for safety") from None
        raise CheckpointError(f"{file}: cannot be unpickled as tensors and plain containers only "
                              f"({detail}); not loaded for safety") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{file}: not a readable PyTorch checkpoint ({str(err).splitlines()[0]})") from None


def _load_part(path: Path, name: str, spec: dict, device) -> torch.nn.Module:
    config_file = path / "config.json"
    try:
        module = build_model(name, spec["hparams"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{config_file}: parts.{name}: cannot build the model ({err})") from None
    load_weights(module, path / spec.get("file", f"{name}.safetensors"), name)
    return module.to(device).eval()


def load_weights(module: torch.nn.Module, file: Path, name: str) -> None:
    """Load a part's safetensors file into `module` (strict), turning every failure into a CheckpointError
    that names the file (model directories and training runs alike)."""
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (the weights of the {name} part)")
    try:
        load_model(module, str(file), strict=True)
    except SafetensorError as err:
        raise CheckpointError(f"{file}: not a readable safetensors file ({err})") from None
    except RuntimeError as err:  # missing/unexpected keys or size mismatches against the config's hparams
        raise CheckpointError(f"{file}: weights do not fit the recorded {name} hparams: "
                              f"{summarise_load_error(err)}") from None


def load_stats(path: Path, name: str, feature_dim: int) -> np.ndarray:
    file = path / f"{name}.npy"
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (the feature normalisation of the model)")
    try:
        stats = np.load(file, allow_pickle=False)
    except ValueError as err:
        raise CheckpointError(f"{file}: not a readable .npy array ({err})") from None
    if stats.shape != (feature_dim,) or not np.all(np.isfinite(stats)):
        raise CheckpointError(f"{file}: expected {feature_dim} finite values, got shape {stats.shape}")
    if name == "std" and np.any(stats <= 0):
        raise CheckpointError(f"{file}: standard deviations must be positive (dims {np.flatnonzero(stats <= 0)})")
    return stats.astype(np.float32)


LOAD_TIME_KEYS = ("warnings", "precision")  # set by load_model_dir for this machine, never saved


def load_model_dir(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                   precision: str = "auto") -> MoMaskModels:
    """Load a model directory (None: the default model) in eval mode, its transformers set to `precision`
    (MoMaskModels.set_precision; `config["precision"]` says which took effect). `config["warnings"]` lists
    the optional parts that are missing."""
    path = resolve_model_dir(path)
    config = _read_config(path)
    parts, text_dim = config["parts"], config["text_encoder"]["dim"]
    modules, warnings = {}, []
    for name in PARTS:
        spec = parts.get(name)
        if spec is None:
            if name in REQUIRED_PARTS:
                raise CheckpointError(f"{path / 'config.json'}: the required {name} part is missing")
            modules[name] = None
            warnings.append(MISSING_PART_WARNINGS[name])
            continue
        modules[name] = _load_part(path, name, spec, device)
        cond_dim = modules[name].hparams.get("cond_dim")
        if cond_dim is not None and cond_dim != text_dim:
            raise CheckpointError(f"{path / 'config.json'}: parts.{name} is conditioned on {cond_dim}-d text "
                                  f"but the text encoder {config['text_encoder']['name']!r} gives {text_dim}-d")
    mean, std = (load_stats(path, name, config["feature_dim"]) for name in ("mean", "std"))
    config["warnings"] = warnings
    models = MoMaskModels(**modules, mean=mean, std=std, config=config)
    config["precision"] = models.set_precision(precision)
    return models
