"""One training step per network kind (docs/momask.md): what a batch holds and which loss it feeds.

A Task is the module the loop optimises (and DistributedDataParallel wraps): `batch()` draws a step's
samples, `forward(*batch)` returns the step's metrics with the loss under "loss", `save_final()` writes the
trained network. The losses themselves (masking, corruption, quantisation dropout, layer choice) live in
the networks' training forwards."""
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..dataset import MEAN_RAW, STD_RAW, load_dataset
from ..models import build_model
from .config import ConfigError, TrainConfig
from .data import (FRAMES_PER_TOKEN, CaptionPool, ClipFeatures, ClipTokens, action_weights, crop_units,
                   usable_std)
from .ddp import Distributed
from .parts import load_part, load_statistics, save_part

TOKENS_CACHE = "tokens.npz"


class Task(nn.Module):
    """`net` the network trained, `num_items` what the sampler deals (clips, or eligible clips), `info` what
    part.json records about the inputs (dataset, text encoder, RVQ digest)."""
    kind: str
    autocast = True  # may run under CUDA mixed precision
    sync_buffers = False  # has buffers that training changes (DDP then keeps them equal to rank 0's)
    partial_graph = False  # some steps leave parameters unused (DDP must then look for them)

    weights = None  # draw probability per item for balanced sampling (None: epochs over all items)

    def __init__(self, net: nn.Module, num_items: int, info: dict):
        super().__init__()
        self.net, self.num_items, self.info = net, num_items, info

    def batch(self, items: np.ndarray, rng: np.random.Generator, device: torch.device) -> tuple:
        raise NotImplementedError

    def save_final(self, out: Path, info: dict) -> None:
        save_part(out, self.kind, self.net, self.info | info)


def _to(device, *arrays) -> tuple:
    return tuple((a if torch.is_tensor(a) else torch.from_numpy(a)).to(device) for a in arrays)


class RVQTask(Task):
    """Random `window`-frame crops of the clips at least that long (momask-codes skips shorter ones too)."""
    kind = "rvq"
    autocast = False  # the EMA codebook update adds the latents into float32 statistics in place
    sync_buffers = True  # the codebooks and their EMA statistics

    def __init__(self, net, features: ClipFeatures, window: int, mean, std, info: dict):
        self.eligible = np.flatnonzero(features.lengths >= window)
        if len(self.eligible) == 0:
            raise ConfigError(f"rvq.window: no training clip is {window} frames long (the longest has "
                              f"{features.lengths.max()}); use a shorter window")
        super().__init__(net, len(self.eligible), info)
        self.features, self.window, self.mean, self.std = features, window, mean, std

    def batch(self, items, rng, device):
        clips = self.eligible[items]
        offsets = np.floor(rng.random(len(clips)) * (self.features.lengths[clips] - self.window + 1)).astype(np.int64)
        return _to(device, self.features.crops(clips, offsets, np.full(len(clips), self.window)))

    def forward(self, x):
        return self.net.loss(x)

    def save_final(self, out, info):
        save_part(out, self.kind, self.net, self.info | info, {"mean": self.mean, "std": self.std})


class TokenTask(Task):
    """Masked (kind "mask", base layer) or residual ("residual", all layers) transformer on random token
    crops of at most max_tokens, with one caption embedding per sample from the clip's pool (noised by
    `text_noise`)."""

    def __init__(self, kind: str, net, tokens: ClipTokens, captions: CaptionPool, max_tokens: int, info: dict,
                 text_noise: float = 0.0):
        super().__init__(net, len(tokens.counts), info)
        self.kind, self.tokens, self.captions, self.max_tokens = kind, tokens, captions, max_tokens
        self.text_noise = text_noise
        self.partial_graph = kind == "residual"  # the top layer's output projection only serves batches that draw it

    def batch(self, items, rng, device):
        ids, lengths = self.tokens.crops(items, self.max_tokens, rng)
        cond = self.captions.sample(items, rng, self.text_noise)
        return _to(device, ids if self.kind == "residual" else ids[..., 0], cond, lengths)

    def forward(self, ids, cond, lengths):
        loss, accuracy = self.net(ids, cond, lengths)
        return dict(loss=loss, accuracy=accuracy)


