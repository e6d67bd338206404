"""Speed of the extension in bpy 5.0.1: prompt -> keys on the built-in rig for 196 frames
(9.8 s at 20 fps) with the worker warm; the worker's cold start (process start, torch, model and text encoder
load); keying alone (the new action's curves written with foreach_set); and regenerating a 60-frame
range of a 200-frame animation, split into sampling, the worker's inpainting and solving + splicing.

The extension is loaded from the source tree as Blender loads a development repository; the worker is the
real `python -m core.worker` of the set-up's .venv. Until the default model is trained, --released-size
measures a model of MoMask's released sizes with random weights (same network cost) and the MiniLM encoder.

    .venv/bin/python scripts/bench_blender.py [--model DIR | --released-size] [--runs 5] [--cold-runs 3] [--fps 24]
                                              [--edit-runs 5]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPO_NAME = "momask_bench"
PROMPT = "a person walks forward, turns around and walks back"
# A model of the released momask-codes sizes (the constructors' defaults) on MiniLM's 384-d sentence vectors.
RELEASED_SIZE_MODEL = """
import sys, numpy as np, torch
from core.checkpoint import model_config, save_model_dir
from core.models import MoMaskModels, build_model
torch.manual_seed(0)
models = MoMaskModels(build_model("rvq", {}), build_model("mask", {"cond_dim": 384}),
                      build_model("residual", {"cond_dim": 384}), build_model("length", {"cond_dim": 384}),
                      np.zeros(263, np.float32), np.ones(263, np.float32),
                      model_config("minilm", 384, "random weights, released sizes (benchmark)")).eval()
