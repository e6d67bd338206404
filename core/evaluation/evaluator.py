"""The text-motion evaluator (Guo et al. 2022; docs/momask.md, "Evaluation") rebuilt for our data, and its folder on
disk.

The published evaluator reads GloVe word vectors; ours reads the same frozen sentence vector the generator is
conditioned on (MiniLM, 384-d) through an MLP. The motion side is Guo's: a movement encoder (two strided
convolutions, 4x down in time, on the features without the 4 foot contacts) and a bidirectional GRU. Both
map into one space where Euclidean distance ranks text-motion pairs (the metrics use Euclidean distance), so
training uses Guo's contrastive margin loss on distances, against every other pair of the batch. Captions
here are written from (content, style) labels, so pairs that share a label are not negatives.

Folder layout (`MODEL_DIR/evaluator/` by default):
    config.json             format, version, text encoder (name, dim), dataset, hparams, notes
    evaluator.safetensors   the weights
    mean.npy, std.npy       the feature normalisation the evaluator was trained with (its own, so one
                            evaluator scores models trained with any statistics)
"""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_model
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from ..checkpoint import CheckpointError, load_stats, load_weights
from ..features import CONTACTS, FEATURE_DIM

FORMAT_NAME = "momask-blender-evaluator"
FORMAT_VERSION = 1
WEIGHTS = "evaluator.safetensors"
DOWNSAMPLING = 4  # frames per movement step


