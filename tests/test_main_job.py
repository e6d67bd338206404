"""The main job, the README's first command, runs here as the README writes it (so CI runs it on every change): the
.blend it saves is opened in a fresh Blender and the GIF it renders is read back. Then the job on an imported character,
and its refusals of bad input."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from tests.conftest import REPO, shared_path

MAIN_JOB = [sys.executable, str(REPO / "scripts" / "main_job.py")]
# Prints what a saved .blend holds: the largest armature, its action, the scene and the pelvis path.
READ_BLEND = """
import json, os, bpy
bpy.ops.wm.open_mainfile(filepath=os.environ["BLEND"])
scene = bpy.context.scene
ob = max((o for o in scene.objects if o.type == "ARMATURE"), key=lambda o: len(o.data.bones))
bag = ob.animation_data.action.layers[0].strips[0].channelbag(ob.animation_data.action_slot)
pelvis = []
for frame in (scene.frame_start, scene.frame_end):
    scene.frame_set(frame)
    pelvis.append(list(ob.matrix_world @ ob.pose.bones[0].head))
print(json.dumps({"armature": ob.name, "action": ob.animation_data.action.name, "curves": len(bag.fcurves),
                  "keys": sorted({len(c.keyframe_points) for c in bag.fcurves}), "fps": scene.render.fps,
                  "range": [scene.frame_start, scene.frame_end], "engine": scene.render.engine,
                  "camera": scene.camera.name if scene.camera else None, "pelvis": pelvis,
                  "objects": sorted(o.name for o in scene.objects)}))
"""


def readme_commands() -> list[str]:
    """The commands of the README's 'Two commands' block, comments stripped."""
    block = re.search(r"## Two commands\n.*?```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "README.md has no '## Two commands' section with a bash block"
    return [line.split("#")[0].strip() for line in block[1].splitlines() if line.strip()]


def read_blend(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", READ_BLEND], env=dict(os.environ, BLEND=str(path)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def gif_frames(path: Path) -> list[Image.Image]:
    gif = Image.open(path)
    frames = []
    for k in range(gif.n_frames):
        gif.seek(k)
        frames.append(gif.convert("RGB"))
    return frames


@pytest.fixture(scope="module")
def main_job():
    """The README's first command, run as a newcomer runs it (writes out/)."""
    done = subprocess.run(readme_commands()[0].split(), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done


def test_main_job_keys_the_built_in_rig_and_saves_the_blend(main_job):
    assert 'animating the built-in MoMask rig: "a person walks forward", 4 s, seed 0' in main_job.stdout
    saved = read_blend(REPO / "out" / "main_job.blend")
    assert saved["armature"] == "MoMask Rig" and saved["action"] == "a person walks forward (seed 0)"
    # 80 frames at 20 fps keyed at the scene's 24 fps: 95 keys on every rotation and location curve
    assert saved["fps"] == 24 and saved["range"] == [1, 95] and saved["keys"] == [95]
    assert saved["curves"] >= 22 * 4 + 3
    assert saved["engine"] == "BLENDER_WORKBENCH" and saved["camera"] == "MoMask Camera"
    assert {"MoMask Mannequin", "MoMask Floor"} <= set(saved["objects"])
    start, end = saved["pelvis"]
    assert ((end[0] - start[0]) ** 2 + (end[1] - start[1]) ** 2) ** 0.5 > 1.0  # it walked


def test_main_job_renders_the_animation_into_a_gif(main_job):
    frames = gif_frames(REPO / "out" / "main_job.gif")
    assert len(frames) == 48 == len(list((REPO / "out" / "main_job_frames").glob("*.png")))  # 95 frames, every other
    assert (REPO / "out" / "main_job.gif").stat().st_size < 2e6
    moved = [ImageChops.difference(frames[0], frame).getbbox() is not None for frame in frames[1:]]
    assert all(moved)
    colours = frames[0].getcolors(maxcolors=256)
    assert any(r > 150 and g < 90 and b < 90 for _, (r, g, b) in colours)  # the red right limbs are in view
    assert any(b > 150 and r < 90 for _, (r, g, b) in colours)  # and the blue left ones


def test_main_job_animates_an_imported_character(tmp_path):
    rig = shared_path("rigs", "apose_khronos_cesiumman.glb")
    done = subprocess.run(MAIN_JOB + ["a person waves with the right hand", "--rig", str(rig), "--seconds", "1",
                                      "--seed", "3", "--width", "96", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    saved = read_blend(tmp_path / "main_job.blend")
    assert saved["action"] == "a person waves with the right hand (seed 3)"
    # 20 frames at 20 fps span 0.95 s: frames 1 to 23 at 24 fps, every other one rendered
    assert saved["range"] == [1, 23] and len(gif_frames(tmp_path / "main_job.gif")) == 12
    assert "MoMask Mannequin" not in saved["objects"]  # it has a mesh of its own


@pytest.mark.parametrize("args, message", [
    (["--rig", "{tmp}/missing.fbx"], "--rig {tmp}/missing.fbx: no such file"),
    (["--rig", "{tmp}/character.obj"], "unknown format '.obj'; use .fbx, .glb, .gltf, .bvh or .blend"),
    (["  "], "the prompt is empty"),
    (["--width", "5"], "--width 5: choose 16 to 1920 pixels"),
])
def test_bad_arguments_are_refused_at_once(tmp_path, args, message):
    (tmp_path / "character.obj").write_text("v 0 0 0\n")
    args = [a.format(tmp=tmp_path) for a in args]
    done = subprocess.run(MAIN_JOB + args + ["--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and message.format(tmp=tmp_path) in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_file_blender_cannot_import_is_a_message(tmp_path):
    (tmp_path / "character.fbx").write_bytes(b"not an fbx file")
    done = subprocess.run(MAIN_JOB + ["--rig", str(tmp_path / "character.fbx"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"main job: error: --rig {tmp_path / 'character.fbx'}: Blender cannot import it" in done.stderr
    assert not (tmp_path / "main_job.blend").exists()
