"""Latency of one generation request with the released MoMask sizes and random weights (issue 3, section 7).

Measures `core.sampling.generate` end to end minus text encoding (the condition vectors are precomputed):
masked decoding, residual layers, RVQ decoding, de-normalisation and joints. Prints the median over the
runs, per batch size, and the peak resident memory of the process.

    .venv/bin/python scripts/bench_sampling.py [--runs 10] [--frames 196] [--steps 10] [--batch 1 4]
                                               [--stock-encoder]
"""
import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.models import MoMaskModels, build_model, transformer  # noqa: E402
from core.sampling import generate  # noqa: E402


class PrecomputedEncoder:
    """Fixed random vector per prompt, so that text encoding costs nothing in the measurement."""
    name, dim = "precomputed", 512

    def __init__(self):
        self.vectors = {}

    def encode(self, prompts):
        return torch.stack([self.vectors.setdefault(p, torch.randn(self.dim)) for p in prompts])


def released_models() -> MoMaskModels:
    torch.manual_seed(0)
    rvq = build_model("rvq", {})
    for layer in rvq.quantizer.layers:  # spread codes, as a trained codebook would be
        layer.codebook.normal_()
    return MoMaskModels(rvq, build_model("mask", {}), build_model("residual", {}), build_model("length", {}),
                        np.zeros(263, np.float32), np.ones(263, np.float32)).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--frames", type=int, default=196)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="prompts per request")
    parser.add_argument("--stock-encoder", action="store_true",
                        help="PyTorch's fused TransformerEncoder path instead of oneDNN-packed weights (to compare)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformer.PACKING_AVAILABLE &= not args.stock_encoder
    models, encoder = released_models(), PrecomputedEncoder()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.frames} frames, "
          f"{args.steps} steps, CFG 4 / 5, packed encoder: {transformer.PACKING_AVAILABLE}")
    for batch in args.batch:
        prompts = [f"a person walks forward and waves {i}" for i in range(batch)]
        encoder.encode(prompts)
        generate(models, encoder, prompts, args.frames, seed=0, steps=args.steps)  # warm-up
        times = []
        for run in range(args.runs):
            start = time.perf_counter()
            generate(models, encoder, prompts, args.frames, seed=run, steps=args.steps)
            times.append(time.perf_counter() - start)
        print(f"batch {batch}: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
              f"max {max(times):.3f} s over {args.runs} runs")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
