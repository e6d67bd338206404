"""What the training steps draw from: clip features in memory, RVQ tokens of every clip, a fixed pool of
caption embeddings per clip, and the sampler that deals clips to steps and processes.

All randomness of a step comes from generators seeded by (seed, step, rank), so a run resumed at step s
draws exactly what an uninterrupted run draws there: the step number is the whole sampler state. Every
process computes the same epoch permutations and takes its own slice of each global batch
(DistributedSampler's sharding without its state)."""
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..dataset import ClipDataset
from .ddp import Distributed

FRAMES_PER_TOKEN = 4
SHORTEN_PROB = 1 / 3  # docs/momask.md "Training crops": one unit of 4 frames shorter with this probability
ENCODE_FRAMES = 16384  # frames per RVQ encoding call: bounds memory, keeps the convolutions large


EPOCH, STEP, CAPTIONS, TORCH = range(4)  # what a generator is for: the first tag of rng_for


def rng_for(seed: int, *tags: int) -> np.random.Generator:
    """An independent generator for each (seed, tags), e.g. (seed, STEP, step, rank)."""
    return np.random.default_rng([seed, *tags])


def step_seed(seed: int, step: int, rank: int) -> int:
    """torch's seed for one step of one process (dropout, masking, code sampling)."""
    return int(rng_for(seed, TORCH, step, rank).integers(2**63))


def batch_items(num_items: int, batch_size: int, step: int, rank: int, world_size: int, seed: int,
                weights: np.ndarray | None = None) -> np.ndarray:
    """This process's `batch_size` item indices at `step`. Without weights, global batches run through a fresh
    permutation of all items each epoch and each process takes its slice of the global batch; with weights
    (summing to 1), every draw is independent, item i with probability weights[i]."""
    if weights is not None:
        return rng_for(seed, EPOCH, step, rank).choice(num_items, size=batch_size, p=weights)
    start = (step * world_size + rank) * batch_size
    positions = np.arange(start, start + batch_size)
    epochs = positions // num_items
    items = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        here = epochs == epoch
        items[here] = rng_for(seed, EPOCH, int(epoch)).permutation(num_items)[positions[here] % num_items]
    return items


def action_weights(actions: list[str], frames: np.ndarray, balance: float) -> np.ndarray:
    """Draw probability per clip for balanced sampling: an action's share is proportional to its total
    frames ** balance, and within the action a clip's to its frames (so a long take is drawn as often as the
    windows it holds, and crops then come from every part of it)."""
    frames = np.asarray(frames, dtype=np.float64)
    names, group = np.unique(np.asarray(actions), return_inverse=True)
    group_frames = np.bincount(group, weights=frames, minlength=len(names))
    share = group_frames ** balance
    share /= share.sum()
    return share[group] * frames / group_frames[group]