class LengthTask(Task):
    """Text embedding -> the clip's length in tokens (frames // 4, at most max_tokens)."""
    kind = "length"

    def __init__(self, net, lengths: np.ndarray, captions: CaptionPool, max_tokens: int, info: dict):
        super().__init__(net, len(lengths), info)
        self.targets = np.minimum(lengths // FRAMES_PER_TOKEN, max_tokens)
        self.captions = captions

    def batch(self, items, rng, device):
        return _to(device, self.captions.sample(items, rng), self.targets[items])

    def forward(self, cond, targets):
        return dict(loss=self.net.loss(cond, targets))


class EvaluatorTask(Task):
    """Contrastive text-motion matching on crops cut like the transformers' (docs/momask.md, "Training crops") at any
    frame, with the clips' (content, style) groups so that pairs sharing a label are not negatives."""
    kind = "evaluator"
    autocast = False  # a small network: float32 costs little, and cuDNN's GRU is exact in it

    def __init__(self, net, features: ClipFeatures, captions: CaptionPool, max_tokens: int, mean, std,
                 dataset_name: str, info: dict):
        super().__init__(net, len(features.lengths), info)
        self.features, self.captions, self.max_tokens = features, captions, max_tokens
        self.mean, self.std, self.dataset_name = mean, std, dataset_name

    def batch(self, items, rng, device):
        lengths = crop_units(self.features.lengths[items] // FRAMES_PER_TOKEN, self.max_tokens, rng)[0]
        lengths = lengths * FRAMES_PER_TOKEN
        offsets = np.floor(rng.random(len(items)) * (self.features.lengths[items] - lengths + 1)).astype(np.int64)
        motion = self.features.crops(items, offsets, lengths)
        return _to(device, self.captions.sample(items, rng), motion, lengths, self.features.groups[items])

    def forward(self, cond, motion, lengths, groups):
        return self.net.loss(cond, motion, lengths, groups)

    def save_final(self, out, info):
        from ..evaluation.evaluator import save_evaluator
        notes = [f"trained with `momask train evaluator` for {info['steps']} steps"]
        save_evaluator(self.net, out, self.mean, self.std, self.info["text_encoder"]["name"], self.dataset_name,
                       notes)


def _derived(hparams: dict, where: str, **values) -> dict:
    """`hparams` with the values that other parts decide; the config may state them only if it agrees."""
    for key, value in values.items():
        if key in hparams and hparams[key] != value:
            raise ConfigError(f"{where}.model.{key} is {hparams[key]} but must be {value} here (it is set from "
                              f"the text encoder or the RVQ); remove it from the config")
    return {**hparams, **values}


def _fresh(kind: str, hparams: dict, seed: int) -> nn.Module:
    """A new network, initialised identically on every process."""
    torch.manual_seed(seed)
    if kind == "evaluator":
        from ..evaluation.evaluator import build_evaluator
        return build_evaluator(hparams)
    return build_model(kind, hparams)


def _init_rvq(net: nn.Module, model_dir) -> None:
    """Give `net` the weights of a model directory's RVQ (fine-tuning it on this dataset, normalised with this
    dataset's statistics: another dataset's can put new motions hundreds of std out, e.g. spins in the root's
    rotation speed); refused when the config's sizes differ."""
    from ..checkpoint import load_model_dir
    rvq = load_model_dir(model_dir, "cpu", "float32").rvq
    if rvq.hparams != net.hparams:
        raise ConfigError(f"--init {model_dir}: its RVQ has sizes {rvq.hparams}, the config asks for {net.hparams}")
    net.load_state_dict(rvq.state_dict())
    net.train()


def _tokens(rvq: nn.Module, rvq_info: dict, mean, std, dataset, offsets: int, out: Path, dist: Distributed,
            progress: bool) -> ClipTokens:
    """The clips' tokens from the run's cache, encoded (by the main process) when missing or stale."""
    digest = hashlib.sha256(f"{rvq_info['sha256']} {offsets} ".encode()
                            + (dataset.root / "manifest.json").read_bytes() + " ".join(dataset.names).encode())
    digest = digest.hexdigest()
    if dist.is_main and ClipTokens.load(out / TOKENS_CACHE, digest) is None:
        ClipTokens.encode(rvq, ClipFeatures(dataset, mean, std), offsets, progress).save(out / TOKENS_CACHE, digest)
    dist.barrier()
    return ClipTokens.load(out / TOKENS_CACHE, digest)


def build_task(kind: str, config: TrainConfig, data, out: Path, rvq_dir=None, dist: Distributed = Distributed(),
               progress: bool = True, device: torch.device = torch.device("cpu"), init=None) -> Task:
    """The task of `kind` on the train split of the dataset at `data`, its network freshly initialised
    (on the CPU; `device` is where the text encoder and the RVQ embed captions and tokenise clips once), with
    its balanced-sampling weights when the config asks for them."""
    config.stage(kind)  # raises for a config without this kind's section
    dataset = load_dataset(data, "train")
    if len(dataset) == 0:
        raise ValueError(f"{data}: the train split has no clips")
    info = {"dataset": str(Path(data).resolve())}
    weights = None if config.action_balance is None else action_weights(
        [dataset.action(i) for i in range(len(dataset))], dataset.lengths, config.action_balance)
    task = _build_task(kind, config, dataset, out, info, rvq_dir, dist, progress, device, init)
    if weights is not None:
        items = getattr(task, "eligible", np.arange(len(dataset)))
        task.weights = weights[items] / weights[items].sum()
    return task


def _build_task(kind, config, dataset, out, info, rvq_dir, dist, progress, device, init) -> Task:
    """build_task's network and inputs for one kind."""
    stage, max_tokens = config.stage(kind), config.max_frames // FRAMES_PER_TOKEN
    if kind == "rvq":
        net = _fresh(kind, stage.model, config.seed)
        if init is not None:
            _init_rvq(net, init)
            info["init"] = str(Path(init).resolve())
        std = usable_std(dataset.std)
        return RVQTask(net, ClipFeatures(dataset, dataset.mean, std), stage.window, dataset.mean, std, info)

    captions = CaptionPool.cached(dataset, config.text_encoder, config.captions_per_clip, config.seed, dist, progress,
                                  device)
    info["text_encoder"] = {"name": config.text_encoder, "dim": captions.dim}
    if kind == "length":
        net = _fresh(kind, _derived(stage.model, kind, cond_dim=captions.dim), config.seed)
        if net.hparams["num_lengths"] <= max_tokens:
            raise ConfigError(f"length.model.num_lengths must exceed {max_tokens} (max_frames / 4)")
        return LengthTask(net, dataset.lengths, captions, max_tokens, info)
    if kind == "evaluator":
        mean, std = np.load(dataset.root / MEAN_RAW), usable_std(np.load(dataset.root / STD_RAW))
        features = ClipFeatures(dataset, mean, std)
        net = _fresh(kind, _derived(stage.model, kind, text_dim=captions.dim), config.seed)
        return EvaluatorTask(net, features, captions, max_tokens, mean, std, dataset.root.name, info)

    rvq_dir = rvq_dir or stage.rvq
    if rvq_dir is None:
        raise ConfigError(f"training the {kind} transformer needs the trained RVQ: give --rvq DIR or set "
                          f"'{kind}.rvq' in the config")
    rvq, rvq_info = load_part(rvq_dir, "rvq")
    rvq.to(device)
    mean, std = load_statistics(rvq_dir)
    tokens = _tokens(rvq, rvq_info, mean, std, dataset, stage.token_offsets, out, dist, progress)
    derived = dict(cond_dim=captions.dim, code_dim=rvq.hparams["code_dim"], num_tokens=rvq.hparams["nb_code"])
    if kind == "residual":
        derived["num_quantizers"] = rvq.hparams["num_quantizers"]
    net = _fresh(kind, _derived(stage.model, kind, **derived), config.seed)
    info["rvq_sha256"] = rvq_info["sha256"]
    return TokenTask(kind, net, tokens, captions, max_tokens, info, config.text_noise)

