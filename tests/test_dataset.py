"""`momask prepare-data` and the dataset reader: splits, statistics, cache, damaged archives, the real archive."""
import json
import os
import re
from collections import Counter

import numpy as np
import pytest

from conftest import REPO, shared_path
from core.cli import main
from core.dataset import load_dataset
from core.dataset.prepare import (COMPOSED_CLIPS, MIN_CLIPS_TO_HOLD_OUT, assign_splits, feature_statistics,
                                  prepare_data)
from core.features import recover_from_ric
from tests.support.files import annotated, bandai_bvh, make_archive, write_archive

# HumanML3D's feature groups written out as numbers (docs/momask.md, "Motion features") and MoMask's feat_bias groups.
GROUPS = [(0, 1), (1, 3), (3, 4), (4, 67), (67, 193), (193, 259), (259, 263)]
BIASED = [(0, 1), (1, 3), (3, 4), (259, 263)]


def direct_statistics(rows: np.ndarray):
    mean, std = rows.mean(0), rows.std(0)
    for a, b in GROUPS:
        std[a:b] = std[a:b].mean()
    momask = std.copy()
    for a, b in BIASED:
        momask[a:b] /= 5
    return mean, std, momask


# --- splits -------------------------------------------------------------------------------------------------

def synthetic_strata(seed=0):
    rng = np.random.default_rng(seed)
    strata = [(2, f"c{c}", f"s{s}") for c in range(10) for s in range(7) for _ in range(rng.integers(15, 90))]
    strata += [(1, f"d{c}", f"s{s}") for c in range(5) for s in range(15)]  # singletons, 15 per content
    strata += [(1, "rare", "normal")] * 2  # a content too small to hold out
    return strata


def test_splits_are_stratified_and_deterministic():
    strata = synthetic_strata()
    splits = assign_splits(strata, seed=5)
    assert splits == assign_splits(strata, seed=5)
    assert splits != assign_splits(strata, seed=6)
    by_stratum = {}
    for stratum, split in zip(strata, splits):
        by_stratum.setdefault(stratum, Counter())[split] += 1
    for stratum, counts in by_stratum.items():
        n = sum(counts.values())
        if stratum[1] == "rare":
            assert counts == {"train": n} and n < MIN_CLIPS_TO_HOLD_OUT
        else:  # every stratum gets its share to within 1.2 clips
            for split, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
                assert abs(counts[split] - share * n) <= 1.2 + 1e-9, (stratum, counts)
    for content in range(5):  # singleton strata of one content are still shared out across the splits
        counts = Counter(s for st, s in zip(strata, splits) if st[1] == f"d{content}")
        assert counts["train"] >= 11 and counts["val"] >= 1 and counts["test"] >= 1
    total = Counter(splits)
    assert abs(total["val"] / len(strata) - 0.1) < 0.01 and abs(total["test"] / len(strata) - 0.1) < 0.01


