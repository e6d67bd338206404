"""`momask prepare-data --bvh-dir DIR --captions FILE`: a folder of BVH clips on two skeletons with free-text
captions becomes a dataset the trainer reads unchanged: layout, captions and their mirrors, splits, the cache,
the problems it names, the captions file errors, and tiny training runs on it."""
import json

import numpy as np
import pytest

from conftest import REPO
from core.bvh import write_bvh
from core.cli import main
from core.dataset import load_dataset
from core.dataset.bvh_folder import clip_name, prepare_bvh_folder, read_captions
from core.features import joints_to_features
from core.mocap import bvh_to_smpl_joints
from core.motion_export import write_template_bvh
from tests.support.files import bandai_bvh
from tests.support.tiny_models import single_thread  # noqa: F401 (autouse fixture)

# path under the folder -> captions; the walks are on the Bandai-Namco skeleton (cm, 30 fps), the template
# clips on the SMPL-22 template skeleton (metres, 20 fps)
CAPTIONS = {
    "walks/slow walk.bvh": ["a person walks slowly forward", "someone strolls ahead, then stops"],
    "walks/walk_2.bvh": ["a man walks forward"],
    "walks/walk_3.bvh": ["a woman walks forward at a steady pace", "a person walks ahead"],
    "walks/walk_4.bvh": ["someone walks"],
    "walks/walk_5.bvh": ["a person takes a few steps forward"],
    "waves/left_1.bvh": ["a person waves the left hand"],
    "waves/left_2.bvh": ["someone raises the left arm and waves it"],
    "waves/right_1.bvh": ["a person waves the right hand"],
    "waves/right_2.bvh": ["a man waves with his right hand"],
    "template/walk.bvh": ["a figure walks forward"],
    "template/wave.bvh": ["a figure waves with the left hand"],
    "short.bvh": ["a person twitches"],
    "broken/stick.bvh": ["a stick"],
    "walks/missing.bvh": ["a clip that is not there"],
}
GOOD = [p for p in CAPTIONS if p not in ("short.bvh", "broken/stick.bvh", "walks/missing.bvh")]
LEFT_WRIST, RIGHT_WRIST = 20, 21


def write_folder(root):
    """The BVH files of CAPTIONS (but walks/missing.bvh) and one uncaptioned file."""
    for directory in ("walks", "waves", "template", "broken"):
        (root / directory).mkdir(parents=True)
    for k, path in enumerate(["walks/slow walk.bvh"] + [f"walks/walk_{i}.bvh" for i in range(2, 6)]):
        bandai_bvh(root / path, 60 + 6 * k, 2.0 + k)
    for side in ("left", "right"):
        for i in (1, 2):
            bandai_bvh(root / f"waves/{side}_{i}.bvh", 60 + 10 * i, 0.0, wave=side[0].upper())
    bandai_bvh(root / "waves/uncaptioned.bvh", 60, 0.0, wave="L")
    bandai_bvh(root / "short.bvh", 30, 3.0)  # 20 poses at 20 fps: under MIN_FRAMES
    walk, _ = bvh_to_smpl_joints(root / "walks/walk_3.bvh")
    wave, _ = bvh_to_smpl_joints(root / "waves/left_2.bvh")
    write_template_bvh(root / "template/walk.bvh", walk)
    write_template_bvh(root / "template/wave.bvh", wave)
    write_bvh(root / "broken/stick.bvh", ["Root", "Middle", "Tip"], [-1, 0, 1],
              np.array([[0, 0, 0], [0, 10, 0], [0, 10, 0]], float), np.tile(np.eye(3), (40, 3, 1, 1)),
              np.zeros((40, 3)), frame_time=1 / 30)


def write_csv(path, captions=CAPTIONS):
    rows = [f'{file},"{text}"' if "," in text else f"{file},{text}" for file, texts in captions.items()
            for text in texts]
    path.write_text("file,caption\n" + "\n".join(rows) + "\n")
    return path


def write_jsonl(path, captions=CAPTIONS):
    path.write_text("".join(json.dumps({"file": f, "captions": t}) + "\n" for f, t in captions.items()))
    return path


def every_sample(data):
    """{name: (its split's ClipDataset, index)} over the three splits."""
    samples = {}
    for split in ("train", "val", "test"):
        dataset = load_dataset(data, split)
        samples |= {name: (dataset, i) for i, name in enumerate(dataset.names)}
    return samples


