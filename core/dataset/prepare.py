"""`momask prepare-data`: the Bandai-Namco mocap archive -> the training dataset (docs/momask.md, "Motion features").

The tar.xz is read once as a stream (nothing extracted to disk); a process pool turns each BVH into SMPL-22
joints at 20 fps, their 263-d features and those of the mirrored motion. A clip is kept when its BVH
converts, its JSON annotation agrees with its file name and it lasts at least MIN_FRAMES; every member
that fails is named in the summary and the rest still converts. The output layout is described in
core.dataset; a manifest of the archive's size and mtime and of the conversion code makes a second run a
no-op. The steps after reading (conversion, collecting, splits, statistics, manifest) are shared with
core.dataset.bvh_folder, which prepares a folder of BVH files with free-text captions.
"""
import hashlib
import importlib
import json
import lzma
import re
import tarfile
import time
import zlib
from collections import Counter
from multiprocessing import Pool
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from ..bvh import parse_bvh
from . import (CLIP_INDEX, FEATURES, FEATURES_MIRRORED, JOINTS, MANIFEST, MEAN, MEAN_RAW,
               MIRROR_PREFIX, MORE_MOCAP_DATASET, COMPOSED_DATASET, SPLIT_DIR, SPLITS, STD, STD_RAW)
from .captions import CONTENTS, STYLES, captions_for, content_side
from .composition import ARM_ACTIONS, LOCOMOTION, SEPARATOR, compose_arms, composed_captions
from .more_mocap import DEFAULT as ANNOTATIONS, cut_segment, load_annotations
from ..features import (CONTACTS, LOCAL_VEL, RIC, ROOT_LIN_VEL, ROOT_ROT_VEL, ROOT_Y, ROT6D, joints_to_features,
                           mirror_joints)
from ..mocap import bvh_to_smpl_joints
from ..timebase import FPS

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEFAULT_ARCHIVE = SHARED_DATA / "bandai-namco-motion.tar.xz"
DEFAULT_MORE_ARCHIVE = SHARED_DATA / "more-mocap.tar.xz"
MORE_MOCAP_ROOT = "more-mocap/"  # the archive's top folder; annotation paths are relative to it
MORE_MOCAP_PREFIX = "more/"  # clip names of more-mocap segments: more/<file without .bvh>@<start seconds>
COMPOSED_PREFIX = "composed/"  # clip names of composed clips: composed/<locomotion clip>+<arm clip>
COMPOSED_CLIPS = 800  # composed clips added to the train split of the default dataset
COMPOSITION_SEED = 5150
# Shortest clip kept, in poses at 20 fps (1.2 s; 23 feature rows, 5 tokens once cut to a multiple of 4):
# MoMask's minimum for KIT-ML. HumanML3D's 40 would drop 406 of the 2,787 clips, most of them complete
# 1.3-2 s "raise hand" motions; the 11 shorter clips (0.6-1.1 s fragments) are skipped. No maximum: training
# crops long clips to its window.
MIN_FRAMES = 24
CAPTIONS_PER_CLIP = 3
CAPTION_SEED = 20240
SPLIT_SEED = 1234
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
# A content with fewer clips than this goes to train whole: holding out its only examples would leave the
# model without any (dataset-1's kick, punch, call, respond, slash, dance-short have 1-2 clips each).
MIN_CLIPS_TO_HOLD_OUT = 10
# HumanML3D's mean_variance averages the std within each group; MoMask divides the root and contact groups
# by feat_bias before saving the statistics its networks train on.
STD_GROUPS = (ROOT_ROT_VEL, ROOT_LIN_VEL, ROOT_Y, RIC, ROT6D, LOCAL_VEL, CONTACTS)
FEAT_BIAS = 5.0
FEAT_BIAS_GROUPS = (ROOT_ROT_VEL, ROOT_LIN_VEL, ROOT_Y, CONTACTS)
# Modules whose source decides the output: editing one of them invalidates the cache.
CONVERSION_MODULES = ("core.bvh", "core.bonemap", "core.mocap", "core.skeleton", "core.timebase", "core.quaternion",
                      "core.features", "core.dataset", "core.dataset.captions", "core.dataset.more_mocap",
                      "core.dataset.composition", __name__)
_CLIP_NAME = re.compile(r"dataset-(\d+)_([^_]+)_([^_]+)_(\d+)")


