"""The `momask` command line. Each sub-command parses its arguments here and calls one function of the
module that owns the work; imports are lazy so that `momask --help` and the numpy-only commands start fast
and never import torch."""
import argparse
import sys

from core.worker import add_clip_path_option, add_precision_option, options_parser  # stdlib and numpy only: torch comes with a job


class UserError(Exception):
    """Bad input from the user: printed as a one-line message, exit code 2."""


def _features(args):
    import numpy as np
    from core.features import joints_to_features
    joints = np.load(args.joints)
    if joints.ndim != 3 or joints.shape[1:] != (22, 3):
        raise UserError(f"{args.joints}: expected joints of shape (T, 22, 3), got {joints.shape}")
    np.save(args.out, joints_to_features(joints))


def _joints(args):
    import numpy as np
    from core.features import recover_from_ric
    feats = np.load(args.features)
    if feats.ndim != 2 or feats.shape[1] != 263:
        raise UserError(f"{args.features}: expected features of shape (T, 263), got {feats.shape}")
    np.save(args.out, recover_from_ric(feats))


def _bvh2joints(args):
    import numpy as np
    from core.mocap import bvh_to_smpl_joints
    joints, report = bvh_to_smpl_joints(args.bvh, fps=args.fps, up=args.up, scale=args.scale)
    np.save(args.out, joints.astype(np.float32))
    print(report)


def _prepare_data(args):
    if args.bvh_dir is None:
        if args.captions is not None:
            raise UserError("--captions goes with --bvh-dir (the folder of BVH files it captions)")
        from core.dataset.prepare import prepare_data
        prepare_data(args.archive, args.out or "data/bandai", workers=args.workers, force=args.force)
        return
    missing = [option for option, value in (("--captions FILE", args.captions), ("--out DIR", args.out)) if not value]
    if missing:
        raise UserError(f"--bvh-dir needs {' and '.join(missing)}")
    from core.dataset.bvh_folder import prepare_bvh_folder
    prepare_bvh_folder(args.bvh_dir, args.captions, args.out, workers=args.workers, force=args.force)


def _render(args):
    from core.render import render_file
    render_file(args.motion, args.out, fps=args.fps, title=args.title)


def _import_momask(args):
    from core.import_momask import import_momask
    print(import_momask(args.checkpoints, args.out))


def _evaluate(args):
    from core.evaluation.evaluate import evaluate
    report = evaluate(args.model_dir, evaluator_dir=args.evaluator, data=args.data, split=args.split,
                      repeats=args.repeats, mm_samples=args.mm_samples, mm_repeats=args.mm_repeats, limit=args.limit,
                      quick=args.quick, seed=args.seed, device=args.device, precision=args.precision)
    print(report.table())
    if args.out:
        report.write(args.out)


def _train(args):
    import os
    from core.train import TrainingInterrupted, assemble_model_dir, train
    if args.kind == "assemble":
        missing = [f"--{name}" for name in ("rvq", "mask", "out") if getattr(args, name) is None]
        if missing:
            raise UserError(f"assemble needs {' and '.join(missing)}")
        print(assemble_model_dir(args.out, args.rvq, args.mask, args.residual, args.length, args.evaluator))
        return
    if args.config is None or args.out is None:
        raise UserError(f"training the {args.kind} network needs --config FILE and --out DIR")
    try:
        out = train(args.kind, args.config, args.data, args.out, rvq=args.rvq, device=args.device, stop_at=args.stop_at)
    except TrainingInterrupted as err:
        print(f"momask train {args.kind}: {err}", file=sys.stderr)
        raise SystemExit(130) from None
    if os.environ.get("RANK", "0") == "0":
        print(f"momask train {args.kind}: {out}")


