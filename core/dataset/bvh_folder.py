"""`momask prepare-data --bvh-dir DIR --captions FILE`: your own BVH clips with free-text captions -> the
training dataset, in the layout of core.dataset and through the Bandai-Namco path's conversion, collection,
splits and statistics (core.dataset.prepare), so that training and evaluation read it unchanged.

The captions file maps each BVH's path relative to DIR (forward slashes, e.g. walks/slow.bvh) to one or more
captions: a CSV file with the header row "file,caption" and one row per caption, or a JSON Lines file of
{"file": ..., "captions": [...]} objects (the CAPTIONS_HELP of core.cli). Every .bvh under DIR, sub-folders
included, needs a caption: a BVH without one, a caption of a file that is not there and a BVH that does not
convert are named in the summary and skipped while the rest converts; a captions file that cannot be read
stops the run, naming its line. Mirrored copies get their captions with left and right swapped
(mirror_caption, applied by the reader).
"""
import csv
import hashlib
import io
import json
import os
from multiprocessing import Pool
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from tqdm import tqdm

from . import FREE_TEXT_DATASET
from .prepare import (CONVERSION_MODULES, ConvertedClips, code_version, convert_bvh, finish_dataset,
                      start_dataset, up_to_date)

CSV_HEADER = ["file", "caption"]
JSONL_KEYS = {"file", "captions"}
# Clip names are the files' paths (without .bvh, percent-encoded where they hold spaces) under this prefix,
# so no name starts with the mirror prefix "M" or collides with another clip's mirror.
NAME_PREFIX = "bvh/"
MODULES = CONVERSION_MODULES + (__name__,)


def clip_name(relative: str) -> str:
    """The dataset name of the clip at `relative` (e.g. walks/slow.bvh -> bvh/walks/slow)."""
    return NAME_PREFIX + quote(relative[:-len(".bvh")], safe="/")


def find_bvh_files(root: Path) -> dict[str, Path]:
    """{path relative to root with forward slashes: file} of every .bvh (any case) under root, sorted."""
    return {path.relative_to(root).as_posix(): path for path in sorted(root.rglob("*"))
            if path.suffix.lower() == ".bvh" and path.is_file()}


def _csv_rows(text: str, where: str):
    """(line, file, [caption]) per row of a file,caption CSV."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header, next_line = False, 1
    try:
        for row in reader:
            line, next_line = next_line, reader.line_num + 1  # a quoted caption may span lines
            if not any(cell.strip() for cell in row):
                continue
            if not header:
                if [cell.strip().lower() for cell in row] != CSV_HEADER:
                    raise ValueError(f"{where} line {line}: the first row must be the header \"file,caption\", "
                                     f"found {','.join(row)!r}")
                header = True
                continue
            if len(row) != 2:
                raise ValueError(f"{where} line {line}: expected 2 columns (file,caption), found {len(row)}"
                                 + ("; quote a caption that holds a comma" if len(row) > 2 else ""))
            yield line, row[0], [row[1]]
    except csv.Error as err:
        raise ValueError(f"{where} line {reader.line_num}: not valid CSV ({err})") from None


def _jsonl_rows(text: str, where: str):
    """(line, file, captions) per line of a JSON Lines file."""
    for line, source in enumerate(text.splitlines(), 1):
        if not source.strip():
            continue
        try:
            entry = json.loads(source)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where} line {line}: not JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(entry, dict) or set(entry) != JSONL_KEYS:
            found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ValueError(f"{where} line {line}: expected an object with the keys \"file\" and \"captions\", "
                             f"found {found}")
        if not isinstance(entry["captions"], list) or not entry["captions"]:
            raise ValueError(f"{where} line {line}: \"captions\" must be a list of one or more strings")
        yield line, entry["file"], entry["captions"]


def read_captions(path) -> dict[str, tuple[int, list[str]]]:
    """{BVH path relative to the folder: (line that first names it, its captions)} from a .csv or .jsonl
    captions file (see the module docstring); captions repeated for one file are kept once."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"captions file not found: {path}")
    rows = {".csv": _csv_rows, ".jsonl": _jsonl_rows}.get(path.suffix.lower())
    if rows is None:
        raise ValueError(f"{path}: unknown captions format {path.suffix or '(no extension)'!r}; use a .csv "
                         "(file,caption rows) or a .jsonl file (see momask prepare-data --help)")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # -sig: spreadsheets start their CSV with a byte-order mark
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ValueError(f"{path} line {line}: not UTF-8 text") from None
    captions: dict[str, tuple[int, list[str]]] = {}
    for line, file, texts in rows(text, str(path)):
        if not isinstance(file, str) or not file.strip():
            raise ValueError(f"{path} line {line}: no file; give the BVH's path relative to the folder")
        if not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError(f"{path} line {line}: empty or non-text caption for {file}")
        relative = PurePosixPath(file.strip().replace("\\", "/")).as_posix()
        known = captions.setdefault(relative, (line, []))[1]
        known[:] = dict.fromkeys(known + [t.strip() for t in texts])
    if not captions:
        raise ValueError(f"{path}: no captions in it")
    return captions