def crop_units(units: np.ndarray, max_units: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Crop lengths and starts, in 4-frame units, for sequences of `units` units (docs/momask.md, "Training crops"): the
    whole sequence up to `max_units`, one unit shorter with probability 1/3, at a uniformly random start."""
    length = np.minimum(units, max_units)
    length = length - ((rng.random(len(units)) < SHORTEN_PROB) & (length > 1))
    start = np.floor(rng.random(len(units)) * (units - length + 1)).astype(np.int64)
    return length, start


def _padded_gather(rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(B, max length, ...) rows[starts[b] : starts[b] + lengths[b]] per b, zero-padded."""
    steps = np.arange(int(lengths.max()))
    valid = steps < lengths[:, None]
    out = rows[np.where(valid, starts[:, None] + steps, 0)]
    out[~valid] = 0
    return out


def usable_std(std: np.ndarray) -> np.ndarray:
    """The std with 1 where it is 0: a feature that never varies normalises to 0 whatever it is divided by,
    and a model directory needs positive values."""
    return np.where(std > 0, std, 1.0).astype(np.float32)


class ClipFeatures:
    """The normalised features of every clip of a split in one (rows, 263) float32 array, plus each clip's
    (content, style) group: what the RVQ and the evaluator crop their windows from."""

    def __init__(self, dataset: ClipDataset, mean: np.ndarray, std: np.ndarray):
        clips = [dataset[i] for i in range(len(dataset))]
        self.lengths = np.array([c.length for c in clips], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.rows = ((np.concatenate([c.features for c in clips]) - mean) / std).astype(np.float32)
        self.groups = np.unique([f"{c.content}/{c.style}" for c in clips], return_inverse=True)[1].reshape(-1)

    def crops(self, clips: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(B, max length, 263) frames [offset, offset + length) of each clip, zero-padded."""
        return _padded_gather(self.rows, self.starts[clips] + offsets, lengths)


class ClipTokens:
    """RVQ token ids (all layers) of every clip, encoded once at frame offsets 0..k-1: crops in token space
    then start at any frame, as the frame-space crops of momask-codes do. Every offset of a clip gets the
    same number of tokens, (length - k + 1) // 4."""

    def __init__(self, ids: np.ndarray, counts: np.ndarray, offsets: int):
        self.ids, self.counts, self.offsets = ids, counts, offsets  # ids (sum of offsets * counts, Q)
        self.starts = np.concatenate([[0], np.cumsum(counts * offsets)[:-1]])

    @classmethod
    @torch.no_grad()
    def encode(cls, rvq, features: ClipFeatures, offsets: int, progress: bool = True) -> "ClipTokens":
        """Tokenise every clip with `rvq` (eval mode: nearest codes, no codebook updates); clips of equal
        token count go through the encoder together."""
        rvq.eval()
        device = next(rvq.parameters()).device
        counts = (features.lengths - offsets + 1) // FRAMES_PER_TOKEN
        if (counts < 1).any():
            raise ValueError(f"clips {np.flatnonzero(counts < 1).tolist()} are too short to tokenise at "
                             f"{offsets} frame offsets")
        tokens: list = [None] * len(counts)
        bar = tqdm(total=len(counts), desc="tokenising clips", unit="clip", disable=not progress, leave=False)
        for count in np.unique(counts):
            clips = np.flatnonzero(counts == count)
            per_call = max(1, ENCODE_FRAMES // (offsets * count * FRAMES_PER_TOKEN))
            for chunk in np.array_split(clips, -(-len(clips) // per_call)):
                starts = (features.starts[chunk][:, None] + np.arange(offsets)).reshape(-1)
                x = _padded_gather(features.rows, starts, np.full(len(starts), count * FRAMES_PER_TOKEN))
                ids = rvq.encode(torch.from_numpy(x).to(device)).cpu().numpy()
                for k, clip in enumerate(chunk):
                    tokens[clip] = ids[k * offsets:(k + 1) * offsets].reshape(-1, ids.shape[-1])
                bar.update(len(chunk))
        bar.close()
        return cls(np.concatenate(tokens).astype(np.int32), counts.astype(np.int64), offsets)

    def save(self, path: Path, rvq_digest: str) -> None:
        _save_npz(path, ids=self.ids, counts=self.counts, offsets=self.offsets, rvq=rvq_digest)

    @classmethod
    def load(cls, path: Path, rvq_digest: str) -> "ClipTokens | None":
        """The saved tokens if they were encoded by this RVQ, else None."""
        if not path.is_file():
            return None
        with np.load(path) as f:
            if str(f["rvq"]) != rvq_digest:
                return None
            return cls(f["ids"], f["counts"], int(f["offsets"]))

    def crops(self, clips: np.ndarray, max_tokens: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random training crops: ((B, longest, Q) int64 ids, zero-padded; (B,) token lengths)."""
        length, start = crop_units(self.counts[clips], max_tokens, rng)
        offset = rng.integers(self.offsets, size=len(clips))
        first = self.starts[clips] + offset * self.counts[clips] + start
        return _padded_gather(self.ids, first, length).astype(np.int64), length


class CaptionPool:
    """`per_clip` generated captions per clip, embedded once by the text encoder; a step samples one per
    clip from its pool, so training never runs the encoder."""

    def __init__(self, embeddings: np.ndarray, index: np.ndarray):
        self.embeddings = torch.from_numpy(embeddings)  # (unique captions, dim) float32
        self.index = index  # (clips, per_clip) rows of embeddings

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def sample(self, clips: np.ndarray, rng: np.random.Generator, noise: float = 0.0) -> torch.Tensor:
        """(B, dim): one random caption of each clip's pool, plus Gaussian noise of expected norm `noise`
        (the embeddings have unit norm), so that prompts worded unlike any caption land among trained ones."""
        choice = rng.integers(self.index.shape[1], size=len(clips))
        cond = self.embeddings[torch.from_numpy(self.index[clips, choice])]
        if noise:
            cond = cond + torch.from_numpy(rng.standard_normal(cond.shape, dtype=np.float32)) * (noise / cond.shape[1] ** 0.5)
        return cond

    @staticmethod
    def cache_path(dataset: ClipDataset, encoder: str, per_clip: int, seed: int) -> Path:
        """Next to the dataset, named by what decides its content: the dataset's manifest (archive and
        conversion code), the clips, the encoder, the pool size and the seed."""
        digest = hashlib.sha256((dataset.root / "manifest.json").read_bytes())
        digest.update(" ".join(dataset.names).encode())
        return dataset.root / "caption_pools" / f"{encoder}-{per_clip}x-seed{seed}-{digest.hexdigest()[:12]}.npz"

    @classmethod
    def build(cls, dataset: ClipDataset, encoder_name: str, per_clip: int, seed: int, progress: bool = True,
              device: torch.device = torch.device("cpu"), batch: int = 256) -> tuple["CaptionPool", np.ndarray]:
        """Generate the captions (fixed seed per clip) and embed each distinct one; also returns the captions."""
        from ..text_encoders import get_text_encoder
        captions = [[dataset.fresh_caption(i, rng) for _ in range(per_clip)]
                    for i, rng in ((i, rng_for(seed, CAPTIONS, i)) for i in range(len(dataset)))]
        unique, index = np.unique(np.array(captions), return_inverse=True)
        encoder = get_text_encoder(encoder_name, device=str(device), cache_size=0)
        chunks = [encoder.encode(unique[i:i + batch].tolist()).cpu().numpy()
                  for i in tqdm(range(0, len(unique), batch), desc=f"embedding captions ({encoder_name})",
                                unit="batch", disable=not progress, leave=False)]
        pool = cls(np.concatenate(chunks).astype(np.float32), index.reshape(len(dataset), per_clip).astype(np.int64))
        return pool, unique

    @classmethod
    def cached(cls, dataset: ClipDataset, encoder: str, per_clip: int, seed: int, dist: Distributed,
               progress: bool = True, device: torch.device = torch.device("cpu")) -> "CaptionPool":
        """The pool from its cache file; the main process builds and writes it first if it is missing."""
        path = cls.cache_path(dataset, encoder, per_clip, seed)
        if dist.is_main and not path.is_file():
            pool, captions = cls.build(dataset, encoder, per_clip, seed, progress, device)
            _save_npz(path, embeddings=pool.embeddings.numpy(), index=pool.index, captions=captions)
        dist.barrier()
        with np.load(path) as f:
            return cls(f["embeddings"], f["index"])


def _save_npz(path: Path, **arrays) -> None:
    """Write through a temporary file, so a reader never sees half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