def _model_and_encoder(args):
    """(model directory, models, text encoder): loaded once per command, which takes a few seconds."""
    import torch
    from core.checkpoint import load_model_dir, resolve_model_dir
    from core.text_encoders import get_text_encoder
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    path = resolve_model_dir(args.model)
    print(f"momask {args.command}: loading the model {path}", file=sys.stderr, flush=True)
    models = load_model_dir(path, args.device, args.precision)
    return path, models, get_text_encoder(models.config["text_encoder"]["name"], device=args.device,
                                           clip_path=args.clip_path)


def _checked_request(args) -> None:
    """What can be refused before the model loads: outputs, candidates, steps, threads, seed."""
    from core.motion_export import check_output_path
    from core.sampling import check_sampling_options
    for out in args.out:
        check_output_path(out)
    check_sampling_options(args.candidates, args.steps, 0.9, 1.0, args.command)
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    if args.seed is None:
        import secrets
        args.seed = secrets.randbelow(2 ** 31)
    elif args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")


def _progress_bar(description: str):
    """A tqdm bar on stderr and the progress(step, total) callback that drives it."""
    from tqdm import tqdm
    bar = tqdm(desc=description, unit="step", file=sys.stderr)

    def progress(step: int, total: int) -> None:
        bar.total = total
        bar.update(step - bar.n)
    return bar, progress


def _write_results(args, motions, info: dict) -> None:
    """Every candidate to every --out file (NAME_k.EXT for several candidates), feet locked if asked."""
    from tqdm import tqdm
    from core.motion_export import candidate_paths, write_motion
    from core.timebase import FPS
    joints = [m.joints for m in motions]
    if args.foot_lock:
        from core.footlock import lock_feet
        joints = [lock_feet(j, m.contacts, fps=FPS) for j, m in zip(joints, motions)]
    files = [(path, k) for out in args.out for k, path in enumerate(candidate_paths(out, len(motions)))]
    for path, k in tqdm(files, desc="writing", unit="file", file=sys.stderr):
        extra = {"candidate": k + 1} if len(motions) > 1 else {}
        write_motion(path, joints[k], motions[k].features, motions[k].contacts, {**info, **extra})
    print("\n".join(str(path) for path, _ in files))


def _sample_and_write(args, description: str, sample, info: dict) -> None:
    """The checked request's model loaded, `sample(models, encoder, progress) -> motions` run under a progress
    bar, the motions written to every --out."""
    from core.timebase import FPS
    _checked_request(args)
    path, models, encoder = _model_and_encoder(args)
    bar, progress = _progress_bar(description)
    with bar:
        motions = sample(models, encoder, progress)
    print(f"momask {args.command}: {len(motions)} motion(s) of {motions[0].length / FPS:g} s, seed {args.seed}",
          file=sys.stderr)
    _write_results(args, motions, {"prompt": args.prompt.strip(), "seed": args.seed, "model": str(path), **info})


def _generate(args):
    from core.timebase import FPS
    from core.sampling import MAX_FRAMES, MIN_FRAMES, generate
    prompt = args.prompt.strip()
    if not prompt:
        raise UserError("the prompt is empty; describe the motion in words, e.g. \"a person walks forward\"")
    frames = round(args.seconds * FPS) if args.seconds else None
    if frames is not None and not MIN_FRAMES <= frames <= MAX_FRAMES:
        raise UserError(f"--seconds {args.seconds:g} is out of range: choose {MIN_FRAMES / FPS:g} to "
                        f"{MAX_FRAMES / FPS:g} s, or 0 to let the model choose")
    _sample_and_write(args, "generating", lambda models, encoder, progress: generate(
        models, encoder, [prompt], None if frames is None else [frames], candidates=args.candidates, seed=args.seed,
        steps=args.steps, cond_scale=args.guidance, progress=progress)[0], {})