def _convert_file(job: tuple[str, Path]):
    """Worker: convert_bvh of one file, an unreadable file being an error like any other."""
    relative, path, up = job
    try:
        data = path.read_bytes()
    except OSError as err:
        return "error", f"{relative}: cannot be read ({err.strerror or err})"
    return convert_bvh(relative, data, up)


def _fingerprint(files: dict[str, Path], captions: Path, up: str) -> dict:
    """What decides the dataset: the BVH files (paths, sizes, mtimes), the captions file's text, the up axis, the
    code."""
    listing = hashlib.sha256()
    for relative, path in files.items():
        stat = path.stat()
        listing.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"bvh_files": listing.hexdigest()[:16], "captions": hashlib.sha256(captions.read_bytes()).hexdigest()[:16],
            "up": up, "code": code_version(MODULES)}


def prepare_bvh_folder(bvh_dir, captions, out, workers: int | None = None, force: bool = False,
                       up: str = "auto") -> dict:
    """Convert every captioned BVH under `bvh_dir` into the dataset `out` unless its manifest says it is up to
    date; returns the manifest. up: the files' up axis, or "auto" to detect it clip by clip."""
    root, captions, out = Path(bvh_dir), Path(captions), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"BVH folder not found: {root}")
    files = find_bvh_files(root)
    if not files:
        raise ValueError(f"{root}: no .bvh files in it or its sub-folders")
    captioned = read_captions(captions)
    fingerprint = _fingerprint(files, captions, up)
    manifest = up_to_date(out, fingerprint, force)
    if manifest is not None:
        return manifest
    converted = ConvertedClips()
    start_dataset(out)
    converted.problems += [f"{relative}: skipped: no caption for it in {captions}" for relative in files
                           if relative not in captioned]
    jobs = [(relative, path, up) for relative, path in files.items() if relative in captioned]
    with Pool(max(1, min(workers or os.cpu_count() or 1, len(jobs)))) as pool:
        results = list(tqdm(pool.imap(_convert_file, jobs), total=len(jobs), unit="clip", desc="converting",
                            leave=False))
    for (relative, _, _), result in zip(jobs, results):
        texts = captioned[relative][1]
        converted.add(relative, clip_name(relative), result,
                      {"dataset": FREE_TEXT_DATASET, "content": texts[0], "style": "", "file": relative},
                      texts)
    converted.problems += [f"{captions} line {line}: no {relative} in {root}"
                           for relative, (line, _) in captioned.items() if relative not in files]
    # One content for the whole folder, so the hold-out rule only keeps a dataset of fewer than
    # MIN_CLIPS_TO_HOLD_OUT clips whole in train; the splits are stratified by sub-folder.
    strata = [(FREE_TEXT_DATASET, "", PurePosixPath(c["file"]).parent.as_posix()) for c in converted.clips]
    source = {"fingerprint": fingerprint, "bvh_dir": str(root.resolve()), "captions": str(captions.resolve())}
    return finish_dataset(out, converted, source, root, strata)
