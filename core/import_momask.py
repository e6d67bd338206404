"""Convert a released momask-codes checkpoint folder (`checkpoints/t2m`, docs/momask.md "Released checkpoints") into our
model directory: read each part's opt.txt for its sizes, load its .tar with `weights_only=True` (never unpickle anything
but tensors and plain containers), load the weights strictly into our networks, re-save.
"""
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .checkpoint import (MISSING_PART_WARNINGS, CheckpointError, load_torch_pickle, model_config,
                             save_model_dir, summarise_load_error)
from .features import FEATURE_DIM
from .models import MoMaskModels, build_model
from .text_encoders import DEFAULT_CLIP_PATH, ClipTextEncoder

CLIP_DIM = 512  # the released models are conditioned on CLIP ViT-B/32 text vectors


class ReleasePart(NamedTuple):
    """Where one part lives in the release: folder name pattern, weight files (preferred first, as
    gen_t2m.py loads them) and the top-level .tar key of its state_dict (newer name first)."""
    pattern: str
    files: tuple[str, ...]
    keys: tuple[str, ...]


RELEASE_PARTS = {
    "rvq": ReleasePart("rvq_*", ("net_best_fid.tar", "latest.tar"), ("vq_model", "net")),
    "mask": ReleasePart("t2m_nlayer*", ("latest.tar", "net_best_fid.tar"), ("t2m_transformer", "trans")),
    "residual": ReleasePart("tres_*", ("net_best_fid.tar", "latest.tar"), ("res_transformer",)),
    "length": ReleasePart("length_estimator", ("finest.tar", "latest.tar"), ("estimator",)),
}


def read_opt(path: Path) -> dict:
    """momask-codes' opt.txt: `key: value` lines between banner lines; True/False, ints, floats, else strings."""
    opt = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("---"):
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            raise CheckpointError(f"{path}: line {line!r} is not 'key: value'")
        opt[key.strip()] = _opt_value(value.strip())
    return opt


def _opt_value(text: str):
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _opt_values(opt: dict, file: Path, names: dict[str, str]) -> dict:
    """Our hparams from opt.txt keys: `names` maps hparam -> opt key."""
    missing = [key for key in names.values() if key not in opt]
    if missing:
        raise CheckpointError(f"{file}: missing option(s) {', '.join(missing)}")
    return {hparam: opt[key] for hparam, key in names.items()}


def load_release_state(file: Path, keys: tuple[str, ...]) -> tuple[dict, dict]:
    """(state_dict without clip_model.* entries, the .tar's other scalar entries such as `ep`)."""
    ckpt = load_torch_pickle(file)
    key = next((k for k in keys if isinstance(ckpt, dict) and isinstance(ckpt.get(k), dict)), None)
    if key is None:
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{file}: no {' or '.join(map(repr, keys))} entry (found {found})")
    state = {k: v for k, v in ckpt[key].items() if not k.startswith("clip_model.")}
    return state, {k: v for k, v in ckpt.items() if isinstance(v, (int, float))}


def _find_folder(root: Path, pattern: str, preferred: str | None = None) -> Path | None:
    if preferred and (root / preferred).is_dir():
        return root / preferred
    matches = sorted(p for p in root.glob(pattern) if p.is_dir())
    if len(matches) > 1:
        raise CheckpointError(f"{root}: several folders match {pattern} ({', '.join(p.name for p in matches)}); "
                              "keep only the one to import")
    return matches[0] if matches else None