def _clip_arrays(joints: np.ndarray):
    """("ok", joints, features, mirrored features) as float32, or ("short", frames) under MIN_FRAMES."""
    if len(joints) < MIN_FRAMES:
        return "short", len(joints)
    features = joints_to_features(joints)
    mirrored = joints_to_features(mirror_joints(joints))
    return "ok", joints.astype(np.float32), features.astype(np.float32), mirrored.astype(np.float32)


def convert_bvh(member: str, data: bytes, up: str = "auto"):
    """Worker: BVH bytes (up axis `up`, as core.mocap takes it) -> ("ok", joints, features, mirrored features) as
    float32, ("short", frames) or ("error", message)."""
    try:
        bvh = parse_bvh(data.decode("utf-8", errors="replace"), source=member)
        return _clip_arrays(bvh_to_smpl_joints(bvh, fps=FPS, up=up)[0])
    except ValueError as err:  # BvhError and every conversion check raise ValueError
        return "error", str(err)


def convert_segments(member: str, data: bytes, segments: list) -> list:
    """Worker: BVH bytes -> one convert_bvh-style result per annotated segment of the take, cut after
    conversion to 20 fps (so every segment shares the take's unit, up axis and bone map)."""
    try:
        bvh = parse_bvh(data.decode("utf-8", errors="replace"), source=member)
        joints = bvh_to_smpl_joints(bvh, fps=FPS)[0]
        return [_clip_arrays(cut_segment(joints, segment)) for segment in segments]
    except ValueError as err:
        return [("error", str(err))] * len(segments)


def code_version(modules: tuple[str, ...] = CONVERSION_MODULES) -> str:
    """Hash of the source of every module the conversion runs."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()[:16]


def assign_splits(strata: list, seed: int = SPLIT_SEED, fractions: dict = SPLIT_FRACTIONS) -> list[str]:
    """Split name per clip, stratified by its stratum (e.g. (dataset, content, style)).

    Clips are shuffled with `seed`, grouped by stratum, and dealt in that order to the split furthest below
    its share so far: each prefix of that order is within 0.6 clips of its shares (80/10/10), so every stratum
    (and every run of consecutive strata) is within 1.2, and singleton strata are shared out too.
    Strata whose content (stratum[:2]) has fewer than MIN_CLIPS_TO_HOLD_OUT clips go to train.
    """
    names, shares = list(fractions), np.array(list(fractions.values()), dtype=np.float64)
    content_sizes = Counter(tuple(s)[:2] for s in strata)
    order = sorted(np.random.default_rng(seed).permutation(len(strata)), key=lambda i: strata[i])
    splits = [names[0]] * len(strata)
    counts = np.zeros(len(names))
    for i in order:
        if content_sizes[tuple(strata[i])[:2]] < MIN_CLIPS_TO_HOLD_OUT:
            continue
        k = int(np.argmax((counts.sum() + 1) * shares - counts))
        counts[k] += 1
        splits[i] = names[k]
    return splits


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 263) feature rows -> mean, HumanML3D's std (averaged within each group) and MoMask's std (root and
    contact groups divided by FEAT_BIAS), all float32."""
    mean = features.mean(axis=0, dtype=np.float64)
    std_raw = features.std(axis=0, dtype=np.float64)
    for group in STD_GROUPS:
        std_raw[group] = std_raw[group].mean()
    std = std_raw.copy()
    for group in FEAT_BIAS_GROUPS:
        std[group] /= FEAT_BIAS
    return mean.astype(np.float32), std_raw.astype(np.float32), std.astype(np.float32)


def _resolve_archive(archive, default: Path = DEFAULT_ARCHIVE, option: str = "--archive") -> Path:
    path = Path(archive) if archive is not None else default
    if not path.is_file():
        hint = "" if archive is not None else f" (the default; pass {option} to use another copy)"
        raise FileNotFoundError(f"mocap archive not found: {path}{hint}")
    return path.resolve()


def _fingerprint(archive: Path, more_archive: Path | None = None) -> dict:
    stat = archive.stat()
    fingerprint = {"archive_size": stat.st_size, "archive_mtime_ns": stat.st_mtime_ns, "code": code_version()}
    if more_archive is not None:
        stat = more_archive.stat()
        fingerprint |= {"more_archive_size": stat.st_size, "more_archive_mtime_ns": stat.st_mtime_ns,
                        "annotations": hashlib.sha256(ANNOTATIONS.read_bytes()).hexdigest()[:16]}
    return fingerprint


