"""Training throughput of every network kind at the released sizes and smaller ones, to choose the default model's sizes
for a given CPU budget.

Runs the training loop's own step (core.train.loop.training_step) on the real dataset's clips: RVQ windows
and evaluator crops from its features; token crops with the real clip lengths but random code ids and
random caption vectors (throughput does not depend on their values, and no RVQ or text encoder is needed).
Per configuration: 3 warm-up steps, then up to --iters steps or --seconds, whichever ends first. Prints
iterations/s, samples/s and the machine load (the CPU may be shared).

    .venv/bin/python scripts/bench_train.py [--data data/bandai] [--iters 20] [--seconds 60] [--kinds rvq mask]
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.dataset import load_dataset  # noqa: E402
from core.evaluation.evaluator import build_evaluator  # noqa: E402
from core.models import build_model  # noqa: E402
from core.train.config import StageConfig  # noqa: E402
from core.train.data import (FRAMES_PER_TOKEN, STEP, CaptionPool, ClipFeatures, ClipTokens, batch_items,  # noqa: E402
                             rng_for)
from core.train.loop import make_optimizer, training_step  # noqa: E402
from core.train.tasks import EvaluatorTask, LengthTask, RVQTask, TokenTask  # noqa: E402

TEXT_DIM, MAX_TOKENS = 384, 49
TRANSFORMER_SIZES = {  # name: (latent_dim, ff_size, num_layers, num_heads, code_dim)
    "released 384/1024 x8": (384, 1024, 8, 6, 512),
    "256/1024 x6": (256, 1024, 6, 4, 512),
    "256/512 x4": (256, 512, 4, 4, 256),
    "192/512 x4": (192, 512, 4, 4, 256),
    "128/256 x3": (128, 256, 3, 4, 256),
}
SIZES = {
    "rvq": [("released w512 cd512 depth3, batch 256", dict(), 256),
            ("w256 cd256 depth3, batch 256", dict(width=256, code_dim=256), 256),
            ("w256 cd256 depth2, batch 256", dict(width=256, code_dim=256, depth=2), 256),
            ("w128 cd128 depth3, batch 256", dict(width=128, code_dim=128), 256),
            ("w128 cd128 depth3, batch 128", dict(width=128, code_dim=128), 128)],
    "mask": [(f"{name}, batch 64", dict(latent_dim=l, ff_size=f, num_layers=n, num_heads=h, code_dim=c), 64)
             for name, (l, f, n, h, c) in TRANSFORMER_SIZES.items()],
    "residual": [(f"{name}, batch 64", dict(latent_dim=l, ff_size=f, num_layers=n, num_heads=h, code_dim=c), 64)
                 for name, (l, f, n, h, c) in TRANSFORMER_SIZES.items()],
    "length": [("released hidden 512, batch 64", dict(), 64)],
    "evaluator": [("default 128/128/256 -> 64, batch 64", dict(), 64),
                  ("256/256/512 -> 128, batch 64", dict(movement_dim=256, hidden=256, text_hidden=512, embed_dim=128), 64)],
}


def make_task(kind: str, hparams: dict, features: ClipFeatures, dataset, rng: np.random.Generator):
    """The kind's Task with a fresh network of these sizes; tokens and captions random where they stand in."""
    pool = CaptionPool(rng.normal(size=(4 * len(dataset), TEXT_DIM)).astype(np.float32),
                       np.arange(4 * len(dataset)).reshape(-1, 4))
    if kind == "rvq":
        return RVQTask(build_model("rvq", hparams), features, 64, dataset.mean, dataset.std, {})
    if kind == "length":
        return LengthTask(build_model("length", dict(hparams, cond_dim=TEXT_DIM)), dataset.lengths, pool, MAX_TOKENS, {})
    if kind == "evaluator":
        net = build_evaluator(dict(hparams, text_dim=TEXT_DIM))
        return EvaluatorTask(net, features, pool, MAX_TOKENS, dataset.mean, dataset.std, "bench", {})
    counts = (dataset.lengths - 3) // FRAMES_PER_TOKEN
    tokens = ClipTokens(rng.integers(0, 512, size=(4 * counts.sum(), 6)).astype(np.int32), counts, 4)
    extra = dict(num_quantizers=6) if kind == "residual" else {}
    return TokenTask(kind, build_model(kind, dict(hparams, cond_dim=TEXT_DIM, num_tokens=512, **extra)), tokens, pool,
                     MAX_TOKENS, {})


def measure(task, batch_size: int, iters: int, seconds: float, warmup: int = 3) -> tuple[int, float]:
    """(steps timed, seconds per step) of the loop's training step on the CPU in float32."""
    stage = StageConfig(model={}, iterations=iters, batch_size=batch_size, lr=2e-4)
    optimizer = make_optimizer(task.net, stage)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    task.train()
    device = torch.device("cpu")
    done, start = 0, None
    for step in range(warmup + iters):
        if step == warmup:
            start = time.perf_counter()
        items = batch_items(task.num_items, batch_size, step, 0, 1, seed=0)
        training_step(task, task, task.batch(items, rng_for(0, STEP, step, 0), device), optimizer, scaler, None, None)
        if step >= warmup:
            done += 1
            if time.perf_counter() - start > seconds:
                break
    return done, (time.perf_counter() - start) / done


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/bandai", help="prepared dataset (default: data/bandai)")
    parser.add_argument("--iters", type=int, default=20, help="timed steps per configuration (default 20)")
    parser.add_argument("--seconds", type=float, default=60, help="time limit per configuration (default 60)")
    parser.add_argument("--kinds", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args()
    dataset = load_dataset(args.data, "train")
    features = ClipFeatures(dataset, dataset.mean, dataset.std)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"{len(dataset)} train clips; load average at start {os.getloadavg()}")
    print("| kind | size | params (M) | steps timed | it/s | samples/s | s/it | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in args.kinds:
        for name, hparams, batch_size in SIZES[kind]:
            torch.manual_seed(0)
            task = make_task(kind, hparams, features, dataset, np.random.default_rng(0))
            params = sum(p.numel() for p in task.net.parameters()) / 1e6
            done, per_step = measure(task, batch_size, args.iters, args.seconds)
            print(f"| {kind} | {name} | {params:.2f} | {done} | {1 / per_step:.3f} | {batch_size / per_step:.0f} "
                  f"| {per_step:.3f} | {os.getloadavg()[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
