"""`momask generate`, `momask inpaint` and `momask serve` with the default model (2 s motions, 1 thread): every
output format of one generation, the BVH re-imported by Blender's own importer and compared with the generated
joints, foot locking wired in, inpainting from each source format, and bad input refused with exit code 2 and a
one-line message (never a traceback)."""
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from core import protocol
from core.cli import main
from core.features import recover_from_ric
from core.footlock import lock_feet
from core.mocap import bvh_to_smpl_joints
from core.motion_export import BVH_BONE_NAMES
from core.skeleton import JOINT_NAMES, PARENTS
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
            assert (str(data["prompt"]), int(data["seed"]), int(data["candidate"])) == (PROMPT, SEED, k)
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


def test_foot_lock_pins_the_feet_of_the_same_motion(generated, tmp_path):
    assert momask("generate", PROMPT, "--seconds", 2, "--seed", SEED, "--candidates", 2, "--threads", 1,
                  "--foot-lock", "--out", tmp_path / "locked.npy") == 0
    with np.load(generated / "walk_2.npz") as data:
        expected = lock_feet(data["joints"], data["contacts"], fps=20.0)
    locked = np.load(tmp_path / "locked_2.npy")
    np.testing.assert_allclose(locked, expected, atol=1e-5)
    assert np.abs(locked - np.load(generated / "walk_2.npy")).max() > 1e-3  # the feet did move


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


@pytest.mark.parametrize("argv, message", [
    (["generate", "  ", "--out", "{tmp}/a.npy"], "the prompt is empty"),
    (["generate", PROMPT, "--out", "{tmp}/a.obj"], "unknown output format '.obj'; use one of .npy, .npz"),
    (["generate", PROMPT, "--out", "{tmp}/missing/a.npy"], "the folder .*missing does not exist"),
    (["generate", PROMPT, "--seconds", "20", "--out", "{tmp}/a.npy"], "--seconds 20 is out of range: choose 0.4 to"),
    (["generate", PROMPT, "--candidates", "0", "--out", "{tmp}/a.npy"], "candidates and steps must be >= 1"),
    (["generate", PROMPT, "--model", "{tmp}", "--out", "{tmp}/a.npy"], "config.json: missing"),
    (["inpaint", "{tmp}/none.npz", "--range", "1:9", "", "--out", "{tmp}/a.npy"], "none.npz: no such file"),
    (["inpaint", "{walk}", "--range", "30:50", "", "--out", "{tmp}/a.npy"], r"\[30, 50\) is outside .*\[0, 40\)"),
    (["inpaint", "{walk}", "--range", "9:9", "", "--out", "{tmp}/a.npy"], r"range 0 \[9, 9\) is empty"),
])
def test_bad_input_is_one_clear_line_and_exit_code_2(generated, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, walk=generated / "walk_1.npy") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"momask {argv[0]}: error:" in err and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "a.npy").exists()


@pytest.mark.parametrize("argv, message", [
    (["inpaint", "x.npy", "--range", "5-9", "", "--out", "a.npy"], "'5-9' is not START:STOP"),
    (["generate", PROMPT], "the following arguments are required: --out"),
    (["generate", PROMPT, "--seed", "x", "--out", "a.npy"], "argument --seed: invalid int value"),
])
def test_bad_arguments_show_usage_and_exit_code_2(argv, message):
    done = subprocess.run([sys.executable, "-m", "core", *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"usage: momask {argv[0]}")


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