class TextMotionEvaluator(nn.Module):
    """encode_text (B, text_dim) -> (B, embed_dim); encode_motion (B, T, 263) normalised -> (B, embed_dim).
    Defaults are small enough to train in minutes on a laptop CPU; embed_dim is kept well below the test
    split's size so FID's covariance estimate is not rank-deficient."""

    def __init__(self, text_dim: int = 384, movement_dim: int = 128, hidden: int = 128, text_hidden: int = 256,
                 embed_dim: int = 64, dropout: float = 0.2, margin: float = 10.0):
        super().__init__()
        self.hparams = dict(text_dim=text_dim, movement_dim=movement_dim, hidden=hidden, text_hidden=text_hidden,
                            embed_dim=embed_dim, dropout=dropout, margin=margin)
        self.margin = margin
        self.conv1 = nn.Conv1d(CONTACTS.start, movement_dim, 4, 2, 1)
        self.conv2 = nn.Conv1d(movement_dim, movement_dim, 4, 2, 1)
        self.dropout = nn.Dropout(dropout)
        self.motion_in = nn.Linear(movement_dim, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.gru_h0 = nn.Parameter(torch.randn(2, 1, hidden) * 0.1)
        self.motion_out = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(0.2),
                                        nn.Linear(hidden, embed_dim))
        self.text_net = nn.Sequential(
            nn.Linear(text_dim, text_hidden), nn.LayerNorm(text_hidden), nn.LeakyReLU(0.2),
            nn.Linear(text_hidden, text_hidden), nn.LayerNorm(text_hidden), nn.LeakyReLU(0.2),
            nn.Linear(text_hidden, embed_dim))

    def encode_text(self, text_emb: torch.Tensor) -> torch.Tensor:
        return self.text_net(text_emb)

    def encode_motion(self, motion: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Frames past a row's length are ignored (zeroed before each convolution, left out of the GRU), so a
        motion's embedding does not depend on the batch it is padded in."""
        if motion.ndim != 3 or motion.shape[-1] != FEATURE_DIM:
            raise ValueError(f"evaluator: expected motion of shape (B, T, {FEATURE_DIM}), got {tuple(motion.shape)}")
        lengths = torch.as_tensor(lengths, device=motion.device)
        if (lengths < DOWNSAMPLING).any() or (lengths > motion.shape[1]).any():
            raise ValueError(f"evaluator: motion lengths must be in {DOWNSAMPLING}..{motion.shape[1]} frames, "
                             f"got {lengths.tolist()}")

        def valid(n: int, per: int):  # (B, 1, n) 1 where a step covers real frames
            return (torch.arange(n, device=motion.device) < (lengths // per)[:, None])[:, None].to(motion.dtype)

        h = motion[..., :CONTACTS.start].transpose(1, 2) * valid(motion.shape[1], 1)
        h = F.leaky_relu(self.dropout(self.conv1(h)), 0.2)
        h = F.leaky_relu(self.dropout(self.conv2(h * valid(h.shape[-1], 2))), 0.2)
        h = self.motion_in(h.transpose(1, 2))
        packed = pack_padded_sequence(h, (lengths // DOWNSAMPLING).cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed, self.gru_h0.expand(-1, len(h), -1).contiguous())
        return self.motion_out(torch.cat([last[0], last[1]], dim=-1))

    def loss(self, text_emb: torch.Tensor, motion: torch.Tensor, lengths: torch.Tensor,
             groups: torch.Tensor | None = None) -> dict:
        """Guo's contrastive loss over all pairs of the batch: squared distance of matching pairs plus
        relu(margin - distance)^2 of non-matching ones, each averaged. `groups` (B,) ids of the samples'
        (content, style) labels: pairs of one group are neither pulled nor pushed. Also returns the mean
        positive and negative distances and `accuracy`, how often a text's nearest motion among its own and
        its negatives is its own."""
        text_z, motion_z = self.encode_text(text_emb), self.encode_motion(motion, lengths)
        dist = torch.cdist(text_z, motion_z)
        eye = torch.eye(len(dist), dtype=torch.bool, device=dist.device)
        negative = ~eye if groups is None else groups[:, None] != groups[None, :]
        positive_sq = (text_z - motion_z).pow(2).sum(dim=-1)
        hinge = F.relu(self.margin - dist[negative]).pow(2)
        loss = positive_sq.mean() + (hinge.mean() if hinge.numel() else dist.new_zeros(()))
        with torch.no_grad():
            candidates = dist.masked_fill(~(negative | eye), float("inf"))
            accuracy = (candidates.argmin(dim=1) == torch.arange(len(dist), device=dist.device)).float().mean()
        return dict(loss=loss, positive=dist.diagonal().mean().detach(),
                    negative=dist[negative].mean().detach() if negative.any() else dist.new_zeros(()),
                    accuracy=accuracy)


def build_evaluator(hparams: dict) -> TextMotionEvaluator:
    """A freshly initialised evaluator with these sizes (the hparams its config.json stores)."""
    try:
        return TextMotionEvaluator(**hparams)
    except TypeError as err:
        raise ValueError(f"bad hyper-parameters for the evaluator: {err}") from None


@dataclass
class Evaluator:
    """A loaded evaluator: network (eval mode), its normalisation, its config; embeds raw features."""
    net: TextMotionEvaluator
    mean: np.ndarray
    std: np.ndarray
    config: dict = field(default_factory=dict)

    @property
    def text_encoder(self) -> str:
        return self.config["text_encoder"]["name"]

    @torch.no_grad()
    def embed_texts(self, text_vectors: torch.Tensor) -> np.ndarray:
        """(N, text_dim) sentence vectors -> (N, D) float64 embeddings."""
        device = next(self.net.parameters()).device
        return self.net.encode_text(text_vectors.to(device, torch.float32)).double().cpu().numpy()

    @torch.no_grad()
    def embed_motions(self, motions: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """(T_i, 263) de-normalised features -> (N, D) float64 embeddings; batched by similar length."""
        device = next(self.net.parameters()).device
        out = np.empty((len(motions), self.net.hparams["embed_dim"]))
        order = np.argsort([len(m) for m in motions], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            lengths = torch.tensor([len(motions[i]) for i in rows])
            batch = np.zeros((len(rows), int(lengths.max()), FEATURE_DIM), dtype=np.float32)
            for k, i in enumerate(rows):
                batch[k, :len(motions[i])] = (motions[i] - self.mean) / self.std
            out[rows] = self.net.encode_motion(torch.from_numpy(batch).to(device), lengths).double().cpu().numpy()
        return out


def save_evaluator(net: TextMotionEvaluator, path: str | os.PathLike, mean: np.ndarray, std: np.ndarray,
                   text_encoder: str, dataset: str, notes: list[str] = ()) -> Path:
    """Write an evaluator folder; `mean`/`std` are the statistics its input was normalised with in training.
    config.json is written last, so an interrupted save never looks complete."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, stats in (("mean", mean), ("std", std)):
        if np.shape(stats) != (FEATURE_DIM,):
            raise CheckpointError(f"evaluator {name}: expected shape ({FEATURE_DIM},), got {np.shape(stats)}")
        np.save(path / f"{name}.npy", np.asarray(stats, dtype=np.float32))
    save_model(net, str(path / WEIGHTS))
    config = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "text_encoder": {"name": text_encoder, "dim": net.hparams["text_dim"]}, "dataset": dataset,
              "feature_dim": FEATURE_DIM, "hparams": net.hparams, "file": WEIGHTS, "notes": list(notes)}
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return path


def load_evaluator(path: str | os.PathLike, device: str | torch.device = "cpu") -> Evaluator:
    """Load an evaluator folder in eval mode; every problem is a CheckpointError naming the file."""
    path = Path(path).expanduser()
    file = path / "config.json"
    if not file.is_file():
        raise CheckpointError(f"{path}: no evaluator here (missing config.json); train one with "
                              f"`momask train evaluator` or give its folder with --evaluator")
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{file}: not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{file}: not a {FORMAT_NAME} config")
    if not isinstance(config.get("format_version"), int) or config["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{file}: format version {config.get('format_version')!r} is not supported "
                              f"(this version reads up to {FORMAT_VERSION})")
    try:
        net = build_evaluator(config["hparams"])
        encoder = config["text_encoder"]
        if encoder["dim"] != net.hparams["text_dim"]:
            raise ValueError(f"text encoder {encoder['name']!r} gives {encoder['dim']}-d vectors but the "
                             f"evaluator reads {net.hparams['text_dim']}-d ones")
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{file}: cannot build the evaluator ({err})") from None
    load_weights(net, path / config.get("file", WEIGHTS), "evaluator")
    mean, std = (load_stats(path, name, FEATURE_DIM) for name in ("mean", "std"))
    return Evaluator(net.to(device).eval(), mean, std, config)
