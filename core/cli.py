"""The `momask` command line. Each sub-command parses its arguments here and calls one function of the
module that owns the work; imports are lazy so that `momask --help` and the numpy-only commands start fast
and never import torch."""
import argparse
import math
import sys
from pathlib import Path

from .known_actions import KnownActions, understood_line
from .worker import add_clip_path_option, add_precision_option, options_parser  # stdlib and numpy only: torch comes with a job

INSTALLATION = Path(__file__).resolve().parents[1]  # the checkout (or unpacked extension) this module runs from
MAX_SEED = 2 ** 31 - 1  # as Blender's Seed property: a seed from either side means the same on the other


class UserError(Exception):
    """Bad input from the user: printed as a one-line message, exit code 2."""


# Argument types: argparse calls them while parsing, so a wrong value is refused with the usage and one line
# naming the option (exit code 2) before any command starts.

def _whole(low: int, high: int | None = None):
    """An integer option in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < low or (high is not None and value > high):
            within = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {within}, got {value}")
        return value
    return parse


def _number(low: float, *, above: bool = False):
    """A finite float option >= low (> low with above)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not math.isfinite(value) or value < low or (above and value == low):
            raise argparse.ArgumentTypeError(f"must be a number {'>' if above else '>='} {low:g}, got {text}")
        return value
    return parse


def _file(*extensions: str, output: bool = False):
    """A path with one of `extensions`: an input must be an existing file, an output's folder must exist."""
    def parse(text: str) -> str:
        path = Path(text)
        if extensions and path.suffix.lower() not in extensions:
            raise argparse.ArgumentTypeError(f"{text}: expected a {' or '.join(extensions)} file")
        if output and not path.parent.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: the folder {path.parent} does not exist")
        if not output and not path.is_file():
            raise argparse.ArgumentTypeError(f"{text}: no such file")
        return text
    return parse