def _read_source(path: str):
    """An inpainting source: .npy of features (T, 263) or joints (T, 22, 3), .npz with either (features first),
    or any humanoid .bvh (converted to the 22 joints at 20 fps)."""
    import numpy as np
    from pathlib import Path
    ext = Path(path).suffix.lower()
    if not Path(path).is_file():
        raise UserError(f"{path}: no such file")
    if ext == ".npy":
        return np.load(path, allow_pickle=False)
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as data:
            for name in ("features", "joints"):
                if name in data:
                    return data[name]
            raise UserError(f"{path}: no 'features' or 'joints' array (it holds: "
                            f"{', '.join(data.files) or 'nothing'})")
    if ext == ".bvh":
        from core.mocap import bvh_to_smpl_joints
        joints, report = bvh_to_smpl_joints(path)
        print(f"momask inpaint: {report.splitlines()[0]}", file=sys.stderr)
        return joints
    raise UserError(f"{path}: unknown source format {ext or '(no extension)'!r}; use .npy, .npz or .bvh")


def _frame_range(text: str) -> tuple[int, int]:
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(start), int(stop)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not START:STOP in frames, e.g. 20:60") from None


def _inpaint(args):
    import numpy as np
    from core.inpainting import check_ranges, inpaint
    source = _read_source(args.source)
    ranges = check_ranges(args.range, len(source))
    _sample_and_write(args, "inpainting", lambda models, encoder, progress: inpaint(
        models, encoder, source, ranges, args.prompt.strip(), candidates=args.candidates, seed=args.seed,
        steps=args.steps, cond_scale=args.guidance, progress=progress),
        {"source": str(args.source), "ranges": np.array(ranges)})


def _serve(args):
    from core.worker import serve
    serve(args.threads, args.model, args.device, args.precision, args.clip_path)


OUTPUT_HELP = """output formats (by the --out file's extension):
  .npy   joint positions (T, 22, 3): metres, y up, facing +z, 20 fps
  .npz   features (T, 263), joints, contacts (T, 4), prompt, seed, model (and source, ranges when inpainting)
  .bvh   the 22-joint SMPL template skeleton (momask-codes' bone names), metres, y up, 20 fps
  .gif   stick-figure preview
  .mp4   stick-figure preview, where ffmpeg is installed
With --candidates K > 1 every --out file gets a suffix per candidate: walk.bvh -> walk_1.bvh ... walk_K.bvh."""


CAPTIONS_HELP = """captions file (by extension; read by core.dataset.bvh_folder):
  .csv    a header row "file,caption", then one row per caption; a clip with several captions has several
          rows; quote a caption that holds a comma:
            file,caption
            walks/slow.bvh,a person walks slowly forward
            walks/slow.bvh,"someone strolls ahead, then stops"
  .jsonl  one JSON object per line:
            {"file": "walks/slow.bvh", "captions": ["a person walks slowly forward", "someone strolls"]}
"file" is the BVH's path relative to --bvh-dir, with forward slashes. Every .bvh under the folder needs a
caption. Mirrored copies of the clips get their captions with left and right swapped."""


