"""`momask generate`, `momask inpaint` and `momask serve` with the default model (2 s motions, 1 thread): every
output format of one generation, the BVH re-imported by Blender's own importer and compared with the generated
joints, foot locking wired in, inpainting from each source format, and bad input refused with exit code 2 and a
one-line message (never a traceback)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import protocol
from core.cli import build_parser, main
from core.features import joints_to_features, recover_from_ric
from core.footlock import lock_feet
from core.mocap import bvh_to_smpl_joints
from core.motion_export import BVH_BONE_NAMES
from core.skeleton import JOINT_NAMES, PARENTS, TARGET_OFFSETS, rest_positions
from core.solver import HUMANML3D_TO_BLENDER

PROMPT = "a person walks forward"
SEED, FRAMES = 7, 40  # 2 s at 20 fps
FORMAT_NAMES = ("npz", "npy", "bvh", "gif")


def momask(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two candidates of one prompt, each in every format: walk_1.npz, walk_1.npy, ..., walk_2.gif."""
    out = tmp_path_factory.mktemp("generate")
    outs = [arg for ext in FORMAT_NAMES for arg in ("--out", out / f"walk.{ext}")]
    assert momask("generate", PROMPT, "--seconds", 2, "--seed", SEED, "--candidates", 2, "--threads", 1, *outs) == 0
    return out


def test_generate_writes_each_candidate_in_every_format(generated, capsys):
    motions = []
    for k in (1, 2):
        with np.load(generated / f"walk_{k}.npz") as data:
            assert data["features"].shape == (FRAMES, 263) and data["contacts"].shape == (FRAMES, 4)
            assert data["contacts"].dtype == bool and data["joints"].shape == (FRAMES, 22, 3)
            assert (str(data["prompt"]), int(data["seed"]), int(data["candidate"])) == (PROMPT, SEED + k - 1, k)
            assert str(data["model"]).endswith("models/default")
            np.testing.assert_allclose(recover_from_ric(data["features"]), data["joints"], atol=1e-5)
            joints = data["joints"]
        np.testing.assert_array_equal(np.load(generated / f"walk_{k}.npy"), joints)
        gif = Image.open(generated / f"walk_{k}.gif")
        assert gif.n_frames == FRAMES
        assert (generated / f"walk_{k}.bvh").read_text().startswith("HIERARCHY\nROOT Hips")
        motions.append(joints)
    assert np.abs(motions[0] - motions[1]).max() > 0.05  # two different candidates
    assert not (generated / "walk.npy").exists()


def blender_joints(bvh_path) -> np.ndarray:
    """(F, 22, 3) joints of a BVH as Blender 5.0's importer poses them, frame by frame, back in HumanML3D's axes."""
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.import_anim.bvh(filepath=str(bvh_path), axis_forward="-Z", axis_up="Y", rotate_mode="NATIVE",
                                   update_scene_fps=True) == {"FINISHED"}
    scene, ob = bpy.context.scene, bpy.context.active_object
    assert scene.render.fps == 20
    order = [ob.pose.bones.find(name) for name in BVH_BONE_NAMES]
    world = np.array(ob.matrix_world)
    heads, frames = np.zeros((len(ob.pose.bones), 3), dtype=np.float32), []
    for frame in range(1, FRAMES + 1):
        scene.frame_set(frame)
        ob.pose.bones.foreach_get("head", heads.ravel())
        frames.append((heads @ world[:3, :3].T + world[:3, 3])[order])
    return np.array(frames) @ HUMANML3D_TO_BLENDER  # Blender (x, -z, y) -> HumanML3D (x, y, z)


