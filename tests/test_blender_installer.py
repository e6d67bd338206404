"""Install Worker in bpy 5.0.1, run for real against this machine's package source (pip as configured here):
from the zip alone in a fresh Blender user folder, a full installation with its progress, the worker answering
and generating afterwards, Repair after a package went missing, and Remove; Cancel halfway, a package the index
lacks and no network stop early with a message and leave the preferences as they were.

The full installation takes minutes on 2 cores (the environment is 1.2 GB), so it runs once; the other cases
stop before PyTorch is installed, in a folder of their own."""
import json
import os
import re
import subprocess
import sys
import sysconfig
import time
import types
from pathlib import Path

import pytest

from tests.support.blender import REPO, addon_module, bpy, extension, prefs, scene  # noqa: F401

TIMER = types.SimpleNamespace(type="TIMER", value="NOTHING")
ESCAPE = types.SimpleNamespace(type="ESC", value="PRESS")


@pytest.fixture
def online():
    """Blender's online access on (Preferences > System > Network), as Install Worker needs it."""
    system = bpy.context.preferences.system
    saved = system.use_online_access
    system.use_online_access = True
    yield
    system.use_online_access = saved


@pytest.fixture
def elsewhere(monkeypatch, tmp_path):
    """Install Worker's environment in a folder of the test's own."""
    installer = addon_module("installer")
    monkeypatch.setattr(installer, "worker_folder", lambda: tmp_path / "worker")
    return tmp_path / "worker"


def start(reports, torch_index=""):
    """Install Worker as the preferences' button starts it (INVOKE), PyTorch from pip's own configuration ->
    the operator, ticked by the caller."""
    op = types.SimpleNamespace(torch_index=torch_index, _timer=None,
                               properties=types.SimpleNamespace(is_property_set=lambda name: True),
                               report=lambda kind, text: reports.append((kind, text)))
    assert addon_module("installer").begin(op, bpy.context) is not None
    return op


def tick_until_done(op, seen, on_tick=lambda: None):
    """Timer ticks until Install Worker ends -> its last return value; seen gets (progress, status) per tick."""
    for _ in range(6000):
        seen.append((op._installation.progress, op._installation.status))
        on_tick()
        state = bpy.types.MOMASK_OT_install_worker.modal(op, bpy.context, TIMER)
        if state != {"RUNNING_MODAL"}:
            return state
        time.sleep(0.1)
    raise AssertionError("Install Worker did not end")