def _read_more_mocap(archive: Path, pool: Pool, problems: list[str]) -> dict:
    """Stream the more-mocap archive once, converting every annotated take in `pool`: {take's path: (member,
    its segments, async result with one convert result per segment)}. Annotated takes missing from the
    archive are named in `problems`."""
    segments_of: dict[str, list] = {}
    for segment in load_annotations():
        segments_of.setdefault(segment.file, []).append(segment)
    jobs = {}
    try:
        with tarfile.open(archive, "r|xz") as tar:
            for member in tar:
                relative = member.name.removeprefix(MORE_MOCAP_ROOT)
                if member.isfile() and relative in segments_of:
                    data = tar.extractfile(member).read()
                    jobs[relative] = (member.name, segments_of[relative],
                                      pool.apply_async(convert_segments, (member.name, data, segments_of[relative])))
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error) as err:
        problems.append(f"{archive}: archive is corrupt or truncated ({err}); kept what came before")
    problems += [f"{archive}: {MORE_MOCAP_ROOT}{path}: annotated but not in the archive"
                 for path in sorted(segments_of) if path not in jobs]
    return {path: (member, segments, job.get()) for path, (member, segments, job) in
            tqdm(sorted(jobs.items()), desc="more-mocap", unit="take", leave=False)}


def _add_more_mocap(converted: "ConvertedClips", takes: dict) -> None:
    """Every converted segment as a clip of MORE_MOCAP_DATASET: its action as content, its captions as given."""
    for path, (member, segments, results) in takes.items():
        if results[0][0] == "error":  # the take did not convert: one problem, not one per segment
            converted.add(member, path, results[0], {}, [])
            continue
        for segment, result in zip(segments, results):
            name = f"{MORE_MOCAP_PREFIX}{path.removesuffix('.bvh')}@{segment.start:g}"
            converted.add(member, name, result, {"dataset": MORE_MOCAP_DATASET, "content": segment.action,
                                                 "style": "", "file": path}, list(segment.captions))


def _read_archive(archive: Path, pool: Pool, problems: list[str]):
    """Stream the archive once: submit every BVH to the pool; collect JSON annotations and cfg label lists."""
    jobs, annotations, cfg = {}, {}, {}
    bar = tqdm(total=0, unit="clip", desc="converting", leave=False)

    def done(_):
        bar.update()

    where = "at its start"
    try:
        with tarfile.open(archive, "r|xz") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if not member.isfile() or path.suffix not in (".bvh", ".json", ".txt"):
                    continue
                where = f"inside member {member.name}"
                data = tar.extractfile(member).read()
                where = f"after member {member.name}"
                if path.suffix == ".bvh":
                    jobs[path.stem] = (member.name, pool.apply_async(convert_bvh, (member.name, data), callback=done))
                    bar.total += 1
                elif path.suffix == ".json":
                    annotations[path.stem] = (member.name, data)
                elif path.parent.name == "cfg" and (number := re.search(r"(\d+)$", path.parent.parent.name)):
                    cfg[(int(number[1]), path.stem)] = data.decode("utf-8", errors="replace").split()
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error) as err:
        problems.append(f"{archive}: archive is corrupt or truncated {where} ({err}); kept what came before")
    results = {stem: (name, job.get()) for stem, (name, job) in jobs.items()}
    bar.close()
    return results, annotations, cfg


def _check_labels(stem: str, annotation, cfg: dict) -> tuple[int, str, str]:
    """(dataset, content, style) from the clip's file name, confirmed by its JSON annotation."""
    match = _CLIP_NAME.fullmatch(stem)
    if match is None:
        raise ValueError("file name is not dataset-N_{content}_{style}_{NNN}")
    dataset, content, style = int(match[1]), match[2], match[3]
    if dataset not in CONTENTS:
        raise ValueError(f"unknown dataset {dataset} (known: {sorted(CONTENTS)})")
    content_side(content)  # raises for a content without caption phrasings
    if annotation is None:
        raise ValueError(f"its annotation {stem}.json is missing from the archive")
    member, data = annotation
    try:
        ids = json.loads(data)
        vocabularies = (cfg.get((dataset, "content_label"), CONTENTS[dataset]),
                        cfg.get((dataset, "style_label"), STYLES[dataset]))
        named = []
        for names, key in zip(vocabularies, ("content", "style")):
            if not isinstance(ids[key], int) or not 0 <= ids[key] < len(names):
                raise ValueError(f"'{key}' must be an index into the {len(names)} labels, found {ids[key]!r}")
            named.append(names[ids[key]].removeprefix(f"dataset-{dataset}_"))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{member} is not a valid annotation ({type(err).__name__}: {err})") from None
    if tuple(named) != (content, style):
        raise ValueError(f"{member} labels it {named[0]}/{named[1]}, its file name says {content}/{style}")
    return dataset, content, style