def test_bvh_reimported_in_blender_follows_the_generated_joints(generated):
    """The pelvis path and every limb's direction exactly; positions within 2 cm at the median: a rigid skeleton
    cannot follow the drift of generated bone lengths (the forearms change by centimetres over a clip), so the
    wrists are off most."""
    generated_joints = np.load(generated / "walk_1.npy").astype(np.float64)
    imported = blender_joints(generated / "walk_1.bvh")
    error = np.linalg.norm(imported - generated_joints, axis=-1)
    assert error[:, 0].max() < 1e-3
    assert np.median(error) < 0.02
    single = [j for j in range(1, 22) if (PARENTS == PARENTS[j]).sum() == 1]  # bones the solver aims exactly
    assert [JOINT_NAMES[j] for j in single if "_" not in JOINT_NAMES[j]] == ["spine2", "spine3", "head"]

    def directions(joints):
        bones = joints[:, single] - joints[:, PARENTS[single]]
        return bones / np.linalg.norm(bones, axis=-1, keepdims=True)
    angles = np.degrees(np.arccos(np.clip((directions(imported) * directions(generated_joints)).sum(-1), -1, 1)))
    assert angles.max() < 0.05


def test_candidate_k_is_the_motion_its_printed_seed_makes_alone(generated, tmp_path, capsys):
    assert momask("generate", PROMPT, "--seconds", 2, "--seed", SEED + 1, "--threads", 1,
                  "--out", tmp_path / "alone.npy") == 0
    assert f"motion: 2 s, seed {SEED + 1}" in capsys.readouterr().err
    # the same tokens; the joints to float rounding (the two candidates were decoded as one batch)
    np.testing.assert_allclose(np.load(tmp_path / "alone.npy"), np.load(generated / "walk_2.npy"), atol=1e-5)


def test_foot_lock_pins_the_feet_of_the_same_motion(generated, tmp_path):
    """The .npz of a locked motion describes the locked joints: its features and contacts are theirs."""
    assert momask("generate", PROMPT, "--seconds", 2, "--seed", SEED, "--candidates", 2, "--threads", 1,
                  "--foot-lock", "--out", tmp_path / "locked.npy", "--out", tmp_path / "locked.npz") == 0
    with np.load(generated / "walk_2.npz") as data:
        expected = lock_feet(data["joints"], data["contacts"], fps=20.0)
    locked = np.load(tmp_path / "locked_2.npy")
    np.testing.assert_allclose(locked, expected, atol=1e-5)
    assert np.abs(locked - np.load(generated / "walk_2.npy")).max() > 1e-3  # the feet did move
    with np.load(tmp_path / "locked_2.npz") as data:
        np.testing.assert_array_equal(data["joints"], locked)
        np.testing.assert_allclose(data["features"], joints_to_features(
            np.concatenate([locked, locked[-1:]]).astype(np.float64)), atol=1e-5)
        np.testing.assert_array_equal(data["contacts"], data["features"][:, -4:] > 0.5)


def test_inpaint_with_foot_lock_keeps_the_frames_outside_the_ranges_bit_for_bit(generated, tmp_path):
    """The README's example: two ranges, no prompt, --foot-lock; locking the whole edit would move kept knees, ankles
    and feet by centimetres."""
    source = generated / "walk_1.npz"
    assert momask("inpaint", source, "--range", "0:8", "--range", "28:40", "", "--foot-lock", "--seed", 3,
                  "--threads", 1, "--out", tmp_path / "edit.npz", "--out", tmp_path / "edit.npy") == 0
    with np.load(source) as before, np.load(tmp_path / "edit.npz") as after:
        kept = np.r_[8:28]
        assert after["joints"].dtype == before["joints"].dtype == np.float32
        np.testing.assert_array_equal(after["joints"][kept], before["joints"][kept])
        np.testing.assert_array_equal(after["features"][kept], before["features"][kept])  # a features source
        assert np.abs(after["joints"][:8] - before["joints"][:8]).max() > 0.02
        np.testing.assert_array_equal(np.load(tmp_path / "edit.npy"), after["joints"])


