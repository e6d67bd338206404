"""`momask evaluate`: the metrics table of docs/momask.md "Evaluation" for one model directory, on our test split.

Protocol (as the reference evaluation): ground-truth lengths, the evaluator's Euclidean embeddings,
R-precision in batches of 32 (an incomplete last batch dropped), FID against the real motions of the same
samples, diversity over 300 random pairs, MultiModality over 10 pairs of 30 generations for each of the first
100 captions (whose first generation also serves as their sample), 20 repetitions reported as mean +- 95%
interval. Each clip contributes one window (at most 196 frames, a multiple of 4 frames, random start) and one of
its captions, both drawn once with EVAL_SET_SEED, so every model is scored on the same pairs; repetitions
differ in the order (hence the batches), the generation sampling and the random pairs, all from `seed`.
Rows: real motion, the RVQ-VAE's reconstruction (plus its MPJPE) and the generated motion."""
import csv
import io
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model_dir, resolve_model_dir
from ..dataset import load_dataset
from .evaluator import load_evaluator
from .metrics import (DIVERSITY_PAIRS, MULTIMODALITY_PAIRS, R_PRECISION_BATCH, diversity, fid,
                      matching_distance, mean_and_interval, mpjpe, multimodality, r_precision)
from ..features import recover_from_ric
from ..models import MoMaskModels
from ..limits import MAX_FRAMES
from ..sampling import decode_features, generate
from ..text_encoders import get_text_encoder

EVAL_SET_SEED = 20240
EVALUATOR_SUBDIR = "evaluator"
FULL = dict(repeats=20, mm_samples=100, mm_repeats=30, limit=None)
QUICK = dict(repeats=2, mm_samples=4, mm_repeats=3, limit=64)  # a smoke test of the whole pipeline
ROWS = ("Real motion", "RVQ reconstruction", "Generated")
COLUMNS = {"top1": "Top-1", "top2": "Top-2", "top3": "Top-3", "fid": "FID", "mm_dist": "MM-Dist",
           "diversity": "Diversity", "multimodality": "MultiModality", "mpjpe_mm": "MPJPE (mm)"}


@dataclass
class EvalSet:
    """Ground-truth windows (de-normalised features) with one caption each."""
    names: list[str]
    captions: list[str]
    motions: list[np.ndarray]

    @property
    def lengths(self) -> list[int]:
        return [len(m) for m in self.motions]


def load_eval_set(data, split: str, frames_per_token: int = 4, limit: int | None = None) -> EvalSet:
    """One window and one caption per clip of the split (mirrors included), drawn with EVAL_SET_SEED;
    `limit` keeps a fixed random subset of that many clips."""
    dataset = load_dataset(data, split)
    rng = np.random.default_rng(EVAL_SET_SEED)
    names, captions, motions = [], [], []
    for i in range(len(dataset)):
        clip = dataset[i]
        length = min(clip.length, MAX_FRAMES) // frames_per_token * frames_per_token
        start = int(rng.integers(clip.length - length + 1))
        names.append(clip.name)
        captions.append(clip.captions[rng.integers(len(clip.captions))])
        motions.append(clip.features[start:start + length])
    keep = np.arange(len(names))
    if limit is not None and limit < len(keep):
        keep = np.sort(rng.choice(len(keep), limit, replace=False))
    return EvalSet([names[i] for i in keep], [captions[i] for i in keep], [motions[i] for i in keep])


@torch.inference_mode()
def reconstruct(models: MoMaskModels, motions: list[np.ndarray]) -> list[np.ndarray]:
    """RVQ-VAE encode -> decode of each (T, 263) motion (T a multiple of 4), de-normalised; motions of one
    length share a batch, so no padding enters the convolutions."""
    device = next(models.rvq.parameters()).device
    lengths, out = np.array([len(m) for m in motions]), [None] * len(motions)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        x = (np.stack([motions[i] for i in rows]) - models.mean) / models.std
        ids = models.rvq.encode(torch.from_numpy(x.astype(np.float32)).to(device))
        decoded = decode_features(models, ids, torch.full((len(rows),), ids.shape[1], device=device))
        for i, feats in zip(rows, decoded):
            out[i] = feats[:length]
    return out


