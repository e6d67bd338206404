"""The `momask` command line. Each sub-command parses its arguments here and calls one function of the
module that owns the work; imports are lazy so that `momask --help` and the numpy-only commands start fast
and never import torch."""
import argparse
import sys

from core.protocol import PRECISIONS  # stdlib and numpy only


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
    from core.dataset.prepare import prepare_data
    prepare_data(args.archive, args.out, workers=args.workers, force=args.force)


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


def _serve(args):
    from core.worker import serve
    serve(args.threads, args.model, args.device, args.precision)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="momask", description="MoMask text-to-motion: data, training, evaluation and the Blender worker.")
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

    p = sub.add_parser("prepare-data", help="convert the Bandai-Namco mocap archive into the training dataset")
    p.add_argument("--archive", default=None,
                   help="bandai-namco-motion.tar.xz (default: ../shared/data/bandai-namco-motion.tar.xz)")
    p.add_argument("--out", default="data/bandai", help="dataset directory (default: data/bandai)")
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

    p = sub.add_parser("evaluate", help="R-precision, FID, MM-Dist, diversity, MultiModality, RVQ MPJPE (spec 8)")
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
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="CPU matrix products of the transformers (default auto: bfloat16 where native)")
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

    from core.worker import options_parser  # stdlib and numpy only; torch comes when the worker starts
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
