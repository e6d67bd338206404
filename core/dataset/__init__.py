"""The training dataset that `momask prepare-data` writes, and its reader. Numpy only (training wraps it).

Layout of a dataset directory (all arrays float32, clips concatenated in index order):
- features.npy (rows, 263) and features_mirrored.npy (rows, 263): HumanML3D features, not normalised; a clip
  is rows [start, start + length) of both. The mirrored rows are the features of the mirrored joints.
- joints.npy (frames, 22, 3): the SMPL-22 joints the features were computed from (metres, y up, 20 fps, before
  HumanML3D's re-targeting); a clip has length + 1 frames from joint_start.
- index.json: fps and per clip name, dataset, content, style, split, start, length, joint_start and its
  captions. Bandai-Namco clips (dataset 1, 2) have content and style labels and captions generated from them
  at preparation (fixed seed per clip); clips of a BVH folder (dataset FREE_TEXT_DATASET) have the captions
  given with them, their first caption as content (so that clips described alike share a group), style ""
  and their file's path relative to the folder.
- splits/{train,val,test}.txt: clip names, each followed by its mirrored copy "M<name>" (HumanML3D's naming);
  a mirrored copy is always in its source clip's split.
- mean.npy, std.npy: MoMask's statistics of the train split and its mirrors (what the networks normalise with);
  mean_raw.npy, std_raw.npy: HumanML3D's (std averaged within each group, no feat_bias).
- manifest.json: what it was built from, counts and the problems met; written last.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .captions import make_caption, mirror_caption, mirror_content
from ..features import mirror_joints

FEATURES, FEATURES_MIRRORED, JOINTS = "features.npy", "features_mirrored.npy", "joints.npy"
CLIP_INDEX, MANIFEST, SPLIT_DIR = "index.json", "manifest.json", "splits"
MEAN, STD, MEAN_RAW, STD_RAW = "mean.npy", "std.npy", "mean_raw.npy", "std_raw.npy"
SPLITS = ("train", "val", "test")
MIRROR_PREFIX = "M"
FREE_TEXT_DATASET = 0  # clips that came with their own captions instead of labels
MORE_MOCAP_DATASET = 3  # segments of the more-mocap archive, captioned in core/dataset/more_mocap.jsonl
COMPOSED_DATASET = 4  # a locomotion clip with the arms of an arm-action clip (core.dataset.composition)


@dataclass(frozen=True)
class Clip:
    """One training sample: a clip or its mirrored copy (name "M..."), labels already mirrored."""
    name: str
    features: np.ndarray  # (length, 263) float32, not normalised
    joints: np.ndarray    # (length + 1, 22, 3) float32
    dataset: int
    content: str
    style: str
    captions: tuple[str, ...]
    mirrored: bool

    @property
    def length(self) -> int:
        return len(self.features)

    @property
    def action(self) -> str:
        return action_of(self.content)


def action_of(content: str) -> str:
    """The action a content label shows, as the prompt benchmark and balanced sampling group clips:
    dataset-1's long and short dances are one action, and all composed clips ("walk+wave-left-hand") one."""
    if "+" in content:
        return "composed"
    return "dance" if content in ("dance-long", "dance-short") else content


class ClipDataset:
    """The clips of one split (with their mirrored copies unless mirror=False), read lazily from disk."""

    def __init__(self, root, split: str, mirror: bool = True):
        self.root = Path(root)
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
        if not (self.root / MANIFEST).is_file():
            raise FileNotFoundError(f"{self.root} is not a prepared dataset (no {MANIFEST}; run "
                                    f"`momask prepare-data --out {self.root}`)")
        clips = {c["name"]: c for c in json.loads((self.root / CLIP_INDEX).read_text())["clips"]}
        names = (self.root / SPLIT_DIR / f"{split}.txt").read_text().split()
        self.names = [n for n in names if mirror or not n.startswith(MIRROR_PREFIX)]
        self._records = [clips[n.removeprefix(MIRROR_PREFIX)] for n in self.names]
        self._features = np.load(self.root / FEATURES, mmap_mode="r")
        self._mirrored = np.load(self.root / FEATURES_MIRRORED, mmap_mode="r")
        self._joints = np.load(self.root / JOINTS, mmap_mode="r")
        self.lengths = np.array([r["length"] for r in self._records])
        self.mean, self.std = np.load(self.root / MEAN), np.load(self.root / STD)

    def __len__(self) -> int:
        return len(self.names)

    def _is_mirror(self, i: int) -> bool:
        return self.names[i].startswith(MIRROR_PREFIX)

    def content(self, i: int) -> str:
        content = self._records[i]["content"]
        return mirror_content(content) if self._is_mirror(i) else content

    def action(self, i: int) -> str:
        return action_of(self.content(i))

    def __getitem__(self, i: int) -> Clip:
        record, mirrored = self._records[i], self._is_mirror(i)
        rows = slice(record["start"], record["start"] + record["length"])
        joints = np.array(self._joints[record["joint_start"]:record["joint_start"] + record["length"] + 1])
        if mirrored:
            joints = mirror_joints(joints)
        captions = record["captions"]
        return Clip(name=self.names[i], features=np.array((self._mirrored if mirrored else self._features)[rows]),
                    joints=joints, dataset=record["dataset"], content=self.content(i), style=record["style"],
                    captions=tuple(mirror_caption(c) for c in captions) if mirrored else tuple(captions),
                    mirrored=mirrored)

    def fresh_caption(self, i: int, rng: np.random.Generator) -> str:
        """A caption of sample i (side already mirrored) for caption augmentation: newly generated from its
        labels, or drawn from its own captions where it came with free text."""
        record = self._records[i]
        if record["dataset"] in (FREE_TEXT_DATASET, MORE_MOCAP_DATASET, COMPOSED_DATASET):
            caption = record["captions"][rng.integers(len(record["captions"]))]
            return mirror_caption(caption) if self._is_mirror(i) else caption
        return make_caption(self.content(i), record["style"], rng)


def load_dataset(path, split: str, mirror: bool = True) -> ClipDataset:
    """The prepared dataset at `path`, one split ('train', 'val' or 'test')."""
    return ClipDataset(path, split, mirror=mirror)