save_model_dir(models, sys.argv[1])
"""


def load_extension(tmp: Path):
    os.environ["BLENDER_USER_RESOURCES"] = str(tmp / "user")
    import bpy
    import addon_utils  # importable once bpy is
    repo = tmp / "extensions"
    repo.mkdir()
    (repo / "momask_blender").symlink_to(REPO, target_is_directory=True)
    bpy.context.preferences.extensions.repos.new(name=REPO_NAME, module=REPO_NAME, custom_directory=str(repo),
                                                 source="USER")
    errors = []
    addon_utils.enable(f"bl_ext.{REPO_NAME}.momask_blender", default_set=True, handle_error=errors.append)
    if errors:
        raise SystemExit(f"bench_blender: the extension did not load: {errors}")
    return bpy, lambda name: sys.modules[f"bl_ext.{REPO_NAME}.momask_blender.momask_blender.{name}"]


def median_ms(values) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, default=REPO / "models" / "default", help="model directory")
    source.add_argument("--released-size", action="store_true",
                        help="random weights at MoMask's released sizes (until the default model exists)")
    parser.add_argument("--runs", type=int, default=5, help="warm generations (default 5)")
    parser.add_argument("--cold-runs", type=int, default=3, help="worker cold starts (default 3)")
    parser.add_argument("--fps", type=int, default=24, help="scene frame rate (default 24)")
    parser.add_argument("--edit-runs", type=int, default=5, help="range regenerations (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_blender_") as tmp:
        return bench(args, Path(tmp))


def bench(args, tmp: Path) -> int:
    model = args.model
    if args.released_size:
        model = tmp / "released_size"
        subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", RELEASED_SIZE_MODEL, str(model)], cwd=REPO,
                       check=True)
    if not (model / "config.json").is_file():
        raise SystemExit(f"bench_blender: no model at {model}; pass --model DIR or --released-size")

    bpy, module = load_extension(tmp)
    preferences, jobs, keying = module("preferences"), module("jobs"), module("keying")
    timebase = module("_core").timebase
    prefs = preferences.get()
    prefs.model_dirs.add().path = str(model)
    prefs.model = str(model)
    command = preferences.worker_command(prefs)
    print(f"model {model}; worker `{' '.join(command)}`; {os.cpu_count()} CPUs")

    cold = []
    for _ in range(args.cold_runs):
        jobs.shutdown()
        started = time.perf_counter()
        jobs.client(command).request("load", model=str(model)).wait()
        cold.append(time.perf_counter() - started)
    print(f"worker cold start (process, torch, model, text encoder): median {statistics.median(cold):.2f} s "
          f"(runs: {', '.join(f'{c:.2f}' for c in cold)})")

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps = args.fps
    bpy.ops.momask.add_rig()
    ob = bpy.context.active_object
    total = []
    for seed in range(args.runs):
        started = time.perf_counter()
        assert bpy.ops.momask.generate(prompt=PROMPT, seconds=9.8, seed=seed) == {"FINISHED"}
        total.append(time.perf_counter() - started)
    worker = []  # the same requests straight to the worker: its share of the time
    for seed in range(args.runs):
        result = jobs.client(command).request("generate", model=str(model), prompts=[PROMPT], lengths=[196],
                                              seed=seed).wait()
        worker.append(result["seconds"])
    motion = result["motions"][0][0]["joints"]
    print(f"prompt -> keys, {len(motion)} frames at 20 fps -> {len(timebase.resample(motion, args.fps))} keyed "
          f"frames at {args.fps} fps, warm worker: median {median_ms(total)}; the worker's generation alone "
          f"{median_ms(worker)}")

    rig = module("armature_reading").read_rig(ob)
    options = module("_core").solver.SolveOptions()
    solving, keys = [], []
    for _ in range(20):
        started = time.perf_counter()
        pose = keying.solve_at_fps(rig, motion, args.fps, options)
        solving.append(time.perf_counter() - started)
        started = time.perf_counter()
        keying.write_pose(ob, rig, pose, "bench", 1)
        keys.append(time.perf_counter() - started)
    print(f"resample + solve: median {median_ms(solving)}; keying ({len(pose.rotations)} frames, "
          f"{sum(len(b.fcurves) for b in bpy.data.actions['bench'].layers[0].strips[0].channelbags)} curves): "
          f"median {median_ms(keys)}")
    bench_regenerate(bpy, module, args.edit_runs)
    jobs.shutdown()
    return 0


def bench_regenerate(bpy, module, runs: int, first: int = 71, last: int = 130):
    """Frames first..last of a 200-frame generated animation regenerated, warm worker: the operator end to end
    (a new action each time), then its parts."""
    scene = bpy.context.scene
    bpy.ops.momask.generate(prompt=PROMPT, seconds=200 / scene.render.fps + 0.05, seed=0, start_frame=1)
    ob = bpy.context.active_object
    curve = ob.animation_data.action.layers[0].strips[0].channelbags[0].fcurves[0]
    keyed = (curve.keyframe_points[0].co[0], curve.keyframe_points[-1].co[0])
    total = []
    for seed in range(runs):
        started = time.perf_counter()
        assert bpy.ops.momask.regenerate_range(prompt="a person jumps", frame_start=first, frame_end=last,
                                               seed=seed, in_place=True) == {"FINISHED"}
        total.append(time.perf_counter() - started)
    timeline_jobs = module("timeline_jobs")
    sampling, worker, finishing = [], [], []
    for seed in range(runs):
        started = time.perf_counter()
        edit = timeline_jobs.RangeRegeneration(bpy.context, timeline_jobs.EditSettings(
            "a person jumps", [(first, last)], True, seed, 4.0, 10))
        sampling.append(time.perf_counter() - started)
        edit.start().wait()
        worker.append(edit.job.result["seconds"])
        started = time.perf_counter()
        edit.finish(bpy.context)
        finishing.append(time.perf_counter() - started)
    print(f"regenerate frames {first}-{last} of an animation keyed {keyed[0]:g}-{keyed[1]:g} at {scene.render.fps} "
          f"fps, warm worker: median {median_ms(total)}; checks + sampling {median_ms(sampling)}, the worker's "
          f"inpainting {median_ms(worker)}, solve + splice {median_ms(finishing)}")


if __name__ == "__main__":
    sys.exit(main())