def generate_features(models: MoMaskModels, text_encoder, captions: list[str], lengths: list[int],
                      candidates: list[int], rng: np.random.Generator, batch_rows: int) -> list[list[np.ndarray]]:
    """candidates[i] generated (lengths[i], 263) motions for caption i, many captions per `generate` call
    (at most batch_rows motions, similar lengths together so little is padding)."""
    out = [None] * len(captions)
    for count in sorted(set(candidates)):
        rows = sorted((i for i in range(len(captions)) if candidates[i] == count), key=lambda i: lengths[i])
        per_call = max(1, batch_rows // count)
        for start in range(0, len(rows), per_call):
            chunk = rows[start:start + per_call]
            motions = generate(models, text_encoder, [captions[i] for i in chunk], [lengths[i] for i in chunk],
                               candidates=count, seed=int(rng.integers(2 ** 31)))
            for i, candidates_of_i in zip(chunk, motions):
                out[i] = [m.features for m in candidates_of_i]
    return out


def row_metrics(text, motion, real, rng, diversity_pairs: int, mm=None, mm_pairs: int = MULTIMODALITY_PAIRS) -> dict:
    """One repetition's metrics of one row: text/motion/real (N, D) paired embeddings, mm (captions, R, D)."""
    top = r_precision(text, motion, R_PRECISION_BATCH)
    out = dict(top1=top[0], top2=top[1], top3=top[2], fid=fid(real, motion), mm_dist=matching_distance(text, motion),
               diversity=diversity(motion, diversity_pairs, rng))
    if mm is not None:
        out["multimodality"] = multimodality(mm, mm_pairs, rng)
    return out


@dataclass
class EvaluationReport:
    """Per row and metric the values of every repetition (one value for the deterministic MPJPE)."""
    values: dict[str, dict[str, list[float]]]
    protocol: str
    summary: dict = field(init=False)

    def __post_init__(self):
        self.summary = {row: {name: mean_and_interval(v) for name, v in metrics.items()}
                        for row, metrics in self.values.items()}

    def _cell(self, row: str, name: str) -> str:
        if name not in self.summary[row]:
            return "-"
        mean, ci = self.summary[row][name]
        digits = 1 if name == "mpjpe_mm" else 3
        mean = round(float(mean), digits) + 0.0  # no "-0.000" from round-off (real motion's FID)
        return f"{mean:.{digits}f}" if len(self.values[row][name]) == 1 else f"{mean:.{digits}f}±{ci:.{digits}f}"

    def table(self) -> str:
        """Markdown table, one line per row of ROWS that was evaluated."""
        lines = ["| Method | " + " | ".join(COLUMNS.values()) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        lines += [f"| {row} | " + " | ".join(self._cell(row, name) for name in COLUMNS) + " |" for row in self.values]
        return "\n".join(lines)

    def csv(self) -> str:
        """One line per row: mean and 95% interval half-width of each metric (empty where not measured)."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["method"] + [f"{name}{suffix}" for name in COLUMNS for suffix in ("", "_ci")])
        for row, metrics in self.summary.items():
            writer.writerow([row] + [f"{v:.6g}" if name in metrics else "" for name in COLUMNS
                                     for v in metrics.get(name, (0, 0))])
        return text.getvalue()

    def write(self, path: str | os.PathLike) -> None:
        """A .csv file gets csv(), anything else the protocol line and the markdown table."""
        path = Path(path)
        path.write_text(self.csv() if path.suffix.lower() == ".csv" else f"{self.protocol}\n\n{self.table()}\n")


def evaluate(model_dir, evaluator_dir=None, data="data/bandai", split: str = "test", repeats: int | None = None,
             mm_samples: int | None = None, mm_repeats: int | None = None, limit: int | None = None,
             quick: bool = False, seed: int = 0, device: str = "cpu", batch_rows: int = 128,
             precision: str = "auto", log=None) -> EvaluationReport:
    """Score the model directory (None: the default model) with the evaluator in `evaluator_dir` (default:
    MODEL_DIR/evaluator). repeats/mm_samples/mm_repeats/limit left at None take FULL's values (QUICK's with
    quick); mm_samples 0 skips MultiModality. `log(line)` gets the protocol and one line per repetition
    (default: standard error, so the table alone goes to standard output)."""
    log = log or (lambda line: print(line, file=sys.stderr))
    settings = {**(QUICK if quick else FULL)}
    settings.update({k: v for k, v in dict(repeats=repeats, mm_samples=mm_samples, mm_repeats=mm_repeats,
                                           limit=limit).items() if v is not None})
    if settings["repeats"] < 1 or settings["mm_samples"] < 0 or settings["mm_repeats"] < 2:
        raise ValueError(f"evaluate: need repeats >= 1, mm_samples >= 0 and mm_repeats >= 2, got {settings}")
    started = time.perf_counter()
    model_dir = resolve_model_dir(model_dir)
    models = load_model_dir(model_dir, device, precision)
    evaluator_dir = Path(evaluator_dir) if evaluator_dir is not None else model_dir / EVALUATOR_SUBDIR
    evaluator = load_evaluator(evaluator_dir, device)
    encoders = {}

    def encoder(name: str):
        if name not in encoders:
            encoders[name] = get_text_encoder(name, device=device)
        return encoders[name]

    fpt = models.rvq.frames_per_token
    eval_set = load_eval_set(data, split, fpt, settings["limit"])
    used = len(eval_set.motions) // R_PRECISION_BATCH * R_PRECISION_BATCH
    if used == 0:
        raise ValueError(f"{data}: the {split} split has {len(eval_set.motions)} clips; the metrics need at least "
                         f"one batch of {R_PRECISION_BATCH}")
    mm_samples, mm_repeats = min(settings["mm_samples"], used), settings["mm_repeats"]
    mm_pairs, diversity_pairs = min(MULTIMODALITY_PAIRS, mm_repeats), min(DIVERSITY_PAIRS, used)
    multimodality_protocol = (f"MultiModality over {mm_pairs} pairs of {mm_repeats} generations of {mm_samples} "
                              f"captions" if mm_samples else "MultiModality skipped")
    protocol = (f"{split} split of {data}: {len(eval_set.motions)} clips, {used} per repetition in batches of "
                f"{R_PRECISION_BATCH}; {settings['repeats']} repetition(s), mean ± 95% interval; diversity over "
                f"{diversity_pairs} pairs; {multimodality_protocol}; evaluator {evaluator_dir}; seed {seed}; "
                f"transformer products in {models.config['precision']}")
    log(protocol)

    text = evaluator.embed_texts(encoder(evaluator.text_encoder).encode(eval_set.captions))
    real = evaluator.embed_motions(eval_set.motions)
    reconstructed = reconstruct(models, eval_set.motions)
    recon = evaluator.embed_motions(reconstructed)
    joint_error = mpjpe(np.concatenate([recover_from_ric(m) for m in eval_set.motions]),
                        np.concatenate([recover_from_ric(m) for m in reconstructed]))
    values = {row: {} for row in ROWS}
    values["RVQ reconstruction"]["mpjpe_mm"] = [1000 * joint_error]
    rng = np.random.default_rng(seed)
    for rep in range(settings["repeats"]):
        tick = time.perf_counter()
        order = rng.permutation(len(eval_set.motions))[:used]
        counts = [mm_repeats if k < mm_samples else 1 for k in range(used)]
        generated = generate_features(models, encoder(models.config["text_encoder"]["name"]),
                                      [eval_set.captions[i] for i in order], [eval_set.lengths[i] for i in order],
                                      counts, rng, batch_rows)
        gen = evaluator.embed_motions([g[0] for g in generated])
        mm = None
        if mm_samples:
            mm = evaluator.embed_motions([m for g in generated[:mm_samples] for m in g])
            mm = mm.reshape(mm_samples, mm_repeats, -1)
        for row, motion, multi in (("Real motion", real[order], None), ("RVQ reconstruction", recon[order], None),
                                   ("Generated", gen, mm)):
            metrics = row_metrics(text[order], motion, real[order], rng, diversity_pairs, multi, mm_pairs)
            for name, value in metrics.items():
                values[row].setdefault(name, []).append(float(value))
        g = {name: v[-1] for name, v in values["Generated"].items()}
        log(f"repetition {rep + 1}/{settings['repeats']}: generated top-1 {g['top1']:.3f} FID {g['fid']:.3f} "
            f"MM-Dist {g['mm_dist']:.3f} ({time.perf_counter() - tick:.0f} s)")
    log(f"evaluated in {time.perf_counter() - started:.0f} s")
    return EvaluationReport(values, protocol)
