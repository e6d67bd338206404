"""A finished training run's network on disk, and the model directory assembled from those of the parts.

A run directory of kind rvq/mask/residual/length ends with
    part.json           kind, constructor hparams, steps trained, the stage config, provenance
    model.safetensors   the weights (names as in the released checkpoints)
    mean.npy, std.npy   rvq only: the normalisation all networks of the model train on (docs/momask.md, "Normalisation")
The transformers record the digest of the RVQ weights they were trained on, so assembling them with
another RVQ (whose code ids mean something else) is refused. An evaluator run directory is an evaluator
folder (core.evaluation.evaluator) instead.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
from safetensors.torch import save_model
from torch import nn

from ..checkpoint import CheckpointError, load_weights, model_config, save_model_dir
from ..models import MoMaskModels, build_model

PART_INFO, PART_WEIGHTS = "part.json", "model.safetensors"


class PartError(ValueError):
    """A run directory that does not hold the trained part asked for; the message says what is wrong."""


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_part(out: Path, kind: str, net: nn.Module, info: dict, arrays: dict | None = None) -> None:
    """Write the final weights of a run; part.json last, so a part without it is incomplete."""
    for name, array in (arrays or {}).items():
        np.save(out / f"{name}.npy", np.asarray(array, dtype=np.float32))
    save_model(net, str(out / PART_WEIGHTS))
    record = {"kind": kind, "hparams": net.hparams, "sha256": file_digest(out / PART_WEIGHTS), **info}
    tmp = out / f"{PART_INFO}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, out / PART_INFO)


def load_part(run_dir, kind: str) -> tuple[nn.Module, dict]:
    """(network in eval mode, part.json) of a finished run of `kind`."""
    run_dir = Path(run_dir)
    info_file = run_dir / PART_INFO
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such training run directory (the trained {kind} part)")
    if not info_file.is_file():
        hint = " (its training has not finished; run the same `momask train` command to resume it)" \
            if (run_dir / "checkpoint.pt").is_file() else ""
        raise PartError(f"{run_dir}: no finished {kind} training here (missing {PART_INFO}){hint}")
    info = json.loads(info_file.read_text())
    if info.get("kind") != kind:
        raise PartError(f"{info_file}: holds a trained {info.get('kind')!r} part, not a {kind} part")
    net = build_model(kind, info["hparams"])
    try:
        load_weights(net, run_dir / PART_WEIGHTS, kind)
    except CheckpointError as err:
        raise PartError(str(err)) from None
    return net.eval(), info


def load_statistics(rvq_dir) -> tuple[np.ndarray, np.ndarray]:
    """The feature mean and std an RVQ run trained on."""
    rvq_dir = Path(rvq_dir)
    try:
        return np.load(rvq_dir / "mean.npy"), np.load(rvq_dir / "std.npy")
    except FileNotFoundError as err:
        raise PartError(f"{rvq_dir}: missing {Path(err.filename).name} of the trained RVQ") from None


def _save_known_actions(model_dir: Path, dataset_dir, encoder_name: str) -> None:
    """The actions the masked transformer learned (core.known_actions), from its dataset's train split."""
    from ..dataset import load_dataset
    from ..known_actions import build_known_actions
    from ..text_encoders import get_text_encoder
    encoder = get_text_encoder(encoder_name, cache_size=0)
    build_known_actions(load_dataset(dataset_dir, "train"),
                        lambda texts: encoder.encode(texts).float().cpu().numpy()).save(model_dir)


def assemble_model_dir(out, rvq, mask, residual=None, length=None, evaluator=None) -> Path:
    """Our model directory (core.checkpoint) from finished training runs; the evaluator, if given, is copied
    into `out/evaluator`. Checks that the transformers were trained on this RVQ and that every part reads
    the same text encoder."""
    from ..evaluation.evaluator import load_evaluator, save_evaluator
    rvq_net, rvq_info = load_part(rvq, "rvq")
    started = f" fine-tuned from {Path(rvq_info['init']).name}" if rvq_info.get("init") else ""
    parts, encoders, steps, mask_info = {}, set(), [f"rvq {rvq_info['steps']}{started}"], {}
    for kind, run_dir in (("mask", mask), ("residual", residual), ("length", length)):
        if run_dir is None:
            parts[kind] = None
            continue
        parts[kind], info = load_part(run_dir, kind)
        mask_info = info if kind == "mask" else mask_info
        steps.append(f"{kind} {info['steps']}")
        if kind != "length" and info.get("rvq_sha256") != rvq_info["sha256"]:
            raise PartError(f"{run_dir}: this {kind} transformer was trained on another RVQ than {rvq} "
                            f"(its tokens would mean different codes)")
        encoders.add((info["text_encoder"]["name"], info["text_encoder"]["dim"]))
    if len(encoders) != 1:
        raise PartError(f"the parts were trained with different text encoders: {sorted(encoders)}")
    (encoder, dim), = encoders
    mean, std = load_statistics(rvq)
    dataset = Path(rvq_info["dataset"]).name
    notes = [f"trained with `momask train` on {dataset}; steps: {', '.join(steps)}"]
    config = model_config(encoder, dim, dataset, notes)
    out = save_model_dir(MoMaskModels(rvq=rvq_net, **parts, mean=mean, std=std, config=config), out)
    if mask_info.get("dataset") and Path(mask_info["dataset"]).is_dir():
        _save_known_actions(out, mask_info["dataset"], encoder)
    if evaluator is not None:
        found = load_evaluator(evaluator)
        save_evaluator(found.net, out / "evaluator", found.mean, found.std, found.text_encoder,
                       found.config.get("dataset", ""), found.config.get("notes", []))
    return out