def swap_sides(text):
    return text.replace("left", "@").replace("right", "left").replace("@", "right")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("bvh")
    write_folder(root / "mocap")
    captions = write_csv(root / "captions.csv")
    manifest = prepare_bvh_folder(root / "mocap", captions, root / "data", workers=2)
    return root, manifest


def test_layout_counts_and_named_problems(prepared):
    root, manifest = prepared
    data = root / "data"
    assert manifest["clips"] == len(GOOD) == 11
    assert manifest["too_short"] == ["bvh/short (20 frames)"]
    assert len(manifest["problems"]) == 3
    uncaptioned, stick, missing = manifest["problems"]
    assert uncaptioned == f"waves/uncaptioned.bvh: skipped: no caption for it in {root / 'captions.csv'}"
    assert stick.startswith("broken/stick.bvh: skipped: torso incomplete: pelvis, head not found; no left leg")
    assert missing == f"{root / 'captions.csv'} line 17: no walks/missing.bvh in {root / 'mocap'}"  # its row
    index = json.loads((data / "index.json").read_text())
    assert index["fps"] == 20.0
    records = {c["file"]: c for c in index["clips"]}
    assert sorted(records) == sorted(GOOD)
    assert records["walks/slow walk.bvh"]["name"] == "bvh/walks/slow%20walk" == clip_name("walks/slow walk.bvh")
    rows = sum(c["length"] for c in index["clips"])
    assert np.load(data / "features.npy").shape == np.load(data / "features_mirrored.npy").shape == (rows, 263)
    assert np.load(data / "joints.npy").shape == (rows + len(GOOD), 22, 3)
    for name in ("mean", "std", "mean_raw", "std_raw"):
        values = np.load(data / f"{name}.npy")
        assert values.shape == (263,) and values.dtype == np.float32 and np.isfinite(values).all()


def test_features_are_the_shared_conversion_of_each_file(prepared):
    root, _ = prepared
    samples = {name: data[i] for name, (data, i) in every_sample(root / "data").items()}
    for path in ("walks/slow walk.bvh", "template/wave.bvh"):
        joints, _ = bvh_to_smpl_joints(root / "mocap" / path)
        clip = samples[clip_name(path)]
        np.testing.assert_allclose(clip.joints, joints, atol=1e-5)
        np.testing.assert_allclose(clip.features, joints_to_features(joints), atol=1e-4)
    # the template copy of a clip converts to the same motion as the Bandai-skeleton original
    original, copy = samples[clip_name("waves/left_2.bvh")], samples[clip_name("template/wave.bvh")]
    assert np.abs(original.joints - copy.joints).max() < 0.02


def test_captions_and_their_mirrors(prepared):
    root, _ = prepared
    samples = every_sample(root / "data")
    for path in GOOD:
        (data, i), (mirror_data, m) = samples[clip_name(path)], samples["M" + clip_name(path)]
        clip, mirrored = data[i], mirror_data[m]
        assert clip.captions == tuple(CAPTIONS[path]) and clip.content == CAPTIONS[path][0]
        assert mirrored.captions == tuple(swap_sides(t) for t in CAPTIONS[path]) and mirrored.mirrored
        assert mirrored.content == swap_sides(CAPTIONS[path][0])  # the evaluator's group of the mirror
        rng = np.random.default_rng(0)
        assert {data.fresh_caption(i, rng) for _ in range(20)} == set(clip.captions)
        assert {mirror_data.fresh_caption(m, rng) for _ in range(20)} == set(mirrored.captions)
    # the sides of the captions are the sides of the motion, in the clips and in their mirrors
    for path in ("waves/left_1.bvh", "waves/right_2.bvh", "template/wave.bvh"):
        for name in (clip_name(path), "M" + clip_name(path)):
            data, i = samples[name]
            clip = data[i]
            raised = clip.joints[:, LEFT_WRIST, 1].mean() - clip.joints[:, RIGHT_WRIST, 1].mean()
            assert raised > 0.3 if "left" in clip.captions[0] else raised < -0.3, (name, clip.captions, raised)