def write_dataset(out: Path, clips: list[dict], arrays: dict, strata: list | None = None,
                  splits: list[str] | None = None) -> dict:
    """Concatenate the clips' arrays into the dataset files; splits, index and statistics. `splits`: the split
    of each clip, or None to assign them by `strata`, what assign_splits stratifies by, per clip (default:
    its (dataset, content, style) labels)."""
    for filename in (JOINTS, FEATURES, FEATURES_MIRRORED):
        np.save(out / filename, np.concatenate(arrays[filename]))
    splits = splits or assign_splits(strata or [(c["dataset"], c["content"], c["style"]) for c in clips])
    (out / SPLIT_DIR).mkdir(exist_ok=True)
    for split in SPLITS:
        names = [c["name"] for c, s in zip(clips, splits) if s == split]
        (out / SPLIT_DIR / f"{split}.txt").write_text("".join(f"{n}\n{MIRROR_PREFIX}{n}\n" for n in names))
    for clip, split in zip(clips, splits):
        clip["split"] = split
    (out / CLIP_INDEX).write_text(json.dumps({"fps": FPS, "clips": clips}, indent=0))
    train = [i for i, s in enumerate(splits) if s == "train"]
    rows = np.concatenate([arrays[key][i] for key in (FEATURES, FEATURES_MIRRORED) for i in train])
    mean, std_raw, std = feature_statistics(rows)
    for filename, values in ((MEAN, mean), (STD, std), (MEAN_RAW, mean), (STD_RAW, std_raw)):
        np.save(out / filename, values)
    return dict(Counter(splits))


class ConvertedClips:
    """The clips kept so far, their arrays in index order, and what was skipped and why."""

    def __init__(self):
        self.clips: list[dict] = []
        self.arrays: dict[str, list[np.ndarray]] = {JOINTS: [], FEATURES: [], FEATURES_MIRRORED: []}
        self.too_short: list[str] = []
        self.problems: list[str] = []
        self._rows = self._joint_rows = 0
        self.started = time.perf_counter()

    def add(self, source: str, name: str, result: tuple, labels: dict, captions: list[str]) -> None:
        """Keep clip `name` if its convert_bvh `result` is good (its record: labels, rows, captions), else
        note why not under `source`, the file the problem is in."""
        status, *payload = result
        if status == "error":  # conversion messages start with the source's name already
            self.problems.append(f"{source}: skipped: {payload[0].removeprefix(source).lstrip(', :')}")
            return
        if status == "short":
            self.too_short.append(f"{name} ({payload[0]} frames)")
            return
        joints, features, mirrored = payload
        self.clips.append({"name": name, **labels, "start": self._rows, "length": len(features),
                           "joint_start": self._joint_rows, "captions": captions})
        self._rows, self._joint_rows = self._rows + len(features), self._joint_rows + len(joints)
        for key, values in ((JOINTS, joints), (FEATURES, features), (FEATURES_MIRRORED, mirrored)):
            self.arrays[key].append(values)


def up_to_date(out: Path, fingerprint: dict, force: bool) -> dict | None:
    """The manifest in `out` if it was built from what `fingerprint` describes (and not `force`), else None."""
    if force:
        return None
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("fingerprint") != fingerprint:
        return None
    print(f"cache up to date: {manifest['clips']} clips in {out}")
    return manifest


