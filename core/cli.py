"""The `momask` command line. Each sub-command parses its arguments here and calls one function of the
module that owns the work; imports are lazy so that `momask --help` and the numpy-only commands start fast
and never import torch."""
import argparse
import sys


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="momask", description=__doc__.split("\n")[0])
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