def test_splits_hold_each_clip_once_with_its_mirror(prepared):
    root, _ = prepared
    names = {split: (root / "data" / "splits" / f"{split}.txt").read_text().split() for split in ("train", "val",
                                                                                                   "test")}
    originals = {split: [n for n in listed if not n.startswith("M")] for split, listed in names.items()}
    for split, listed in names.items():
        assert listed == [n for o in originals[split] for n in (o, "M" + o)]
    assert sorted(sum(originals.values(), [])) == sorted(clip_name(p) for p in GOOD)
    assert (len(originals["train"]), len(originals["val"]), len(originals["test"])) == (9, 1, 1)
    # stratified by sub-folder: each folder's share of train is within 1.2 clips of 80%
    for folder, size in (("walks", 5), ("waves", 4), ("template", 2)):
        train = sum(n.startswith(f"bvh/{folder}/") for n in originals["train"])
        assert abs(train - 0.8 * size) <= 1.2, (folder, train)
    index = json.loads((root / "data" / "index.json").read_text())["clips"]
    assert all(c["name"] in originals[c["split"]] for c in index)


def test_cache_jsonl_and_a_changed_captions_file(prepared, tmp_path, capsys):
    root, manifest = prepared
    data = root / "data"
    written = (data / "features.npy").stat().st_mtime_ns
    assert main(["prepare-data", "--bvh-dir", str(root / "mocap"), "--captions", str(root / "captions.csv"),
                 "--out", str(data)]) == 0
    assert f"cache up to date: {len(GOOD)} clips" in capsys.readouterr().out
    assert (data / "features.npy").stat().st_mtime_ns == written
    # the same captions as JSON Lines give the same dataset; new captions give new captions, same features
    captions = {p: t for p, t in CAPTIONS.items() if p != "walks/missing.bvh"}
    again = prepare_bvh_folder(root / "mocap", write_jsonl(tmp_path / "captions.jsonl", captions), tmp_path / "a",
                               workers=1)
    assert again["clips"] == len(GOOD) and len(again["problems"]) == 2
    for name in ("index.json", "features.npy", "features_mirrored.npy", "mean.npy", "std.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (data / name).read_bytes(), name
    captions["walks/walk_4.bvh"] = ["someone walks to the right", "someone walks"]
    changed = prepare_bvh_folder(root / "mocap", write_jsonl(tmp_path / "captions.jsonl", captions), tmp_path / "a",
                                 workers=1)
    assert changed["fingerprint"]["captions"] != again["fingerprint"]["captions"]
    records = {c["file"]: c for c in json.loads((tmp_path / "a" / "index.json").read_text())["clips"]}
    assert records["walks/walk_4.bvh"]["captions"] == ["someone walks to the right", "someone walks"]
    assert (tmp_path / "a" / "features.npy").read_bytes() == (data / "features.npy").read_bytes()


def test_up_axis_can_be_given_for_the_whole_folder(prepared, tmp_path):
    """--up z on these y-up files: taken as told (each body then lies on its back), a dataset of its own."""
    root, manifest = prepared
    assert main(["prepare-data", "--bvh-dir", str(root / "mocap"), "--captions", str(root / "captions.csv"),
                 "--out", str(tmp_path / "z"), "--up", "z", "--workers", "1"]) == 0
    told = json.loads((tmp_path / "z" / "manifest.json").read_text())
    assert manifest["fingerprint"]["up"] == "auto" and told["fingerprint"]["up"] == "z"
    assert told["clips"] == manifest["clips"]
    assert (tmp_path / "z" / "features.npy").read_bytes() != (root / "data" / "features.npy").read_bytes()


def test_tiny_training_reads_the_folder_dataset(prepared, tmp_path):
    """rvq, mask and evaluator with the tiny config through the command line, as on the Bandai dataset; the
    transformers' caption pool holds the given captions and their mirrors."""
    root, _ = prepared
    data = root / "data"
    config = json.loads((REPO / "configs" / "tiny.json").read_text())
    for kind, iterations in (("rvq", 6), ("mask", 4), ("evaluator", 4)):
        config[kind]["iterations"] = iterations
        config[kind]["milestones"] = [iterations]
    (tmp_path / "tiny.json").write_text(json.dumps(config))
    for kind, rvq, weights in (("rvq", [], "model"), ("mask", ["--rvq", str(tmp_path / "rvq")], "model"),
                               ("evaluator", [], "evaluator")):
        assert main(["train", kind, "--config", str(tmp_path / "tiny.json"), "--data", str(data), "--out",
                     str(tmp_path / kind), "--device", "cpu", *rvq]) == 0
        last = (tmp_path / kind / "log.csv").read_text().splitlines()[-1]
        assert last.startswith(f"{config[kind]['iterations']},")
        assert (tmp_path / kind / f"{weights}.safetensors").is_file()
    (pool,) = (data / "caption_pools").iterdir()
    with np.load(pool) as f:
        captions = set(f["captions"].tolist())
    train = load_dataset(data, "train")
    given = {t for i in range(len(train)) for t in train[i].captions}
    assert captions <= given
    single = {t for i in range(len(train)) if len(train[i].captions) == 1 for t in train[i].captions}
    assert single <= captions  # every draw of a clip with one caption is that caption
    assert "a person waves the left hand" in given and "a person waves the right hand" in given


BAD_CAPTIONS = [
    ("c.csv", "walks/walk_2.bvh,a man walks\n", r"c.csv line 1: the first row must be the header \"file,caption\""),
    ("c.csv", "file,caption\n\nwalks/walk_2.bvh,a man walks, then stops\n",
     r"c.csv line 3: expected 2 columns \(file,caption\), found 3; quote a caption that holds a comma"),
    ("c.csv", "file,caption\nwalks/walk_2.bvh,a man walks\nwalks/walk_3.bvh,  \n",
     r"c.csv line 3: empty or non-text caption for walks/walk_3.bvh"),
    ("c.csv", 'file,caption\nwalks/walk_2.bvh,"a man\nwalks', r"c.csv line \d: not valid CSV"),
    ("c.csv", "file,caption\n", r"c.csv: no captions in it"),
    ("c.jsonl", '{"file": "walks/walk_2.bvh", "captions": ["a man walks"]}\n{"file": "x.bvh", "captions": [}\n',
     r"c.jsonl line 2: not JSON \(Expecting value at column 32\)"),
    ("c.jsonl", '\n{"file": "walks/walk_2.bvh", "caption": "a man walks"}\n',
     r"c.jsonl line 2: expected an object with the keys \"file\" and \"captions\", found \['caption', 'file'\]"),
    ("c.jsonl", '{"file": "walks/walk_2.bvh", "captions": "a man walks"}\n',
     r"c.jsonl line 1: \"captions\" must be a list of one or more strings"),
    ("c.jsonl", '{"file": "", "captions": ["a man walks"]}\n',
     r"c.jsonl line 1: no file; give the BVH's path relative to the folder"),
    ("c.txt", "walks/walk_2.bvh a man walks\n", r"c.txt: unknown captions format '.txt'; use a .csv"),
]


@pytest.mark.parametrize("name, text, message", BAD_CAPTIONS)
def test_unreadable_captions_files_are_named_with_their_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message):
        read_captions(tmp_path / name)