def test_statistics_match_humanml3d_mean_variance():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(500, 263)) * rng.uniform(0.01, 3, 263) + rng.uniform(-1, 1, 263)
    for got, expected in zip(feature_statistics(rows), direct_statistics(rows)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    # the groups really were averaged: one value per group
    _, std_raw, std = feature_statistics(rows)
    assert [len(np.unique(std_raw[a:b])) for a, b in GROUPS] == [1] * 7
    np.testing.assert_allclose(std[259:], std_raw[259:] / 5)


# --- a small archive made here ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("small")
    archive, out = make_archive(tmp_path), tmp_path / "out"
    return archive, out, prepare_data(archive, out, workers=2)


def test_damaged_members_are_named_and_the_rest_converts(small_dataset):
    _, out, manifest = small_dataset
    assert manifest["clips"] == 2
    problems = "\n".join(manifest["problems"])
    assert len(manifest["problems"]) == 3
    assert ("dataset-2_walk_youthful_001.bvh: skipped: dataset/Bandai-Namco-Research-Motiondataset-2/data/"
            "dataset-2_walk_youthful_001.json labels it run/youthful, its file name says walk/youthful") in problems
    assert re.search(r"dataset-2_run_normal_001.bvh: skipped: line \d+: frame \d+ has \d+ values", problems)
    assert "dataset-2_run_normal_002.json: skipped: no dataset-2_run_normal_002.bvh" in problems
    train = load_dataset(out, "train")
    assert sorted(train.names) == ["Mdataset-2_walk_normal_001", "Mdataset-2_wave-left-hand_active_001",
                                   "dataset-2_walk_normal_001", "dataset-2_wave-left-hand_active_001"]


def test_clips_hold_features_mirrors_and_labels(small_dataset):
    _, out, _ = small_dataset
    data = load_dataset(out, "train")
    clips = {data[i].name: data[i] for i in range(len(data))}
    wave, mirrored = clips["dataset-2_wave-left-hand_active_001"], clips["Mdataset-2_wave-left-hand_active_001"]
    assert wave.length == 49 and wave.features.shape == (49, 263) and wave.joints.shape == (50, 22, 3)
    assert wave.features.dtype == np.float32 and np.isfinite(wave.features).all()
    assert (wave.content, mirrored.content, wave.style) == ("wave-left-hand", "wave-right-hand", "active")
    assert all("left" in c and "right" not in c for c in wave.captions) and len(wave.captions) == 3
    assert all("right" in c and "left" not in c for c in mirrored.captions)
    # the left wrist (joint 20) waves in the clip, the right one (21) in its mirror
    assert wave.joints[:, 20, 1].mean() > wave.joints[:, 21, 1].mean() + 0.3
    assert mirrored.joints[:, 21, 1].mean() > mirrored.joints[:, 20, 1].mean() + 0.3
    np.testing.assert_allclose(mirrored.joints[:, :, 0], -wave.joints[:, [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10,
                                                                            12, 14, 13, 15, 17, 16, 19, 18,
                                                                            21, 20], 0])
    walk = clips["dataset-2_walk_normal_001"]
    assert walk.length == 59 and walk.features[:, 2].mean() > 0.02  # moving forward (+z) every frame
    rng = np.random.default_rng(0)
    fresh = {data.fresh_caption(data.names.index(mirrored.name), rng) for _ in range(20)}
    assert len(fresh) > 5 and all("right" in c for c in fresh)
    assert len(load_dataset(out, "train", mirror=False)) == 2 and len(load_dataset(out, "test")) == 0


def test_statistics_files_are_those_of_the_train_split_and_its_mirrors(small_dataset):
    _, out, _ = small_dataset
    data = load_dataset(out, "train")
    rows = np.concatenate([data[i].features for i in range(len(data))]).astype(np.float64)
    for name, expected in zip(("mean", "std_raw", "std"), direct_statistics(rows)):
        saved = np.load(out / f"{name}.npy")
        assert saved.dtype == np.float32 and saved.shape == (263,)
        np.testing.assert_allclose(saved, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(np.load(out / "mean_raw.npy"), np.load(out / "mean.npy"))


def test_second_run_uses_the_cache_and_force_or_a_new_archive_rebuild(small_dataset, capsys):
    archive, out, manifest = small_dataset
    written = (out / "features.npy").stat().st_mtime_ns
    assert main(["prepare-data", "--archive", str(archive), "--bandai-only", "--out", str(out)]) == 0
    assert "cache up to date: 2 clips" in capsys.readouterr().out
    assert prepare_data(archive, out) == manifest
    assert (out / "features.npy").stat().st_mtime_ns == written
    prepare_data(archive, out, workers=1, force=True)
    assert (out / "features.npy").stat().st_mtime_ns > written
    rebuilt = (out / "features.npy").stat().st_mtime_ns
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert prepare_data(archive, out, workers=1)["clips"] == 2
    assert (out / "features.npy").stat().st_mtime_ns > rebuilt


def test_truncated_archive_keeps_the_clips_before_the_cut(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()  # incompressible
    members = (annotated("dataset-2_walk_normal_001", 0, 5, bandai_bvh(tmp_path / "a.bvh", 90, 4.0))
               | {"data/dataset-2_run_normal_001.bvh": noise})
    data = write_archive(tmp_path / "whole.tar.xz", members).read_bytes()
    cut = tmp_path / "cut.tar.xz"
    cut.write_bytes(data[:len(data) - 100_000])  # the cut falls inside the noise member
    manifest = prepare_data(cut, tmp_path / "out", workers=1)
    assert manifest["clips"] == 1
    assert len(manifest["problems"]) == 1
    assert re.search(r"cut.tar.xz: archive is corrupt or truncated inside member \S+/dataset-2_run_normal_001.bvh",
                     manifest["problems"][0])


def test_missing_archive_and_unprepared_folder_are_explained(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="mocap archive not found: .*nothing.tar.xz"):
        prepare_data(tmp_path / "nothing.tar.xz", tmp_path / "out")
    assert main(["prepare-data", "--archive", str(tmp_path / "nothing.tar.xz"), "--out", str(tmp_path)]) == 2
    assert "momask prepare-data: error: argument --archive: " in capsys.readouterr().err  # no such file
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        load_dataset(tmp_path, "train")


# --- the real archive -----------------------------------------------------------------------------------------

@pytest.mark.shared
@pytest.mark.slow
def test_full_archive():
    """Converts ../shared's archive into data/bandai of the clone (git-ignored), which later runs reuse."""
    archive = shared_path("data", "bandai-namco-motion.tar.xz")
    out = REPO / "data" / "bandai"
    manifest = prepare_data(archive, out)
    assert manifest["clips"] == 2776 and len(manifest["too_short"]) == 11
    assert [p.split(": ")[0].rsplit("/", 1)[1] for p in manifest["problems"]] == [
        "dataset-1_dance-long_normal_001.json"]  # the clip missing upstream
    index = json.loads((out / "index.json").read_text())["clips"]
    rows = sum(c["length"] for c in index)
    for name, shape in (("features", (rows, 263)), ("features_mirrored", (rows, 263)),
                        ("joints", (rows + len(index), 22, 3))):
        values = np.load(out / f"{name}.npy", mmap_mode="r")
        assert values.shape == shape and values.dtype == np.float32
        assert np.isfinite(values).all()
    sizes = {split: len(load_dataset(out, split)) for split in ("train", "val", "test")}
    assert sum(sizes.values()) == 2 * 2776
    assert 0.78 < sizes["train"] / (2 * 2776) < 0.82 and 0.09 < sizes["val"] / (2 * 2776) < 0.11
    for name in ("mean", "std", "mean_raw", "std_raw"):
        values = np.load(out / f"{name}.npy")
        assert values.shape == (263,) and values.dtype == np.float32 and np.isfinite(values).all()
    assert (np.load(out / "std.npy") > 0).all()
    # sides survive conversion and mirroring: a "left hand" sample raises its left wrist (20) above its right
    # wrist (21) in every clip, mirrored copies of right-hand clips included
    train = load_dataset(out, "train")
    for i in range(len(train)):
        content = train.content(i)
        if content.endswith(("left-hand", "right-hand")):
            joints = recover_from_ric(train[i].features)
            higher = (joints[:, 20, 1] - joints[:, 21, 1]).mean()
            assert higher > 0.1 if "left" in content else higher < -0.1, (train.names[i], content, higher)


@pytest.mark.shared
@pytest.mark.slow
def test_default_dataset_from_both_archives():
    """`momask prepare-data`'s default: Bandai-Namco, the annotated more-mocap segments and composed clips in
    data/default of the clone (git-ignored, reused by later runs); composed clips only in the train split."""
    out = REPO / "data" / "default"
    manifest = prepare_data(shared_path("data", "bandai-namco-motion.tar.xz"), out, more=True,
                            more_archive=shared_path("data", "more-mocap.tar.xz"))
    index = json.loads((out / "index.json").read_text())["clips"]
    by_dataset = Counter(c["dataset"] for c in index)
    assert by_dataset[1] + by_dataset[2] == 2776 and by_dataset[3] > 400 and by_dataset[4] == COMPOSED_CLIPS
    assert manifest["clips"] == len(index)
    assert {c["split"] for c in index if c["dataset"] == 4} == {"train"}
    segments = [c for c in index if c["dataset"] == 3]
    assert max(c["length"] for c in segments) <= 10 * 20 and all(len(c["captions"]) >= 3 for c in segments)
    train = load_dataset(out, "train")
    actions = Counter(train.action(i) for i in range(len(train)))
    for action in ("kick-left", "kick-right", "jump", "crouch", "crawl-forward", "salsa", "composed"):
        assert actions[action] > 0, action
    # a mirrored kick-left segment is a kick-right one: its right ankle goes higher
    for i in range(len(train)):
        if train.names[i].startswith("M" + "more/") and train.content(i) == "kick-right":
            joints = recover_from_ric(train[i].features)
            assert joints[:, 8, 1].max() > joints[:, 7, 1].max() + 0.2, train.names[i]