def start_dataset(out: Path) -> None:
    """Make `out` and drop its manifest: the dataset is incomplete until a new one is written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)


def finish_dataset(out: Path, converted: ConvertedClips, source: dict, where: str | Path,
                   strata: list | None = None, splits: list[str] | None = None) -> dict:
    """Write the dataset and then its manifest (`source`: the fingerprint and what was read); returns the
    manifest. Raises, naming `where` and every problem, when no clip converted."""
    if not converted.clips:
        raise ValueError(f"{where}: no clip could be converted:\n  " + "\n  ".join(converted.problems))
    manifest = {**source, "clips": len(converted.clips),
                "splits": write_dataset(out, converted.clips, converted.arrays, strata, splits),
                "too_short": converted.too_short, "problems": converted.problems,
                "seconds": round(time.perf_counter() - converted.started, 1)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    print(_report(manifest, out))
    return manifest


def _report(manifest: dict, out: Path) -> str:
    counts = manifest["splits"]
    lines = [f"{manifest['clips']} clips (x2 with mirrors) in {out}: "
             + ", ".join(f"{split} {counts.get(split, 0)}" for split in SPLITS)
             + f"; {len(manifest['too_short'])} shorter than {MIN_FRAMES} frames skipped; "
             + f"{len(manifest['problems'])} problem(s) in {manifest['seconds']:.0f} s"]
    lines += [f"  {problem}" for problem in manifest["problems"]]
    return "\n".join(lines)


def prepare_data(archive=None, out="data/default", workers: int | None = None, force: bool = False,
                 more_archive=None, more: bool = False) -> dict:
    """Convert the Bandai-Namco archive (and, with `more`, the annotated segments of the more-mocap archive,
    `more_archive` or the default) into `out` unless its manifest says it is up to date; returns the manifest."""
    archive, out = _resolve_archive(archive), Path(out)
    more_archive = _resolve_archive(more_archive, DEFAULT_MORE_ARCHIVE, "--more-archive") if more else None
    fingerprint = _fingerprint(archive, more_archive)
    manifest = up_to_date(out, fingerprint, force)
    if manifest is not None:
        return manifest
    converted = ConvertedClips()
    start_dataset(out)
    source, splits = {"fingerprint": fingerprint, "archive": str(archive)}, None
    with Pool(workers) as pool:  # None: one process per core
        results, annotations, cfg = _read_archive(archive, pool, converted.problems)
        takes = _read_more_mocap(more_archive, pool, converted.problems) if more_archive else {}
        _add_bandai(converted, results, annotations, cfg)
        if more_archive:
            _add_more_mocap(converted, takes)
            source["more_archive"] = str(more_archive)
            splits = assign_splits([(c["dataset"], c["content"], c["style"]) for c in converted.clips])
            splits += ["train"] * _add_composed(converted, splits, pool)
    return finish_dataset(out, converted, source, archive, splits=splits)


def _add_bandai(converted: ConvertedClips, results: dict, annotations: dict, cfg: dict) -> None:
    """Every converted Bandai-Namco clip whose labels check out, with captions generated from its labels."""
    for stem in sorted(results):
        member, result = results[stem]
        try:
            dataset, content, style = _check_labels(stem, annotations.get(stem), cfg)
        except ValueError as err:
            converted.problems.append(f"{member}: skipped: {err}")
            continue
        rng = np.random.default_rng([CAPTION_SEED, zlib.crc32(stem.encode())])
        converted.add(member, stem, result, {"dataset": dataset, "content": content, "style": style},
                      captions_for(content, style, CAPTIONS_PER_CLIP, rng))
    converted.problems += [f"{member}: skipped: no {stem}.bvh in the archive for this annotation"
                           for stem, (member, _) in sorted(annotations.items()) if stem not in results]


def _add_composed(converted: ConvertedClips, splits: list[str], pool: Pool, count: int = COMPOSED_CLIPS) -> int:
    """Add `count` clips composed from pairs of train clips, a locomotion and an arm action (fixed seed);
    returns how many were kept (all go to the train split, so no test clip leaks into training)."""
    rng = np.random.default_rng(COMPOSITION_SEED)
    train = [i for i, split in enumerate(splits) if split == "train"]
    bodies = [i for i in train if converted.clips[i]["content"] in LOCOMOTION]
    arms = [i for i in train if converted.clips[i]["content"] in ARM_ACTIONS]
    pairs = [(int(rng.choice(bodies)), int(rng.choice(arms))) for _ in range(count)]
    joints = converted.arrays[JOINTS]
    results = pool.starmap(_clip_arrays, [(compose_arms(joints[b], joints[a],
                                                        ARM_ACTIONS[converted.clips[a]["content"]]),) for b, a in pairs])
    before = len(converted.clips)
    for (b, a), result in zip(pairs, results):
        loco, arm = converted.clips[b]["content"], converted.clips[a]["content"]
        name = f"{COMPOSED_PREFIX}{converted.clips[b]['name']}{SEPARATOR}{converted.clips[a]['name']}"
        converted.add("composition", name, result, {"dataset": COMPOSED_DATASET, "content": f"{loco}{SEPARATOR}{arm}",
                                                    "style": converted.clips[b]["style"]},
                      composed_captions(loco, arm, CAPTIONS_PER_CLIP, rng))
    return len(converted.clips) - before