def test_bad_inputs_are_explained(tmp_path, capsys):
    (tmp_path / "latin1.csv").write_bytes("file,caption\na.bvh,a man walks\nb.bvh,un café\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.csv line 3: not UTF-8 text"):
        read_captions(tmp_path / "latin1.csv")
    (tmp_path / "mocap").mkdir()
    captions = write_csv(tmp_path / "captions.csv", {"walk.bvh": ["a person walks"]})
    cases = [
        (["--bvh-dir", str(tmp_path / "mocap"), "--captions", str(captions), "--out", str(tmp_path / "d")],
         f"{tmp_path / 'mocap'}: no .bvh files in it or its sub-folders"),
        (["--bvh-dir", str(tmp_path / "nowhere"), "--captions", str(captions), "--out", str(tmp_path / "d")],
         f"argument --bvh-dir: {tmp_path / 'nowhere'}: no such folder"),
        (["--bvh-dir", str(tmp_path / "mocap"), "--out", str(tmp_path / "d")], "--bvh-dir needs --captions FILE"),
        (["--bvh-dir", str(tmp_path / "mocap"), "--captions", str(captions)], "--bvh-dir needs --out DIR"),
        (["--captions", str(captions)], "--captions goes with --bvh-dir"),
    ]
    for args, message in cases:
        assert main(["prepare-data", *args]) == 2
        assert f"momask prepare-data: error: {message}" in capsys.readouterr().err
    (tmp_path / "mocap" / "walk.bvh").write_text("HIERARCHY\nROOT Hips\n")  # captioned, truncated
    (tmp_path / "mocap" / "jump.bvh").write_text("HIERARCHY\n")  # uncaptioned
    with pytest.raises(ValueError) as error:  # nothing converts: every problem is named
        prepare_bvh_folder(tmp_path / "mocap", captions, tmp_path / "d", workers=1)
    assert str(error.value).startswith(f"{tmp_path / 'mocap'}: no clip could be converted:\n  jump.bvh: skipped: "
                                       f"no caption for it in {captions}\n  walk.bvh: skipped: ")
    assert main(["prepare-data", "--archive", "a.tar.xz", "--bvh-dir", str(tmp_path / "mocap")]) == 2  # usage