def _sampling_options() -> argparse.ArgumentParser:
    """Options generate and inpaint share."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--out", action="append", required=True, metavar="FILE",
                        help="output file, its format by extension (see below); repeat to write several formats "
                             "of the same motion")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="random seed: the same seed and options give the same motion (default: a new one, "
                             "printed)")
    parser.add_argument("--candidates", type=int, default=1, metavar="K",
                        help="how many different motions to make (default 1)")
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="model directory (default: models/default, the shipped model)")
    parser.add_argument("--steps", type=int, default=10, metavar="N",
                        help="decoding steps of the masked transformer: more is slower and finer (default 10)")
    parser.add_argument("--guidance", type=float, default=4.0, metavar="S",
                        help="classifier-free guidance scale: how closely the motion follows the prompt (default 4)")
    parser.add_argument("--foot-lock", action="store_true",
                        help="pin the feet while they stand (two-bone IK on the legs) in every output but the "
                             ".npz features")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: all cores)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    add_precision_option(parser)
    add_clip_path_option(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="momask", description="MoMask text-to-motion: generating and editing motion, data, training, evaluation "
                                   "and the worker Blender talks to.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("features", help="joints (T,22,3) -> HumanML3D 263-d features (T-1,263)")
    p.add_argument("joints", help="input .npy of joint positions in metres, y up, 20 fps")
    p.add_argument("out", help="output .npy of features")
    p.set_defaults(func=_features)

    p = sub.add_parser("joints", help="263-d features (T,263) -> joints (T,22,3) (recover_from_ric)")
    p.add_argument("features", help="input .npy of features (not normalised)")
    p.add_argument("out", help="output .npy of joint positions")
    p.set_defaults(func=_joints)

    p = sub.add_parser("bvh2joints", help="any humanoid BVH -> SMPL-22 joints (metres, y up, 20 fps)")
    p.add_argument("bvh", help="input .bvh file")
    p.add_argument("out", help="output .npy of shape (T, 22, 3)")
    p.add_argument("--fps", type=float, default=20.0, help="output frame rate (default 20, MoMask's rate)")
    p.add_argument("--up", choices=["auto", "y", "z"], default="auto",
                   help="the file's up axis (default: detected from the rest pose)")
    p.add_argument("--scale", type=float, default=None,
                   help="metres per file unit (default: detected from the skeleton's height)")
    p.set_defaults(func=_bvh2joints)

    p = sub.add_parser(
        "prepare-data", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="convert mocap into a training dataset: the Bandai-Namco archive, or a folder of BVH files with "
             "captions",
        description="Convert mocap into a training dataset (SMPL-22 joints at 20 fps, 263-d features, mirrored\n"
                    "copies, splits, statistics): the Bandai-Namco archive (captions generated from its labels),\n"
                    "or with --bvh-dir any humanoid BVH files and a captions file. A second run with the same\n"
                    "inputs is a no-op.", epilog=CAPTIONS_HELP)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--archive", default=None,
                        help="bandai-namco-motion.tar.xz (default: ../shared/data/bandai-namco-motion.tar.xz)")
    source.add_argument("--bvh-dir", default=None, metavar="DIR",
                        help="a folder of .bvh files (sub-folders included), each captioned in --captions")
    p.add_argument("--captions", default=None, metavar="FILE",
                   help="with --bvh-dir: .csv or .jsonl mapping each BVH's path relative to DIR to one or more "
                        "captions (format below)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="dataset directory (default with --archive: data/bandai; required with --bvh-dir)")
    p.add_argument("--workers", type=int, default=None, help="processes to convert with (default: all cores)")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is up to date")
    p.set_defaults(func=_prepare_data)

    p = sub.add_parser("render", help="stick-figure preview (.gif, or .mp4 where ffmpeg exists)")
    p.add_argument("motion", help=".npy of joints (T,22,3) or features (T,263)")
    p.add_argument("out", help="output .gif or .mp4")
    p.add_argument("--fps", type=float, default=20.0, help="frame rate of the motion (default 20)")
    p.add_argument("--title", default=None, help="caption drawn above the figure")
    p.set_defaults(func=_render)

    p = sub.add_parser("import-momask", help="convert a released momask-codes checkpoint tree to our format")
    p.add_argument("checkpoints", help="the released checkpoints/t2m folder")
    p.add_argument("out", help="output model directory")
    p.set_defaults(func=_import_momask)

    p = sub.add_parser("evaluate", help="R-precision, FID, MM-Dist, diversity, MultiModality, RVQ MPJPE")
    p.add_argument("model_dir", help="the model directory to score")
    p.add_argument("--evaluator", default=None, help="evaluator folder (default: MODEL_DIR/evaluator)")
    p.add_argument("--data", default="data/bandai", help="prepared dataset (default: data/bandai)")
    p.add_argument("--split", choices=["train", "val", "test"], default="test", help="split to score (default: test)")
    p.add_argument("--repeats", type=int, default=None, help="repetitions for the 95%% intervals (default 20)")
    p.add_argument("--mm-samples", type=int, default=None,
                   help="captions generated many times for MultiModality (default 100; 0 skips it)")
    p.add_argument("--mm-repeats", type=int, default=None, help="generations per MultiModality caption (default 30)")
    p.add_argument("--limit", type=int, default=None, help="score a fixed random subset of this many clips")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 2 repetitions, 64 clips, MultiModality 3 generations of 4 captions")
    p.add_argument("--seed", type=int, default=0, help="seed of generation, batching and pairs (default 0)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_precision_option(p)
    p.add_argument("--out", default=None, help="also write the table to this .csv or .md file")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("train", help="train a network (rvq, mask, residual, length, evaluator; also under torchrun) "
                                     "or assemble trained parts into a model directory")
    p.add_argument("kind", choices=["rvq", "mask", "residual", "length", "evaluator", "assemble"])
    p.add_argument("--config", help="training config .json (e.g. configs/default.json)")
    p.add_argument("--data", default="data/bandai", help="prepared dataset (default: data/bandai)")
    p.add_argument("--out", help="run directory (a checkpoint there is resumed); assemble: the model directory")
    p.add_argument("--rvq", help="the trained RVQ run directory (mask/residual training and assemble)")
    p.add_argument("--mask", help="assemble: the trained masked-transformer run directory")
    p.add_argument("--residual", help="assemble: the trained residual-transformer run directory (optional)")
    p.add_argument("--length", help="assemble: the trained length-estimator run directory (optional)")
    p.add_argument("--evaluator", help="assemble: an evaluator run directory, copied to OUT/evaluator (optional)")
    p.add_argument("--device", default=None, help="torch device (default: this process's GPU if any, else cpu)")
    p.add_argument("--stop-at", type=int, default=None, help="pause after this step (checkpointed; rerun to go on)")
    p.set_defaults(func=_train)

    sampling = _sampling_options()
    p = sub.add_parser(
        "generate", parents=[sampling], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="text -> motion, written as .npy, .npz, .bvh, .gif or .mp4 (by the --out file's extension)",
        description="Generate motion from a prompt with a MoMask model; write it by the extension of each\n"
                    "--out file.", epilog=OUTPUT_HELP)
    p.add_argument("prompt", help='what the character does, in words, e.g. "a person waves with the right hand"')
    p.add_argument("--seconds", type=float, default=4.0, metavar="S",
                   help="duration in seconds, 0.4 to 9.8 (20 fps); 0 lets the model's length estimator choose "
                        "(default 4)")
    p.set_defaults(func=_generate)

    p = sub.add_parser(
        "inpaint", parents=[sampling], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="regenerate frame ranges of a motion (.npy, .npz, .bvh) from a prompt; the rest is kept",
        description="Regenerate frame ranges of an existing motion under a prompt: frames outside the ranges\n"
                    "are kept exactly and the edges blend in. Writes by the extension of each --out file.",
        epilog=OUTPUT_HELP)
    p.add_argument("source", help="the motion to edit: .npy of joints (T, 22, 3) or features (T, 263) at 20 fps, "
                                  ".npz written by momask generate/inpaint, or any humanoid .bvh (converted to "
                                  "the 22 joints at 20 fps)")
    p.add_argument("prompt", help='what happens inside the ranges; "" for none (the model fills them from the '
                                  'context)')
    p.add_argument("--range", action="append", type=_frame_range, required=True, metavar="START:STOP",
                   help="frames to regenerate, START included, STOP not, counted from 0 at 20 fps; repeat for "
                        "several ranges")
    p.set_defaults(func=_inpaint)

    p = sub.add_parser("serve", parents=[options_parser()],
                       help="the worker Blender talks to: JSON lines on stdin/stdout (as python -m core.worker)")
    p.set_defaults(func=_serve)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (UserError, FileNotFoundError, ValueError) as err:
        print(f"momask {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a disk or permission problem: not the input's fault, still no traceback
        print(f"momask {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"momask {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