def _read_part_opt(folder: Path, name: str) -> dict:
    file = folder / "opt.txt"
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (it gives the {name} model's sizes)")
    return read_opt(file)


def _weights_file(folder: Path, part: ReleasePart) -> Path:
    for name in part.files:
        if (folder / "model" / name).is_file():
            return folder / "model" / name
    raise CheckpointError(f"{folder / 'model'}: no weights file ({' or '.join(part.files)})")


def _hparams(name: str, opts: dict, opt_file: Path, input_dim: int) -> dict:
    """Our constructor kwargs for one released part, from its opt.txt and the RVQ's (as gen_t2m.py builds them)."""
    if name == "length":  # no opt.txt: the released estimator is LengthEstimator(512, 200 // 4)
        return dict(cond_dim=CLIP_DIM, hidden=512, num_lengths=50)
    opt, vq = opts[name], opts["rvq"]
    if name == "rvq":
        if opt.get("output_emb_width", opt.get("code_dim")) != opt.get("code_dim"):
            raise CheckpointError(f"{opt_file}: output_emb_width must equal code_dim")
        if opt.get("vq_act", "relu") != "relu" or opt.get("vq_norm", "None") != "None":
            raise CheckpointError(f"{opt_file}: only vq_act relu without vq_norm is supported "
                                  f"(got {opt.get('vq_act')}, {opt.get('vq_norm')})")
        return dict(input_dim=input_dim, **_opt_values(opt, opt_file, {key: key for key in (
            "nb_code", "code_dim", "width", "down_t", "stride_t", "depth", "dilation_growth_rate",
            "num_quantizers", "quantize_dropout_prob", "mu")}))
    hparams = dict(num_tokens=vq["nb_code"], code_dim=vq["code_dim"], cond_dim=CLIP_DIM, **_opt_values(
        opt, opt_file, dict(latent_dim="latent_dim", ff_size="ff_size", num_layers="n_layers",
                            num_heads="n_heads", dropout="dropout", cond_drop_prob="cond_drop_prob")))
    if name == "residual":
        if opt.get("share_weight") is not True:
            raise CheckpointError(f"{opt_file}: share_weight is not True; only the released share_weight "
                                  "residual transformer layout is supported")
        hparams["num_quantizers"] = vq["num_quantizers"]
    return hparams


def _read_stats(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    stats = []
    for name in ("mean", "std"):
        file = folder / "meta" / f"{name}.npy"
        if not file.is_file():
            raise CheckpointError(f"{file}: missing (the RVQ folder's feature normalisation)")
        try:
            stats.append(np.load(file, allow_pickle=False))
        except ValueError as err:
            raise CheckpointError(f"{file}: not a readable .npy array ({err})") from None
        if stats[-1].shape != (FEATURE_DIM,):
            raise CheckpointError(f"{file}: shape {stats[-1].shape}; only HumanML3D models ({FEATURE_DIM}-d "
                                  "features, checkpoints/t2m) are supported, not KIT-ML")
    return stats[0], stats[1]


def import_momask(checkpoints_dir: str | os.PathLike, out_dir: str | os.PathLike) -> str:
    """Convert `checkpoints_dir` (the release's checkpoints/t2m) into a model directory at `out_dir`.
    The RVQ-VAE and masked transformer are required; a missing residual transformer or length estimator
    is reported and left out. Returns a report for the user."""
    root = Path(checkpoints_dir).expanduser()
    if not root.is_dir():
        raise CheckpointError(f"{root}: not a folder (expected the release's checkpoints/t2m)")
    folders = {"mask": _find_folder(root, RELEASE_PARTS["mask"].pattern)}
    if folders["mask"] is None:
        hint = f"; did you mean {root / 't2m'}?" if (root / "t2m").is_dir() else ""
        raise CheckpointError(f"{root}: no masked transformer folder ({RELEASE_PARTS['mask'].pattern}){hint}")
    opts = {"mask": _read_part_opt(folders["mask"], "mask")}
    folders["rvq"] = _find_folder(root, RELEASE_PARTS["rvq"].pattern, preferred=opts["mask"].get("vq_name"))
    if folders["rvq"] is None:
        raise CheckpointError(f"{root}: no RVQ-VAE folder ({RELEASE_PARTS['rvq'].pattern})")
    opts["rvq"] = _read_part_opt(folders["rvq"], "rvq")
    folders["residual"] = _find_folder(root, RELEASE_PARTS["residual"].pattern)
    if folders["residual"] is not None:
        opts["residual"] = _read_part_opt(folders["residual"], "residual")
        if opts["residual"].get("vq_name", folders["rvq"].name) != folders["rvq"].name:
            raise CheckpointError(f"{folders['residual'] / 'opt.txt'}: trained on the tokens of "
                                  f"{opts['residual']['vq_name']}, not of {folders['rvq'].name}")
    folders["length"] = _find_folder(root, RELEASE_PARTS["length"].pattern)
    mean, std = _read_stats(folders["rvq"])

    modules, lines, notes = {}, [f"Imported MoMask release {root} -> {out_dir}"], []
    for name, part in RELEASE_PARTS.items():
        folder = folders[name]
        if folder is None:
            modules[name] = None
            lines.append(f"  {name:9s} not found ({part.pattern}): {MISSING_PART_WARNINGS[name]}")
            continue
        hparams = _hparams(name, opts, folder / "opt.txt", mean.shape[0])
        file = _weights_file(folder, part)
        state, extras = load_release_state(file, part.keys)
        module = build_model(name, hparams)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"{file}: weights do not fit the {name} sizes {hparams}: "
                                  f"{summarise_load_error(err)}") from None
        modules[name] = module.eval()
        epoch = extras.get("ep", extras.get("epoch", "?"))
        source = f"{file.relative_to(root)} (epoch {epoch})"
        notes.append(f"{name}: momask-codes release {source}")
        lines.append(f"  {name:9s} {source}: {sum(p.numel() for p in module.parameters()):,} parameters")

    config = model_config(ClipTextEncoder.name, CLIP_DIM, "humanml3d", notes)
    save_model_dir(MoMaskModels(**modules, mean=mean, std=std, config=config), out_dir)
    lines.append(f"Text encoder: {ClipTextEncoder.name} (needs OpenAI's ViT-B-32.pt at {DEFAULT_CLIP_PATH})")
    return "\n".join(lines)