# Runs in a fresh bpy process that has only the zip: the README's path, as a new user takes it.
FROM_THE_ZIP = """
import json, os, subprocess, sys, time, types
sys.path.append({site_packages!r})  # bpy and numpy, not the checkout
os.environ["BLENDER_USER_RESOURCES"] = {user!r}
import bpy
bpy.context.preferences.system.use_online_access = True
assert bpy.ops.extensions.package_install_files(filepath={zip!r}, repo="user_default", enable_on_install=True) == (
    {{"FINISHED"}})
addon = "bl_ext.user_default.momask_blender"
installer = sys.modules[addon + ".momask_blender.installer"]
prefs = bpy.context.preferences.addons[addon].preferences
bpy.ops.wm.read_homefile(use_empty=True)
out = {{"worker_python_before": prefs.worker_python, "folder": str(installer.worker_folder())}}

reports, seen = [], []  # Install Worker's button: INVOKE, ticked as Blender's timer ticks it
op = types.SimpleNamespace(torch_index="", _timer=None, report=lambda kind, text: reports.append((sorted(kind), text)),
                           properties=types.SimpleNamespace(is_property_set=lambda name: True))
installer.begin(op, bpy.context)
timer = types.SimpleNamespace(type="TIMER", value="NOTHING")
while (state := bpy.types.MOMASK_OT_install_worker.modal(op, bpy.context, timer)) == {{"RUNNING_MODAL"}}:
    seen.append((op._installation.progress, op._installation.status))
    time.sleep(0.1)
out.update(state=sorted(state), reports=reports, seen=seen, worker_python=prefs.worker_python,
           log=installer.log_file().read_text())

bpy.ops.momask.add_rig()
out["generate"] = sorted(bpy.ops.momask.generate("EXEC_DEFAULT", prompt="a person walks", seconds=1.0, steps=2))
out["action"] = bpy.context.active_object.animation_data.action.name

python = prefs.worker_python  # a package goes missing: Install Worker again repairs
subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "safetensors"], check=True)
sys.modules[addon + ".momask_blender.jobs"].shutdown()
out["broken"] = subprocess.run([python, "-c", "import safetensors"], capture_output=True).returncode
out["repair"] = sorted(bpy.ops.momask.install_worker(torch_index=""))
out["repaired"] = subprocess.run([python, "-c", "import safetensors"], capture_output=True).returncode

out["remove"] = sorted(bpy.ops.momask.remove_worker())
out.update(removed=not os.path.exists(out["folder"]), worker_python_after=prefs.worker_python,
           log_kept=installer.log_file().is_file(), remove_again=bpy.ops.momask.remove_worker.poll())
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_from_the_zip_alone_install_worker_generate_repair_and_remove(tmp_path):
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--output-dir", str(tmp_path)],
                   check=True, capture_output=True)
    (zip_path,) = tmp_path.glob("*.zip")
    script = FROM_THE_ZIP.format(site_packages=sysconfig.get_paths()["purelib"], user=str(tmp_path / "user"),
                                 zip=str(zip_path))
    run = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=900)
    results = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and results, run.stdout[-3000:] + run.stderr[-3000:]
    out = json.loads(results[0].removeprefix("RESULT "))
    assert out["worker_python_before"] == "" and out["folder"].startswith(str(tmp_path / "user"))

    assert out["state"] == ["FINISHED"]
    progress = [p for p, _ in out["seen"]]
    assert progress == sorted(progress) and 0 <= progress[0] < progress[-1] < 1
    statuses = " | ".join(status for _, status in out["seen"])
    for step in ("making the Python environment", "installing PyTorch (CPU) and the worker's packages",
                 "installing the text encoders' files", "asking the new worker to load the default model"):
        assert step in statuses
    assert re.search(r"the worker's packages: (Collecting|Processing|Installing collected packages)", statuses)
    ((kind, message),) = out["reports"]
    assert kind == ["INFO"] and message.startswith("Worker installed: PyTorch 2.13.0") and "on cpu" in message
    assert out["worker_python"] == str(Path(out["folder"]) / "bin" / "python")
    assert "-m venv" in out["log"] and "torch==2.13.0" in out["log"]
    assert "installed: the worker answered its test request" in out["log"]

    assert out["generate"] == ["FINISHED"] and out["action"] == "a person walks (seed 0)"
    assert out["broken"] != 0 and out["repair"] == ["FINISHED"] and out["repaired"] == 0
    assert out["remove"] == ["FINISHED"] and out["removed"] and out["worker_python_after"] == ""
    assert out["log_kept"] and not out["remove_again"]


def test_cancel_stops_halfway_and_changes_no_preference(prefs, online, elsewhere):
    installer = addon_module("installer")
    prefs.worker_python = "/keep/this/python"
    reports, seen = [], []
    op = start(reports)

    def escape_during_torch():
        if op._installation.status.startswith("installing PyTorch") and not op._installation.done:
            assert bpy.types.MOMASK_OT_install_worker.modal(op, bpy.context, ESCAPE) == {"RUNNING_MODAL"}

    assert tick_until_done(op, seen, escape_during_torch) == {"CANCELLED"}
    assert reports == [({"WARNING"}, "Install Worker cancelled: click Install Worker to finish it, or Remove")]
    assert prefs.worker_python == "/keep/this/python" and installer.running() is None
    python = installer.venv_python(elsewhere)
    assert python.is_file()  # the environment was made; PyTorch's step was stopped before it installed anything
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0


def test_a_package_the_index_lacks_is_named(prefs, online, elsewhere, monkeypatch):
    installer = addon_module("installer")
    monkeypatch.setattr(installer, "PACKAGES", ("momask-no-such-package==1.0",))
    prefs.worker_python = ""
    with pytest.raises(RuntimeError, match=r"Install Worker failed while installing PyTorch \(CPU\) and the worker's "
                                           r"packages: the package index has no momask-no-such-package==1\.0 for "
                                           r"Python 3\.11 on linux\. The log: .*install-worker\.log"):
        bpy.ops.momask.install_worker(torch_index="")
    assert prefs.worker_python == ""
    assert "No matching distribution found for momask-no-such-package==1.0" in installer.log_file().read_text()


def test_without_network_or_online_access(prefs, elsewhere, monkeypatch):
    prefs.worker_python = ""
    with pytest.raises(RuntimeError, match="Blender's online access is off: allow it in Preferences > System > "
                                           "Network"):
        bpy.ops.momask.install_worker(torch_index="")
    assert not elsewhere.exists()

    system = bpy.context.preferences.system
    saved, system.use_online_access = system.use_online_access, True
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # none of this machine's local package sources
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    try:
        with pytest.raises(RuntimeError, match=r"Install Worker failed while installing PyTorch \(CPU\) and the "
                                               "worker's packages: cannot reach the package index: no internet"):
            bpy.ops.momask.install_worker(torch_index="")
    finally:
        system.use_online_access = saved
    assert prefs.worker_python == ""


def test_cuda_build_needs_an_nvidia_gpu_and_each_build_its_index(prefs, online, elsewhere, monkeypatch):
    installer = addon_module("installer")
    monkeypatch.setattr(installer, "has_nvidia_gpu", lambda: False)
    prefs.torch_build = "CUDA"
    try:
        with pytest.raises(RuntimeError, match="No NVIDIA GPU found for the CUDA build of PyTorch"):
            bpy.ops.momask.install_worker()
    finally:
        prefs.torch_build = "CPU"
    assert not elsewhere.exists()
    assert [installer.torch_index(build, platform) for build in ("CPU", "CUDA") for platform in ("linux", "win32")] == [
        "https://download.pytorch.org/whl/cpu", None, None, "https://download.pytorch.org/whl/cu128"]
