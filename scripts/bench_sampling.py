"""Latency of one generation request with the released MoMask sizes and random weights.

Measures `core.sampling.generate` end to end minus text encoding (the condition vectors are precomputed):
masked decoding, residual layers, RVQ decoding, de-normalisation and joints. Prints the median over the
runs, per batch size, and the peak resident memory of the process. `--text-encoders` then times the text
encoding that was left out, for both encoders: MiniLM from its package, and CLIP ViT-B/32 with random
weights (same sizes and code path as the released `ViT-B-32.pt`, loaded through `get_text_encoder`).

    .venv/bin/python scripts/bench_sampling.py [--runs 15] [--frames 196] [--steps 10] [--batch 1 4]
                                               [--precision auto|float32|bfloat16] [--stock-encoder]
                                               [--text-encoders]
"""
import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.models import MoMaskModels, build_model, transformer  # noqa: E402
from core.protocol import PRECISIONS  # noqa: E402
from core.sampling import generate  # noqa: E402
from core.text_encoders import _clip_module, get_text_encoder  # noqa: E402


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


def timed(fn, runs: int) -> list[float]:
    times = []
    for run in range(runs):
        start = time.perf_counter()
        fn(run)
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> str:
    return (f"median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
            f"over {len(times)} runs")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_clip_file(folder: Path) -> Path:
    """CLIP ViT-B/32 (OpenAI's sizes) with random weights, saved as the state_dict the loader accepts."""
    torch.manual_seed(0)
    clip = _clip_module("model").CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                                      vision_patch_size=32, context_length=77, vocab_size=49408,
                                      transformer_width=512, transformer_heads=8, transformer_layers=12)
    torch.save(clip.state_dict(), folder / "ViT-B-32-random.pt")
    return folder / "ViT-B-32-random.pt"


def bench_text_encoders(batches: list[int], runs: int) -> None:
    """Each run encodes prompts the encoder has not seen, so its cache never answers."""
    with tempfile.TemporaryDirectory() as folder:
        for name, opts in (("minilm", {}), ("clip-vit-b32", {"path": random_clip_file(Path(folder))})):
            start = time.perf_counter()
            encoder = get_text_encoder(name, **opts)
            print(f"{name}: loaded in {time.perf_counter() - start:.2f} s")
            for batch in batches:
                def encode(run):
                    encoder.encode([f"a person walks forward, turns and waves {run} {i}" for i in range(batch)])
                encode(-1)  # warm-up
                print(f"  encode batch {batch}: {summary(timed(encode, runs))}")
            del encoder
    print(f"peak RSS with the text encoders {peak_rss_mib():.0f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--frames", type=int, default=196)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="prompts per request")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="the transformers' matrix products (default auto, as the worker: bfloat16 where native)")
    parser.add_argument("--stock-encoder", action="store_true",
                        help="PyTorch's own modules (fused TransformerEncoder path, float32) instead of oneDNN-packed "
                             "weights, to compare")
    parser.add_argument("--text-encoders", action="store_true", help="also time MiniLM and CLIP text encoding")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformer.PACKING_AVAILABLE &= not args.stock_encoder
    models, encoder = released_models(), PrecomputedEncoder()
    precision = models.set_precision(args.precision)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.frames} frames, "
          f"{args.steps} steps, CFG 4 / 5, packed encoder: {transformer.PACKING_AVAILABLE}, "
          f"transformer products: {precision if transformer.PACKING_AVAILABLE else 'float32'}")
    for batch in args.batch:
        prompts = [f"a person walks forward and waves {i}" for i in range(batch)]
        encoder.encode(prompts)
        generate(models, encoder, prompts, args.frames, seed=0, steps=args.steps)  # warm-up
        times = timed(lambda run: generate(models, encoder, prompts, args.frames, seed=run, steps=args.steps),
                      args.runs)
        print(f"batch {batch}: {summary(times)}")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    if args.text_encoders:
        bench_text_encoders(args.batch, args.runs)


if __name__ == "__main__":
    main()
