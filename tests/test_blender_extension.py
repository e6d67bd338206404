"""The extension in bpy 5.0.1: built with Blender's own builder into a zip holding only what Blender and the
worker need, installed from that zip, loaded from the source tree as a development repository (the way
Blender imports it: bl_ext.<repo>.momask_blender), registered twice, its panel drawn into a recording layout,
the built-in rig, and every bad input refused with a message before anything changes (the fixtures are in
tests/support/blender.py)."""
import importlib.util
import subprocess
import sys
import sysconfig
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.blender import (REPO, RecordingLayout, add_rig, addon_module, bpy, extension,  # noqa: F401
                                   generate, keyed_armature, prefs, scene, snapshot, stub_armature)
import addon_utils  # noqa: E402  (comes with bpy)
from core.skeleton import JOINT_NAMES, PARENTS, TARGET_BONE_LENGTHS  # noqa: E402


# ------------------------------------------------------------------------------------------------ packaging
@pytest.fixture(scope="session")
def built_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--output-dir", str(out)],
                   check=True, capture_output=True, text=True)
    (zip_path,) = out.glob("*.zip")
    return zip_path


def test_zip_holds_the_blender_side_core_and_the_default_model_only(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops <= {"__init__.py", "blender_manifest.toml", "momask_blender", "core", "models"}
    assert {"__init__.py", "blender_manifest.toml", "momask_blender/__init__.py", "momask_blender/worker_client.py",
            "core/worker.py", "core/solver.py", "core/sampling.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    tracked = {p.relative_to(REPO).as_posix() for d in ("core", "momask_blender") for p in (REPO / d).rglob("*.py")}
    assert tracked <= set(names)
    if (REPO / "models" / "default" / "config.json").is_file():
        assert "models/default/config.json" in names
    assert not [n for n in names if n.startswith("models/") and not n.startswith("models/default/")]


def test_zip_installs_and_works_in_a_clean_blender(built_zip, tmp_path):
    """package_install_files in a fresh bpy process whose sys.path has no checkout (site-packages without
    the editable install): the installed extension must run on its own core/."""
    site_packages = sysconfig.get_paths()["purelib"]
    script = f"""
import os, sys
sys.path.append({str(site_packages)!r})
os.environ["BLENDER_USER_RESOURCES"] = {str(tmp_path)!r}
import bpy
assert bpy.ops.extensions.package_install_files(filepath={str(built_zip)!r}, repo="user_default",
                                                enable_on_install=True) == {{"FINISHED"}}
addon = "bl_ext.user_default.momask_blender"
assert addon in bpy.context.preferences.addons
installed = os.path.join(bpy.utils.user_resource("EXTENSIONS"), "user_default", "momask_blender")
assert "core" not in sys.modules and sys.modules[addon + ".core"].__file__.startswith(installed)
bpy.ops.wm.read_homefile(use_empty=True)
bpy.ops.momask.add_rig()
rig = sys.modules[addon + ".momask_blender.armature_reading"].read_rig(bpy.context.active_object)
client = sys.modules[addon + ".momask_blender.worker_client"]
assert str(client.EXTENSION_ROOT) == os.path.realpath(installed)
assert os.path.isfile(os.path.join(installed, "core", "worker.py"))
print("OK", rig.bone_map.preset)
"""
    result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "OK smplx" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


# --------------------------------------------------------------------------------------------- registration
def test_register_and_unregister_twice(extension):
    classes = ("MOMASK_OT_generate", "MOMASK_OT_add_rig", "MOMASK_PT_main", "MOMASK_UL_candidates")
    for _ in range(2):
        addon_utils.disable(extension, default_set=True)
        assert not hasattr(bpy.types.Scene, "momask") and not hasattr(bpy.types.Object, "momask_candidates")
        assert not any(hasattr(bpy.types, name) for name in classes)
        errors = []
        addon_utils.enable(extension, default_set=True, handle_error=errors.append)
        assert not errors
        assert all(hasattr(bpy.types, name) for name in classes)
        assert hasattr(bpy.types.Scene, "momask") and hasattr(bpy.types.WindowManager, "momask_status")
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.momask.add_rig() == {"FINISHED"}


# -------------------------------------------------------------------------------------------------- the rig
def test_add_rig_at_the_cursor(scene):
    ob = add_rig((1.0, 2.0, 0.5))
    assert ob.type == "ARMATURE" and ob.select_get() and bpy.context.view_layer.objects.active == ob
    assert tuple(ob.location) == pytest.approx((1.0, 2.0, 0.5))
    bones = ob.data.bones
    assert sorted(b.name for b in bones) == sorted(JOINT_NAMES)
    heads = {b.name: np.array(b.head_local) for b in bones}
    for j, name in enumerate(JOINT_NAMES[1:], start=1):
        assert bones[name].parent.name == JOINT_NAMES[PARENTS[j]]
        length = np.linalg.norm(heads[name] - heads[JOINT_NAMES[PARENTS[j]]])
        assert length == pytest.approx(TARGET_BONE_LENGTHS[j], abs=1e-6)
    assert min(h[2] for h in heads.values()) == pytest.approx(0.0, abs=1e-6)  # toes on the cursor's floor
    assert heads["left_hip"][0] > 0 > heads["right_hip"][0]  # faces -y: the body's left is +x
    for name in ("left_hip", "left_knee", "right_knee", "spine1", "left_elbow"):
        x_axis = np.array(bones[name].matrix_local)[:3, 0]  # knees, elbows and the spine bend about X
        bend = np.array([1.0, 0, 0]) if "elbow" not in name else np.array([0, 0, 1.0])
        assert abs(x_axis @ bend) > 0.99, name
    assert all(b.rotation_mode == "QUATERNION" for b in ob.pose.bones)
    rig = addon_module("armature_reading").read_rig(ob)
    assert rig.bone_map.preset == "smplx" and not rig.bone_map.unmapped


def test_add_rig_outside_object_mode_is_refused(scene):
    ob = add_rig()
    bpy.ops.object.mode_set(mode="EDIT")
    with pytest.raises(RuntimeError, match="object mode"):
        bpy.ops.momask.add_rig()
    bpy.ops.object.mode_set(mode="OBJECT")
    assert [o.name for o in bpy.data.objects] == [ob.name]


def draw_panel():
    layout = RecordingLayout()
    bpy.types.MOMASK_PT_main.draw(types.SimpleNamespace(layout=layout), bpy.context)
    return layout


def test_panel_shows_every_control(scene, prefs):
    ob = add_rig()
    settings = scene.momask
    settings.prompt, settings.seconds, settings.seed, settings.candidates = "a person jumps", 3.5, 7, 2
    layout = draw_panel()
    controls = {"prompt", "seconds", "seed", "candidates", "guidance", "steps", "start_frame", "in_place"}
    assert {("MOMASK_PG_settings", name) for name in controls} <= layout.props()
    assert ("MoMaskPreferences", "model") in layout.props()
    ops = layout.operators()
    assert {"momask.generate", "momask.add_rig", "momask.new_seed"} <= ops.keys()
    generate_op = ops["momask.generate"]
    assert (generate_op.prompt, generate_op.seconds, generate_op.seed, generate_op.candidates) == (
        "a person jumps", 3.5, 7, 2)
    assert f"Target: {ob.name}" in layout.texts()
    assert not any(name in ("progress", "template_list") for name, *_ in layout.calls)

    wm = bpy.context.window_manager
    wm.momask_progress, wm.momask_status = 0.4, "generate: step 4 of 10"
    ob.momask_candidates.add()
    try:
        layout = draw_panel()
    finally:
        wm.momask_status = ""
    progress = [kw for name, _, kw, _ in layout.calls if name == "progress"]
    assert progress == [{"factor": pytest.approx(0.4), "text": "generate: step 4 of 10"}]
    assert "momask.generate" not in layout.operators()
    assert [args[2:5] for name, args, *_ in layout.calls if name == "template_list"] == [
        (ob, "momask_candidates", ob)]


def test_panel_without_a_worker_opens_the_preferences_where_install_worker_is(scene, prefs, monkeypatch):
    preferences = addon_module("preferences")
    monkeypatch.setattr(preferences, "find_worker_python", lambda *args: None)
    prefs.worker_python, prefs.worker_command = "", ""
    layout = draw_panel()
    assert "MoMask needs its worker" in layout.texts() and "Select an armature" in layout.texts()
    assert layout.operators()["preferences.addon_show"].module == preferences.ADDON_ID
    assert max(len(kw.get("text", "")) for name, _, kw, _ in layout.calls if name == "label") <= 30
    prefs.worker_python = "/nowhere/bin/python"
    assert "preferences.addon_show" in draw_panel().operators()
    prefs.worker_python = ""
    monkeypatch.undo()
    assert "preferences.addon_show" not in draw_panel().operators()  # the set-up's .venv is found


def test_worker_python_is_found_in_the_setups_venv(extension, tmp_path):
    preferences = addon_module("preferences")
    assert preferences.find_worker_python() == str(REPO / ".venv" / "bin" / "python")
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.touch()
    assert preferences.find_worker_python(tmp_path, "/blender/python") == str(venv_python)
    torch_here = importlib.util.find_spec("torch") is not None
    assert preferences.find_worker_python(tmp_path / "elsewhere", "/blender/python") == (
        "/blender/python" if torch_here else None)


def test_default_model_is_preselected_and_directories_can_be_added(prefs, tmp_path):
    preferences = addon_module("preferences")
    assert prefs.model == "DEFAULT" and not len(prefs.model_dirs)
    assert preferences.selected_model(prefs) == REPO / "models" / "default"
    assert bpy.ops.momask.model_dir_add() == {"FINISHED"}
    prefs.model_dirs[0].path = str(tmp_path / "t2m_converted")
    prefs.model = str(tmp_path / "t2m_converted")  # a TypeError unless the directory is among the model choices
    assert preferences.selected_model(prefs) == tmp_path / "t2m_converted"
    assert bpy.ops.momask.model_dir_remove(index=0) == {"FINISHED"}
    assert prefs.model == "DEFAULT" and not len(prefs.model_dirs)


# ---------------------------------------------------------------------------------------------- bad input
def test_no_armature(scene):
    bpy.ops.mesh.primitive_cube_add()
    before = snapshot()
    with pytest.raises(RuntimeError, match="Select an armature.*'Cube' is a mesh"):
        generate(prompt="a person walks")
    bpy.context.view_layer.objects.active = None
    with pytest.raises(RuntimeError, match="Select an armature.*nothing is active"):
        generate(prompt="a person walks")
    assert snapshot() == before


def test_armature_with_unmapped_joints_lists_them(scene):
    stub_armature()
    before = snapshot()
    with pytest.raises(RuntimeError, match="'Stub' cannot be animated: no left leg: left_hip, left_knee, "
                                           "left_ankle not found.*no right arm"):
        generate(prompt="a person walks")
    assert snapshot() == before


@pytest.mark.parametrize("params, message", [
    ({"prompt": "   "}, "Type a prompt"),
    ({"prompt": "walk", "seconds": 20.0}, r"Duration 20 s is out of range: choose 0.4 to 9.8 s, or 0"),
    ({"prompt": "walk", "seconds": -1.0}, r"Duration -1 s is out of range"),
    ({"prompt": "walk", "seconds": 0.2}, r"Duration 0.2 s is out of range"),
    ({"prompt": "walk", "candidates": 0}, "Candidates and steps must be at least 1"),
])
def test_bad_request(scene, params, message):
    ob = add_rig()
    keyed_armature(ob)
    before = snapshot()
    with pytest.raises(RuntimeError, match=message):
        generate(**params)
    assert snapshot() == before


def test_armature_in_edit_mode(scene):
    ob = add_rig()
    bpy.ops.object.mode_set(mode="EDIT")
    with pytest.raises(RuntimeError, match=f"'{ob.name}' is in edit mode: leave edit mode"):
        generate(prompt="a person walks")
    bpy.ops.object.mode_set(mode="OBJECT")
    assert not bpy.data.actions


def test_new_seed(scene):
    seeds = set()
    for _ in range(3):
        assert bpy.ops.momask.new_seed() == {"FINISHED"}
        seeds.add(scene.momask.seed)
    assert len(seeds) == 3 and all(0 <= seed < 2 ** 31 for seed in seeds)


def test_missing_model_directory(scene, prefs, tmp_path):
    add_rig()
    prefs.model_dirs.add().path = prefs.model = str(tmp_path / "no_such_model")
    before = snapshot()
    with pytest.raises(RuntimeError, match=r"no_such_model': no model directory \(no config.json there\)"):
        generate(prompt="a person walks")
    assert snapshot() == before


def test_worker_not_installed(scene, prefs, monkeypatch):
    add_rig()
    before = snapshot()
    prefs.worker_python = "/nowhere/bin/python"
    with pytest.raises(RuntimeError, match="'/nowhere/bin/python' does not exist: click Install Worker in the "
                                           "add-on's preferences"):
        generate(prompt="a person walks")
    monkeypatch.setattr(addon_module("preferences"), "find_worker_python", lambda *args: None)
    prefs.worker_python = ""
    with pytest.raises(RuntimeError, match="MoMask needs its worker .*: click Install Worker"):
        generate(prompt="a person walks")
    assert snapshot() == before