def test_inpaint_keeps_the_frames_outside_the_range(generated, tmp_path):
    source = generated / "walk_1.npz"
    assert momask("inpaint", source, "--range", "10:30", "a person waves with the right hand", "--seed", 1,
                  "--threads", 1, "--out", tmp_path / "edit.npz", "--out", tmp_path / "edit.bvh") == 0
    with np.load(source) as before, np.load(tmp_path / "edit.npz") as after:
        outside = np.r_[0:10, 30:FRAMES]
        np.testing.assert_allclose(after["joints"][outside], before["joints"][outside], atol=1e-5)
        assert np.abs(after["joints"][10:30] - before["joints"][10:30]).max() > 0.05
        assert after["ranges"].tolist() == [[10, 30]] and str(after["source"]) == str(source)
    assert blender_joints(tmp_path / "edit.bvh").shape == (FRAMES, 22, 3)


@pytest.mark.parametrize("source", ["walk_1.npy", "walk_1.bvh"])
def test_inpaint_reads_joints_and_bvh_sources(generated, tmp_path, source, capsys):
    """Two ranges, no prompt; a BVH source is read as `momask bvh2joints` reads it."""
    source = generated / source
    assert momask("inpaint", source, "--range", "0:8", "--range", "32:40", "", "--seed", 2, "--threads", 1,
                  "--out", tmp_path / "edit.npy") == 0
    original = np.load(source) if source.suffix == ".npy" else bvh_to_smpl_joints(source)[0]
    edited = np.load(tmp_path / "edit.npy")
    assert edited.shape == original.shape == (FRAMES, 22, 3)
    np.testing.assert_allclose(edited[8:32], original[8:32], atol=1e-5)
    assert np.abs(edited[:8] - original[:8]).max() > 0.02
    assert str(tmp_path / "edit.npy") in capsys.readouterr().out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """One folder of good and bad input files for the bad-input table: {d} in its rows."""
    d = tmp_path_factory.mktemp("inputs")
    rest = rest_positions(TARGET_OFFSETS) + [0.0, 0.95, 0.0]
    walk = (rest + np.arange(40)[:, None, None] * [0.0, 0.0, 0.05]).astype(np.float32)  # 1 m/s forward
    np.save(d / "walk.npy", walk)
    np.savez(d / "walk_joints.npz", joints=walk)
    np.savez(d / "other.npz", speed=np.ones(3))
    np.save(d / "feats.npy", np.zeros((40, 263), np.float32))
    np.save(d / "nan.npy", np.where(np.arange(40)[:, None, None] == 7, np.nan, walk))
    np.save(d / "empty.npy", np.zeros((0, 22, 3), np.float32))
    np.save(d / "one.npy", walk[:1])
    np.save(d / "short.npy", walk[:5])
    np.save(d / "bones21.npy", walk[:, :21])
    np.save(d / "words.npy", np.array(["walk", "run"]))
    (d / "text.npy").write_text("not numpy")
    whole = (d / "walk_joints.npz").read_bytes()
    (d / "truncated.npz").write_bytes(whole[:len(whole) // 2])
    (d / "bad.bvh").write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n")
    (d / "model").mkdir()  # a folder without config.json
    small = d / "small_dataset"  # a prepared dataset whose test split is empty, as a handful of clips gives
    (small / "splits").mkdir(parents=True)
    (small / "manifest.json").write_text("{}")
    (small / "index.json").write_text(json.dumps({"clips": []}))
    (small / "splits" / "test.txt").write_text("")
    for name in ("features.npy", "features_mirrored.npy", "joints.npy", "mean.npy", "std.npy"):
        np.save(small / name, np.zeros(263, np.float32))
    return d


GEN = ["generate", PROMPT, "--out", "{d}/out.npy"]
INP = ["--range", "1:9", "", "--out", "{d}/out.npy"]
CUDA = "CUDA is not available" if not torch.cuda.is_available() else "there are only"
BAD_INPUT = [  # (argv, what the one line says): every subcommand, every option, wrong types, ranges, file kinds
    (["features", "{d}/missing.npy", "{d}/out.npy"], r"missing\.npy: no such file"),
    (["features", "{d}/walk.npy", "{d}/out.txt"], r"argument out: .*out\.txt: expected a \.npy file"),
    (["features", "{d}/walk.npy", "{d}/nowhere/out.npy"], r"the folder .*nowhere does not exist"),
    (["features", "{d}/walk.bvh", "{d}/out.npy"], r"expected a \.npy or \.npz file"),
    (["features", "{d}/other.npz", "{d}/out.npy"], r"other\.npz: no 'joints' array \(it holds: speed\)"),
    (["features", "{d}/feats.npy", "{d}/out.npy"], r"expected joints of shape \(T, 22, 3\), got \(40, 263\)"),
    (["features", "{d}/one.npy", "{d}/out.npy"], r"one frame; features need at least 2 frames"),
    (["features", "{d}/nan.npy", "{d}/out.npy"], r"nan\.npy: the array holds NaN or infinite values"),
    (["features", "{d}/empty.npy", "{d}/out.npy"], r"empty\.npy: the array is empty \(shape \(0, 22, 3\)\)"),
    (["features", "{d}/truncated.npz", "{d}/out.npy"], r"truncated\.npz: not a readable \.npz file"),
    (["features", "{d}/text.npy", "{d}/out.npy"], r"text\.npy: not a readable \.npy file"),
    (["joints", "{d}/walk_joints.npz", "{d}/out.npy"], r"no 'features' array \(it holds: joints\)"),
    (["joints", "{d}/walk.npy", "{d}/out.npy"], r"expected features of shape \(T, 263\), got \(40, 22, 3\)"),
    (["joints", "{d}/words.npy", "{d}/out.npy"], r"words\.npy: holds <U4 values, not numbers"),
    (["bvh2joints", "{d}/walk.npy", "{d}/out.npy"], r"expected a \.bvh file"),
    (["bvh2joints", "{d}/bad.bvh", "{d}/out.npy"], r"bad\.bvh: no MOTION line after the hierarchy"),
    (["bvh2joints", "{d}/bad.bvh", "{d}/out.npy", "--fps", "0"], r"argument --fps: must be a number > 0, got 0"),
    (["bvh2joints", "{d}/bad.bvh", "{d}/out.npy", "--fps", "fast"], r"argument --fps: 'fast' is not a number"),
    (["bvh2joints", "{d}/bad.bvh", "{d}/out.npy", "--scale", "-1"], r"argument --scale: must be a number > 0"),
    (["bvh2joints", "{d}/bad.bvh", "{d}/out.npy", "--up", "x"], r"argument --up: invalid choice: 'x'"),
    (["prepare-data", "--archive", "{d}/missing.tar.xz"], r"argument --archive: .*missing\.tar\.xz: no such file"),
    (["prepare-data", "--bvh-dir", "{d}/missing"], r"argument --bvh-dir: .*missing: no such folder"),
    (["prepare-data", "--bvh-dir", "{d}", "--captions", "{d}/walk.npy"], r"expected a \.csv or \.jsonl file"),
    (["prepare-data", "--bvh-dir", "{d}", "--out", "{d}/data"], r"--bvh-dir needs --captions FILE"),
    (["prepare-data", "--workers", "0"], r"argument --workers: must be >= 1, got 0"),
    (["render", "{d}/walk.npy", "{d}/out.avi"], r"argument out: .*out\.avi: expected a \.gif or \.mp4 file"),
    (["render", "{d}/nan.npy", "{d}/out.gif"], r"the array holds NaN"),
    (["render", "{d}/truncated.npz", "{d}/out.gif"], r"not a readable \.npz file"),
    (["render", "{d}/bones21.npy", "{d}/out.gif"], r"expected joints \(T, 22, 3\) or features \(T, 263\)"),
    (["render", "{d}/walk.npy", "{d}/out.gif", "--fps", "nan"], r"argument --fps: must be a number > 0, got nan"),
    (["import-momask", "{d}/missing", "{d}/m"], r"argument checkpoints: .*missing: no such folder"),
    (["evaluate", "{d}/missing"], r"MODEL_DIR .*missing: no such folder"),
    (["evaluate", "{d}/model"], r"MODEL_DIR .*model: not a model directory \(no config\.json\)"),
    (["evaluate", "default", "--data", "{d}/missing"], r"missing is not a prepared dataset"),
    (["evaluate", "default", "--data", "{d}/small_dataset"], r"the test split has 0 clips .* --split train"),
    (["evaluate", "default", "--repeats", "0"], r"argument --repeats: must be >= 1, got 0"),
    (["evaluate", "default", "--mm-samples", "-1"], r"argument --mm-samples: must be >= 0, got -1"),
    (["evaluate", "default", "--mm-repeats", "1"], r"argument --mm-repeats: must be >= 2, got 1"),
    (["evaluate", "default", "--limit", "0"], r"argument --limit: must be >= 1, got 0"),
    (["evaluate", "default", "--seed", "-1"], r"argument --seed: must be from 0 to 2147483647, got -1"),
    (["evaluate", "default", "--split", "all"], r"argument --split: invalid choice: 'all'"),
    (["evaluate", "default", "--out", "{d}/table.txt"], r"expected a \.csv or \.md file"),
    (["evaluate", "default", "--evaluator", "{d}/missing"], r"argument --evaluator: .*missing: no such folder"),
    (["evaluate", "default", "--device", "cuda"], CUDA),
    (["evaluate", "default", "--precision", "half"], r"argument --precision: invalid choice"),
    (["train", "rvq", "--config", "{d}/missing.json", "--out", "{d}/run"], r"--config .*missing\.json: no such file"),
    (["train", "rvq", "--config", "tiny", "--out", "{d}/run", "--stop-at", "0"], r"argument --stop-at: must be >= 1"),
    (["train", "rvq", "--config", "tiny", "--out", "{d}/run", "--device", "cuda"], CUDA),
    (["train", "mask", "--config", "tiny", "--out", "{d}/run", "--rvq", "{d}/missing"], r"--rvq: .*no such folder"),
    (["train", "rvq", "--config", "tiny", "--out", "{d}/run", "--data", "{d}/missing"], "not a prepared dataset"),
    (["train", "fast"], r"argument kind: invalid choice: 'fast'"),
    (["generate", "  ", "--out", "{d}/out.npy"], r"the prompt is empty"),
    (GEN + ["--seconds", "20"], r"--seconds 20 is out of range: choose 0\.4 to 9\.8 s, or 0"),
    (GEN + ["--seconds", "nan"], r"argument --seconds: must be a number >= 0, got nan"),
    (GEN + ["--seconds", "-1"], r"argument --seconds: must be a number >= 0, got -1"),
    (GEN + ["--candidates", "0"], r"argument --candidates: must be >= 1, got 0"),
    (GEN + ["--steps", "0"], r"argument --steps: must be >= 1, got 0"),
    (GEN + ["--steps", "2.5"], r"argument --steps: '2\.5' is not a whole number"),
    (GEN + ["--guidance", "-1"], r"argument --guidance: must be a number >= 0, got -1"),
    (GEN + ["--guidance", "inf"], r"argument --guidance: must be a number >= 0, got inf"),
    (GEN + ["--threads", "0"], r"argument --threads: must be >= 1, got 0"),
    (GEN + ["--seed", "-1"], r"argument --seed: must be from 0 to 2147483647, got -1"),
    (GEN + ["--seed", str(2 ** 31)], r"argument --seed: must be from 0 to 2147483647, got 2147483648"),
    (GEN + ["--seed", "x"], r"argument --seed: 'x' is not a whole number"),
    (GEN + ["--device", "cuda"], CUDA),
    (GEN + ["--device", "banana"], r"--device 'banana' is not a torch device"),
    (GEN + ["--model", "{d}/model"], r"--model .*model: not a model directory \(no config\.json\)"),
    (GEN + ["--model", "{d}/missing"], r"--model .*missing: no such folder"),
    (GEN + ["--precision", "half"], r"argument --precision: invalid choice"),
    (GEN + ["--clip-path", "{d}/missing.pt"], r"--clip-path .*missing\.pt: no such file"),
    (["generate", PROMPT, "--out", "{d}/out.obj"], r"unknown output format '\.obj'; use one of \.npy, \.npz"),
    (["generate", PROMPT, "--out", "{d}/nowhere/out.npy"], r"the folder .*nowhere does not exist"),
    (["generate", PROMPT], r"the following arguments are required: --out"),
    (["serve", "--threads", "0"], r"--threads must be at least 1, got 0"),
    (["serve", "--threads", "two"], r"argument --threads: invalid int value: 'two'"),
    (["serve", "--device", "cuda"], CUDA),
    (["serve", "--model", "{d}/model"], r"--model .*model: not a model directory"),
    (["serve", "--clip-path", "{d}/missing.pt"], r"--clip-path .*missing\.pt: no such file"),
    (["inpaint", "{d}/missing.npy"] + INP, r"argument source: .*missing\.npy: no such file"),
    (["inpaint", "{d}/walk.txt"] + INP, r"expected a \.npy or \.npz or \.bvh file"),
    (["inpaint", "{d}/nan.npy"] + INP, r"nan\.npy: the array holds NaN"),
    (["inpaint", "{d}/empty.npy"] + INP, r"empty\.npy: the array is empty"),
    (["inpaint", "{d}/truncated.npz"] + INP, r"truncated\.npz: not a readable \.npz file"),
    (["inpaint", "{d}/text.npy"] + INP, r"text\.npy: not a readable \.npy file"),
    (["inpaint", "{d}/other.npz"] + INP, r"no 'features' or 'joints' array \(it holds: speed\)"),
    (["inpaint", "{d}/bones21.npy"] + INP, r"the source must be features \(T, 263\) or joints \(T, 22, 3\)"),
    (["inpaint", "{d}/short.npy"] + INP, r"short\.npy: the source has 5 frames; at least 8 are needed"),
    (["inpaint", "{d}/bad.bvh"] + INP, r"bad\.bvh: no MOTION line after the hierarchy"),
    (["inpaint", "{d}/walk.npy", "--range", "30:50", "", "--out", "{d}/out.npy"], r"\[30, 50\) is outside .*\[0, 40\)"),
    (["inpaint", "{d}/walk.npy", "--range", "9:9", "", "--out", "{d}/out.npy"], r"range 0 \[9, 9\) is empty"),
    (["inpaint", "{d}/walk.npy", "--range", "5-9", "", "--out", "{d}/out.npy"], r"'5-9' is not START:STOP"),
    (["inpaint", "{d}/walk.npy", "--range", "1:9", "", "--out", "{d}/out.npy", "--guidance", "-1"], "--guidance"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT, ids=[" ".join(argv[:1] + argv[-2:]) for argv, _ in BAD_INPUT])
def test_bad_input_is_one_line_naming_it_and_exit_code_2_before_any_work(inputs, capsys, argv, message):
    argv = [a.format(d=inputs) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"momask {argv[0]}: error: ") and re.search(message, last), err
    assert "Traceback" not in err and "loading the model" not in err
    assert not list(inputs.glob("out.*")) and not (inputs / "run").exists()


def test_features_and_joints_read_npz_and_write_float32_as_every_other_output(inputs, tmp_path):
    assert main(["features", str(inputs / "walk_joints.npz"), str(tmp_path / "feats.npy")]) == 0
    features = np.load(tmp_path / "feats.npy")
    assert features.dtype == np.float32 and features.shape == (39, 263)
    np.savez(tmp_path / "feats.npz", features=features)
    assert main(["joints", str(tmp_path / "feats.npz"), str(tmp_path / "joints.npy")]) == 0
    joints = np.load(tmp_path / "joints.npy")
    assert joints.dtype == np.float32 and joints.shape == (39, 22, 3)
    np.testing.assert_allclose(joints - joints[:1, :1], np.load(inputs / "walk.npy")[:39] - np.load(
        inputs / "walk.npy")[:1, :1], atol=1e-4)  # the walk again, up to where features put it


def test_bundled_configs_models_and_data_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    """The README's commands name configs/tiny.json and models/default relative to the checkout; run from another
    folder they are the installation's, unless the folder has its own."""
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    parser = build_parser()
    for name in ("tiny", "tiny.json", "configs/tiny.json"):
        assert parser.parse_args(["train", "rvq", "--config", name]).config == str(repo / "configs" / "tiny.json")
    for name in ("default", "models/default"):
        assert parser.parse_args(["evaluate", name]).model_dir == str(repo / "models" / "default")
        assert parser.parse_args(["generate", "x", "--model", name, "--out", "a.npy"]).model == str(
            repo / "models" / "default")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny.json").write_text("{}")
    assert parser.parse_args(["train", "rvq", "--config", "configs/tiny.json"]).config == "configs/tiny.json"
    assert parser.parse_args(["evaluate", "nothing/here"]).model_dir == "nothing/here"  # named as given when missing


def test_bad_arguments_show_usage_from_the_command_line():
    done = subprocess.run([sys.executable, "-m", "core", "generate", PROMPT, "--guidance", "-1", "--out", "a.npy"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("usage: momask generate")
    assert done.stderr.splitlines()[-1] == "momask generate: error: argument --guidance: must be a number >= 0, got -1"


def test_serve_is_the_worker():
    """`momask serve` answers as `python -m core.worker` does: the ready event, a ping, a clean exit when its
    client goes away (stdin closed)."""
    done = subprocess.run([sys.executable, "-m", "core", "serve", "--threads", "1"], capture_output=True,
                          input=protocol.dumps({"id": 1, "type": "ping"}) + "\n", text=True, timeout=120)
    events = [protocol.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert events[0]["event"] == "ready" and events[0]["protocol"] == protocol.PROTOCOL_VERSION
    assert events[0]["threads"] == 1
    assert events[1] == {"id": 1, "event": "result", "payload": {"pong": True, "busy": None}}


def test_generate_says_what_it_understood_and_warns_when_far(tmp_path, capsys):
    out = ["--seconds", 1, "--seed", 1, "--threads", 1, "--out", tmp_path / "motion.npy"]
    assert momask("generate", "a person raises the left hand", *out) == 0
    said = re.search(r"understood as: (.*)", capsys.readouterr().err)
    assert said and "raise-up-left-hand" in said.group(1)
    assert momask("generate", "the man stirs a pot of soup", *out) == 0
    err = capsys.readouterr().err
    assert "warning: the prompt is far from every action this model learned" in err and "Known actions: " in err
    assert (tmp_path / "motion.npy").is_file()  # it still generates, the nearest action


def test_a_chained_prompt_is_made_part_by_part_as_one_motion(tmp_path, capsys):
    path = tmp_path / "sequence.npy"
    assert momask("generate", "a person walks forward, then bows", "--seconds", 4, "--seed", 3, "--threads", 1,
                  "--out", path) == 0
    err = capsys.readouterr().err
    assert 'part 1 "a person walks forward": understood as' in err and 'part 2 "a person bows"' in err
    assert np.load(path).shape == (80, 22, 3)  # --seconds is the whole motion's, shared out among the parts


def test_actions_lists_what_the_default_model_learned(capsys):
    assert momask("actions") == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split(" (")[0] for line in lines]
    assert {"walk", "kick", "bow", "wave-right-hand", "raise-up-left-hand"} <= set(names)
    assert all(re.fullmatch(r'[a-z+-]+ \(\d+ training clips\): ".+"( \| ".+")*', line) for line in lines)