def _folder(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return text


def _bundled(folder: str, suffix: str = ""):
    """A path the installation ships under `folder` (configs/, models/): as given where it exists (relative to
    the current folder), else the installation's own, so that the README's commands work from any folder:
    "configs/tiny.json", "tiny.json" and "tiny" all name INSTALLATION/configs/tiny.json. Found nowhere, the
    path stays as given and the command's own check names it."""
    def resolve(text: str) -> str:
        given = Path(text).expanduser()
        if given.exists() or given.is_absolute():
            return str(given)
        inside = Path(*given.parts[1:]) if given.parts[0] == folder and len(given.parts) > 1 else given
        for name in (inside, inside.with_name(inside.name + suffix)):
            if (INSTALLATION / folder / name).exists():
                return str(INSTALLATION / folder / name)
        return text
    return resolve


def _check_device(device: str | None) -> None:
    """Refuse a torch device this machine cannot run on (a CUDA device on the CPU build, say) before any work."""
    if device is None:
        return
    import torch
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available here (PyTorch {torch.__version__}, "
                            f"{torch.cuda.device_count()} GPU(s) visible); use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: there are only {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"--device {device}: Apple's MPS is not available here; use --device cpu")
    elif parsed.type != "cpu":
        raise UserError(f"--device {device}: only cpu, cuda and mps devices are supported")


def _load_array(path: str, names: tuple[str, ...]):
    """The array in a .npy file, or the first of `names` held by a .npz file, as a finite float32 array with
    frames; anything else (a damaged or truncated file, text, pickled objects, no such array, empty, NaN) is a
    UserError naming the file and what is wrong with it."""
    import zipfile

    import numpy as np
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                name = next((n for n in names if n in loaded.files), None)
                if name is None:
                    raise UserError(f"{path}: no {' or '.join(repr(n) for n in names)} array (it holds: "
                                    f"{', '.join(loaded.files) or 'nothing'})")
                array = loaded[name]
        else:
            array = loaded
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):  # numpy's own words name the wrong cause
        raise UserError(f"{path}: not a readable {Path(path).suffix.lower()} file (damaged, truncated, or not "
                        "written by NumPy)") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise UserError(f"{path}: holds {array.dtype} values, not numbers")
    if array.ndim == 0 or len(array) == 0:
        raise UserError(f"{path}: the array is empty (shape {array.shape})")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise UserError(f"{path}: the array holds NaN or infinite values")
    return array


def _features(args):
    import numpy as np
    from .features import joints_to_features
    joints = _load_array(args.joints, ("joints",))
    if joints.ndim != 3 or joints.shape[1:] != (22, 3):
        raise UserError(f"{args.joints}: expected joints of shape (T, 22, 3), got {joints.shape}")
    if len(joints) < 2:
        raise UserError(f"{args.joints}: one frame; features need at least 2 frames (velocities)")
    np.save(args.out, joints_to_features(joints.astype(np.float64)).astype(np.float32))


def _joints(args):
    import numpy as np
    from .features import recover_from_ric
    feats = _load_array(args.features, ("features",))
    if feats.ndim != 2 or feats.shape[1] != 263:
        raise UserError(f"{args.features}: expected features of shape (T, 263), got {feats.shape}")
    np.save(args.out, recover_from_ric(feats.astype(np.float64)).astype(np.float32))


def _bvh2joints(args):
    import numpy as np
    from .mocap import bvh_to_smpl_joints
    joints, report = bvh_to_smpl_joints(args.bvh, fps=args.fps, up=args.up, scale=args.scale)
    np.save(args.out, joints.astype(np.float32))
    print(report)


def _prepare_data(args):
    if args.bvh_dir is None:
        if args.captions is not None:
            raise UserError("--captions goes with --bvh-dir (the folder of BVH files it captions)")
        from .dataset.prepare import prepare_data
        more = not args.bandai_only
        prepare_data(args.archive, args.out or ("data/default" if more else "data/bandai"), workers=args.workers,
                     force=args.force, more_archive=args.more_archive, more=more)
        return
    missing = [option for option, value in (("--captions FILE", args.captions), ("--out DIR", args.out)) if not value]
    if missing:
        raise UserError(f"--bvh-dir needs {' and '.join(missing)}")
    from .dataset.bvh_folder import prepare_bvh_folder
    prepare_bvh_folder(args.bvh_dir, args.captions, args.out, workers=args.workers, force=args.force, up=args.up)


def _render(args):
    from .motion_export import check_output_path
    from .render import render_file
    _load_array(args.motion, ("joints",))  # a damaged or empty file gets its one line here
    check_output_path(args.out)
    render_file(args.motion, args.out, fps=args.fps, title=args.title)


def _import_momask(args):
    from .import_momask import import_momask
    print(import_momask(args.checkpoints, args.out))


def _evaluate(args):
    from .dataset import load_dataset
    from .evaluation.evaluate import evaluate
    from .evaluation.metrics import R_PRECISION_BATCH
    _check_model_dir(args.model_dir, "MODEL_DIR")
    _check_device(args.device)
    clips = len(load_dataset(args.data, args.split))
    if clips < R_PRECISION_BATCH:
        raise UserError(f"{args.data}: the {args.split} split has {clips} clips (mirrored copies included); the "
                        f"metrics compare batches of {R_PRECISION_BATCH}, so it needs at least {R_PRECISION_BATCH} "
                        f"({R_PRECISION_BATCH // 2} clips and their mirrors). A dataset of fewer than 10 clips has "
                        "them all in the train split: score it with --split train once it has enough")
    report = evaluate(args.model_dir, evaluator_dir=args.evaluator, data=args.data, split=args.split,
                      repeats=args.repeats, mm_samples=args.mm_samples, mm_repeats=args.mm_repeats, limit=args.limit,
                      quick=args.quick, seed=args.seed, device=args.device, precision=args.precision)
    print(report.table())
    if args.out:
        report.write(args.out)


def _train(args):
    import os
    from .train import TrainingInterrupted, assemble_model_dir, train
    if args.kind == "assemble":
        missing = [f"--{name}" for name in ("rvq", "mask", "out") if getattr(args, name) is None]
        if missing:
            raise UserError(f"assemble needs {' and '.join(missing)}")
        print(assemble_model_dir(args.out, args.rvq, args.mask, args.residual, args.length, args.evaluator))
        return
    if args.config is None or args.out is None:
        raise UserError(f"training the {args.kind} network needs --config FILE and --out DIR")
    if args.init is not None and args.kind != "rvq":
        raise UserError("--init starts the RVQ from a model directory's; the other networks train from scratch")
    if not Path(args.config).is_file():
        raise UserError(f"--config {args.config}: no such file, here or among the installation's configs "
                        f"({', '.join(p.stem for p in sorted((INSTALLATION / 'configs').glob('*.json')))})")
    _check_device(args.device)
    from .dataset import load_dataset
    load_dataset(args.data, "train")  # a missing or unprepared dataset is refused before the run folder is made
    try:
        out = train(args.kind, args.config, args.data, args.out, rvq=args.rvq, device=args.device, stop_at=args.stop_at,
                    init=args.init)
    except TrainingInterrupted as err:
        print(f"momask train {args.kind}: {err}", file=sys.stderr)
        raise SystemExit(130) from None
    if os.environ.get("RANK", "0") == "0":
        print(f"momask train {args.kind}: {out}")


def _model_and_encoder(args):
    """(model directory, models, text encoder): loaded once per command, which takes a few seconds."""
    import torch
    from .checkpoint import load_model_dir, resolve_model_dir
    from .text_encoders import get_text_encoder
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    path = resolve_model_dir(args.model)
    print(f"momask {args.command}: loading the model {path}", file=sys.stderr, flush=True)
    models = load_model_dir(path, args.device, args.precision)
    return path, models, get_text_encoder(models.config["text_encoder"]["name"], device=args.device,
                                           clip_path=args.clip_path)


def _check_model_dir(path: str | None, what: str) -> None:
    """A model directory given by the user holds a config.json (None: the default model)."""
    if path is not None and not (Path(path) / "config.json").is_file():
        problem = "not a model directory (no config.json)" if Path(path).is_dir() else "no such folder"
        raise UserError(f"{what} {path}: {problem}, here or among the installation's models")


def _check_clip_path(path: str | None) -> None:
    if path is not None and not Path(path).expanduser().is_file():
        raise UserError(f"--clip-path {path}: no such file")


def _checked_request(args) -> None:
    """What can be refused before the model loads (the numbers are checked while parsing): outputs, device,
    model directory; a seed is drawn when none is given, so that it can be printed."""
    from .motion_export import check_output_path
    for out in args.out:
        check_output_path(out)
    _check_device(args.device)
    _check_model_dir(args.model, "--model")
    _check_clip_path(args.clip_path)
    if args.seed is None:
        import secrets
        args.seed = secrets.randbelow(MAX_SEED + 1)


def _progress_bar(description: str):
    """A tqdm bar on stderr and the progress(step, total) callback that drives it."""
    from tqdm import tqdm
    bar = tqdm(desc=description, unit="step", file=sys.stderr)

    def progress(step: int, total: int) -> None:
        bar.total = total
        bar.update(step - bar.n)
    return bar, progress


def _write_results(args, motions, info: dict) -> None:
    """Every candidate to every --out file (NAME_k.EXT for several candidates), each with its own seed."""
    from tqdm import tqdm
    from .motion_export import candidate_paths, write_motion
    files = [(path, k) for out in args.out for k, path in enumerate(candidate_paths(out, len(motions)))]
    for path, k in tqdm(files, desc="writing", unit="file", file=sys.stderr):
        extra = {"candidate": k + 1} if len(motions) > 1 else {}
        write_motion(path, motions[k].joints, motions[k].features, motions[k].contacts,
                     {**info, "seed": args.seed + k, **extra})
    print("\n".join(str(path) for path, _ in files))


def _sample_and_write(args, description: str, sample, info: dict) -> None:
    """The checked request's model loaded, `sample(models, encoder, progress) -> motions` run under a progress
    bar (feet locked by `sample` when asked), the motions written to every --out. Candidate k's seed is printed:
    `--seed` that number alone makes the same motion."""
    from .timebase import FPS
    _checked_request(args)
    path, models, encoder = _model_and_encoder(args)
    bar, progress = _progress_bar(description)
    with bar:
        motions = sample(models, encoder, progress)
    for k, motion in enumerate(motions):
        which = f"candidate {k + 1} of {len(motions)}" if len(motions) > 1 else "motion"
        print(f"momask {args.command}: {which}: {motion.length / FPS:g} s, seed {args.seed + k}", file=sys.stderr)
    _write_results(args, motions, {"prompt": args.prompt.strip(), "model": str(path), **info})


def _locked(motion):
    """A generated motion with its feet planted (core.footlock) and the features and contacts of the locked
    joints, so that an .npz describes the joints written beside it."""
    import dataclasses
    import numpy as np
    from .features import CONTACTS, joints_to_features
    from .footlock import lock_feet
    from .timebase import FPS
    joints = lock_feet(motion.joints, motion.contacts, fps=FPS).astype(np.float32)
    features = joints_to_features(np.concatenate([joints, joints[-1:]]).astype(np.float64)).astype(np.float32)
    return dataclasses.replace(motion, joints=joints, features=features, contacts=features[:, CONTACTS] > 0.5)


def _generate(args):
    from .checkpoint import resolve_model_dir
    from .limits import requested_frames
    from .prompt_generation import generate_prompt
    prompt = args.prompt.strip()
    if not prompt:
        raise UserError("the prompt is empty; describe the motion in words, e.g. \"a person walks forward\"")
    try:
        frames = requested_frames(args.seconds or 0)
    except ValueError as err:
        raise UserError(f"--seconds {args.seconds:g} is out of range: {err}") from None

    def sample(models, encoder, progress):
        known = KnownActions.load(resolve_model_dir(args.model))
        motions, understood = generate_prompt(models, encoder, prompt, frames, candidates=args.candidates,
                                              seed=args.seed, known=known, steps=args.steps,
                                              cond_scale=args.guidance, progress=progress)
        for k, part in enumerate(understood):
            where = f"part {k + 1} \"{part.prompt}\": " if len(understood) > 1 else ""
            if part.closest:
                print(f"momask generate: {where}{understood_line(part.closest, known)}", file=sys.stderr)
        return [_locked(m) for m in motions] if args.foot_lock else motions
    _sample_and_write(args, "generating", sample, {})


def _actions(args):
    from .checkpoint import resolve_model_dir
    path = resolve_model_dir(args.model)
    known = KnownActions.load(path)
    if known is None:
        raise UserError(f"{path} lists no known actions (models trained here list them; the released "
                        f"checkpoints know HumanML3D's wide vocabulary)")
    for name, clips, examples in zip(known.names, known.clips, known.examples):
        print(f"{name} ({clips} training clips): " + " | ".join(f'"{e}"' for e in examples))


def _read_source(path: str):
    """An inpainting source, checked as `inpaint` checks it: .npy of features (T, 263) or joints (T, 22, 3),
    .npz with either (features first), or any humanoid .bvh (converted to the 22 joints at 20 fps)."""
    from .inpainting import source_motion
    if Path(path).suffix.lower() == ".bvh":
        from .mocap import bvh_to_smpl_joints
        source, report = bvh_to_smpl_joints(path)
        print(f"momask inpaint: {report.splitlines()[0]}", file=sys.stderr)
    else:
        source = _load_array(path, ("features", "joints"))
    try:
        source_motion(source)
    except ValueError as err:
        raise UserError(f"{path}: {str(err).removeprefix('inpaint: ')}") from None
    return source


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
    from .inpainting import check_ranges, inpaint, lock_feet_in_ranges
    source = _read_source(args.source)
    ranges = check_ranges(args.range, len(source))

    def sample(models, encoder, progress):
        motions = inpaint(models, encoder, source, ranges, args.prompt.strip(), candidates=args.candidates,
                          seed=args.seed, steps=args.steps, cond_scale=args.guidance, progress=progress)
        return [lock_feet_in_ranges(m, source) for m in motions] if args.foot_lock else motions
    _sample_and_write(args, "inpainting", sample, {"source": str(args.source), "ranges": np.array(ranges)})


def _serve(args):
    """The worker's own options (core.worker.options_parser, which Blender's requests rely on) checked as
    generate's are, before it announces itself ready."""
    from .worker import serve
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    _check_device(args.device)
    _check_model_dir(args.model, "--model")
    _check_clip_path(args.clip_path)
    serve(args.threads, args.model, args.device, args.precision, args.clip_path)


OUTPUT_HELP = """output formats (by the --out file's extension):
  .npy   joint positions (T, 22, 3): metres, y up, facing +z, 20 fps
  .npz   features (T, 263), joints, contacts (T, 4), prompt, seed, model (and source, ranges when inpainting)
  .bvh   the 22-joint SMPL template skeleton (momask-codes' bone names), metres, y up, 20 fps
  .gif   stick-figure preview
  .mp4   stick-figure preview, where ffmpeg is installed
With --candidates K > 1 every --out file gets a suffix per candidate: walk.bvh -> walk_1.bvh ... walk_K.bvh;
candidate k has seed N + k - 1 (printed, and in its .npz): that seed alone makes the same motion.
With --foot-lock the .npz features and contacts are those of the locked joints written beside them."""


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
    parser.add_argument("--seed", type=_whole(0, MAX_SEED), default=None, metavar="N",
                        help=f"random seed, 0 to {MAX_SEED}: the same seed and options give the same motion; "
                             "candidate k gets seed N + k - 1, printed (default: a new one)")
    parser.add_argument("--candidates", type=_whole(1), default=1, metavar="K",
                        help="how many different motions to make (default 1)")
    parser.add_argument("--model", default=None, metavar="DIR", type=_bundled("models"),
                        help="model directory, or the name of one under the installation's models/ (default: "
                             "models/default, the shipped model)")
    parser.add_argument("--steps", type=_whole(1), default=10, metavar="N",
                        help="decoding steps of the masked transformer: more is slower and finer (default 10)")
    parser.add_argument("--guidance", type=_number(0), default=4.0, metavar="S",
                        help="classifier-free guidance scale >= 0: how closely the motion follows the prompt "
                             "(default 4; 1 is no guidance, 0 ignores the prompt)")
    parser.add_argument("--foot-lock", action="store_true",
                        help="pin the feet while they stand (two-bone IK on the legs); inpaint locks inside the "
                             "ranges only, frames outside stay exactly as they were")
    parser.add_argument("--threads", type=_whole(1), default=None, metavar="N",
                        help="torch CPU threads (default: all cores)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N or mps (default: cpu)")
    add_precision_option(parser)
    add_clip_path_option(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="momask", description="MoMask text-to-motion: generating and editing motion, data, training, evaluation "
                                   "and the worker Blender talks to.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("features", help="joints (T,22,3) -> HumanML3D 263-d features (T-1,263)")
    p.add_argument("joints", type=_file(".npy", ".npz"),
                   help="input .npy of joint positions in metres, y up, 20 fps (or an .npz with a 'joints' array)")
    p.add_argument("out", type=_file(".npy", output=True), help="output .npy of float32 features")
    p.set_defaults(func=_features)

    p = sub.add_parser("joints", help="263-d features (T,263) -> joints (T,22,3) (recover_from_ric)")
    p.add_argument("features", type=_file(".npy", ".npz"),
                   help="input .npy of features, not normalised (or an .npz with a 'features' array)")
    p.add_argument("out", type=_file(".npy", output=True), help="output .npy of float32 joint positions")
    p.set_defaults(func=_joints)

    p = sub.add_parser("bvh2joints", help="any humanoid BVH -> SMPL-22 joints (metres, y up, 20 fps)")
    p.add_argument("bvh", type=_file(".bvh"), help="input .bvh file")
    p.add_argument("out", type=_file(".npy", output=True), help="output .npy of shape (T, 22, 3)")
    p.add_argument("--fps", type=_number(0, above=True), default=20.0,
                   help="output frame rate (default 20, MoMask's rate)")
    p.add_argument("--up", choices=["auto", "y", "z"], default="auto",
                   help="the file's up axis (default: detected on the whole clip: the axis the body stands along "
                        "in most frames and whose floor stays put)")
    p.add_argument("--scale", type=_number(0, above=True), default=None,
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
    source.add_argument("--archive", default=None, type=_file(),
                        help="bandai-namco-motion.tar.xz (default: ../shared/data/bandai-namco-motion.tar.xz)")
    source.add_argument("--bvh-dir", default=None, metavar="DIR", type=_folder,
                        help="a folder of .bvh files (sub-folders included), each captioned in --captions")
    p.add_argument("--more-archive", default=None, metavar="FILE", type=_file(),
                   help="more-mocap.tar.xz, whose annotated segments join the Bandai-Namco clips (default: "
                        "../shared/data/more-mocap.tar.xz)")
    p.add_argument("--bandai-only", action="store_true",
                   help="convert only the Bandai-Namco archive (default --out: data/bandai)")
    p.add_argument("--captions", default=None, metavar="FILE", type=_file(".csv", ".jsonl"),
                   help="with --bvh-dir: .csv or .jsonl mapping each BVH's path relative to DIR to one or more "
                        "captions (format below)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="dataset directory (default: data/default, with --bandai-only data/bandai; required with "
                        "--bvh-dir)")
    p.add_argument("--workers", type=_whole(1), default=None, help="processes to convert with (default: all cores)")
    p.add_argument("--up", choices=["auto", "y", "z"], default="auto",
                   help="with --bvh-dir: the files' up axis (default: detected clip by clip, as bvh2joints does)")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is up to date")
    p.set_defaults(func=_prepare_data)

    p = sub.add_parser("render", help="stick-figure preview (.gif, or .mp4 where ffmpeg exists)")
    p.add_argument("motion", type=_file(".npy", ".npz"),
                   help=".npy of joints (T,22,3) or features (T,263), or an .npz written by momask generate/inpaint")
    p.add_argument("out", type=_file(".gif", ".mp4", output=True), help="output .gif or .mp4")
    p.add_argument("--fps", type=_number(0, above=True), default=20.0, help="frame rate of the motion (default 20)")
    p.add_argument("--title", default=None, help="caption drawn above the figure")
    p.set_defaults(func=_render)

    p = sub.add_parser("import-momask", help="convert a released momask-codes checkpoint tree to our format")
    p.add_argument("checkpoints", type=_folder, help="the released checkpoints/t2m folder")
    p.add_argument("out", help="output model directory")
    p.set_defaults(func=_import_momask)

    p = sub.add_parser("evaluate", help="R-precision, FID, MM-Dist, diversity, MultiModality, RVQ MPJPE")
    p.add_argument("model_dir", type=_bundled("models"),
                   help="the model directory to score, or the name of one under the installation's models/")
    p.add_argument("--evaluator", default=None, type=_folder, help="evaluator folder (default: MODEL_DIR/evaluator)")
    p.add_argument("--data", default="data/default", type=_bundled("data"),
                   help="prepared dataset (default: data/default)")
    p.add_argument("--split", choices=["train", "val", "test"], default="test", help="split to score (default: test)")
    p.add_argument("--repeats", type=_whole(1), default=None,
                   help="repetitions for the 95%% intervals (default 20)")
    p.add_argument("--mm-samples", type=_whole(0), default=None,
                   help="captions generated many times for MultiModality (default 100; 0 skips it)")
    p.add_argument("--mm-repeats", type=_whole(2), default=None,
                   help="generations per MultiModality caption (default 30)")
    p.add_argument("--limit", type=_whole(1), default=None, help="score a fixed random subset of this many clips")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 2 repetitions, 64 clips, MultiModality 3 generations of 4 captions")
    p.add_argument("--seed", type=_whole(0, MAX_SEED), default=0,
                   help="seed of generation, batching and pairs (default 0)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N or mps (default: cpu)")
    add_precision_option(p)
    p.add_argument("--out", default=None, type=_file(".csv", ".md", output=True),
                   help="also write the table to this .csv or .md file")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("train", help="train a network (rvq, mask, residual, length, evaluator; also under torchrun) "
                                     "or assemble trained parts into a model directory")
    p.add_argument("kind", choices=["rvq", "mask", "residual", "length", "evaluator", "assemble"])
    p.add_argument("--config", type=_bundled("configs", ".json"),
                   help="training config .json, or the name of one under the installation's configs/ (default, "
                        "cpu-3h, tiny)")
    p.add_argument("--data", default="data/default", type=_bundled("data"),
                   help="prepared dataset (default: data/default)")
    p.add_argument("--out", help="run directory (a checkpoint there is resumed); assemble: the model directory")
    p.add_argument("--rvq", type=_folder, help="the trained RVQ run directory (mask/residual training and assemble)")
    p.add_argument("--mask", type=_folder, help="assemble: the trained masked-transformer run directory")
    p.add_argument("--residual", type=_folder,
                   help="assemble: the trained residual-transformer run directory (optional)")
    p.add_argument("--length", type=_folder, help="assemble: the trained length-estimator run directory (optional)")
    p.add_argument("--evaluator", type=_folder,
                   help="assemble: an evaluator run directory, copied to OUT/evaluator (optional)")
    p.add_argument("--device", default=None,
                   help="torch device: cpu, cuda, cuda:N or mps (default: this process's GPU if any, else cpu)")
    p.add_argument("--stop-at", type=_whole(1), default=None,
                   help="pause after this step (checkpointed; rerun to go on)")
    p.add_argument("--init", type=_folder, default=None, metavar="MODEL_DIR",
                   help="rvq: start from this model directory's RVQ weights (fine-tuning it on --data) instead of "
                        "fresh ones")
    p.set_defaults(func=_train)

    sampling = _sampling_options()
    p = sub.add_parser(
        "generate", parents=[sampling], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="text -> motion, written as .npy, .npz, .bvh, .gif or .mp4 (by the --out file's extension)",
        description="Generate motion from a prompt with a MoMask model; write it by the extension of each\n"
                    "--out file.", epilog=OUTPUT_HELP)
    p.add_argument("prompt", help='what the character does, in words, e.g. "a person waves with the right hand"')
    p.add_argument("--seconds", type=_number(0), default=4.0, metavar="S",
                   help="duration in seconds, 0.4 to 9.8 (20 fps); 0 lets the model's length estimator choose "
                        "(default 4)")
    p.set_defaults(func=_generate)

    p = sub.add_parser(
        "inpaint", parents=[sampling], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="regenerate frame ranges of a motion (.npy, .npz, .bvh) from a prompt; the rest is kept",
        description="Regenerate frame ranges of an existing motion under a prompt: frames outside the ranges\n"
                    "are kept exactly and the edges blend in. Writes by the extension of each --out file.",
        epilog=OUTPUT_HELP)
    p.add_argument("source", type=_file(".npy", ".npz", ".bvh"),
                   help="the motion to edit: .npy of joints (T, 22, 3) or features (T, 263) at 20 fps, .npz written "
                        "by momask generate/inpaint, or any humanoid .bvh (converted to the 22 joints at 20 fps)")
    p.add_argument("prompt", help='what happens inside the ranges; "" for none (the model fills them from the '
                                  'context)')
    p.add_argument("--range", action="append", type=_frame_range, required=True, metavar="START:STOP",
                   help="frames to regenerate, START included, STOP not, counted from 0 at 20 fps; repeat for "
                        "several ranges")
    p.set_defaults(func=_inpaint)

    p = sub.add_parser("actions", help="the actions a model learned, with example prompts")
    p.add_argument("--model", default=None, help="model directory (default: the default model)")
    p.set_defaults(func=_actions)

    p = sub.add_parser("serve", parents=[options_parser()],
                       help="the worker Blender talks to: JSON lines on stdin/stdout (as python -m core.worker)")
    p.set_defaults(func=_serve)
    return parser


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # argparse printed the usage and one line (or the help): its code, as below
        return done.code
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
