"""Add-on preferences: the worker (installed by Install Worker, an existing Python, or a whole worker command,
e.g. over ssh), the model directories the panel offers, and where CLIP's weights are.

The chosen model is remembered by its directory (`model_choice`), not by its place in the list: adding,
emptying or removing another directory never moves the choice, and a choice whose directory left the list shows
as missing and gets a message at Generate."""
import importlib.util
import shlex
import sys
import textwrap
from pathlib import Path

import bpy

from . import installer
from ._core import model_dirs
from .worker_client import EXTENSION_ROOT, default_worker_command

ADDON_ID = __package__.rpartition(".")[0] or __package__  # bl_ext.<repo>.momask_blender: the extension root
DEFAULT_MODEL_DIR = model_dirs.DEFAULT_MODEL_DIR  # what the worker loads for a request without a model
DEFAULT_MODEL = "DEFAULT"
# The PyTorch builds Install Worker offers (installer.torch_index finds each one's package index).
TORCH_BUILDS = (("CPU", "CPU", "PyTorch for the processor: works everywhere (about 1.2 GB installed)"),
                ("CUDA", "NVIDIA GPU (CUDA)", "PyTorch with CUDA: faster on an NVIDIA GPU (about 5 GB installed)"))
INSTALL_HINT = ("click Install Worker in the add-on's preferences (Edit > Preferences > Add-ons > MoMask Text to "
                "Motion)")


class WorkerUnavailable(Exception):
    """No way to start the worker; the message says what to do."""


class ModelUnavailable(Exception):
    """The chosen model cannot be used; the message says what to do."""


def find_worker_python(root: Path = EXTENSION_ROOT, blender_python: str = sys.executable) -> str | None:
    """A Python for the worker when none is set: the set-up's virtual environment beside a source checkout, the
    one Install Worker made, else Blender's own Python when torch is installed there (looked up, never imported:
    torch stays out of Blender), else None."""
    for candidate in (root / ".venv" / "bin" / "python", root / ".venv" / "Scripts" / "python.exe",
                      installer.venv_python(installer.worker_folder())):
        if candidate.is_file():
            return str(candidate)
    return blender_python if importlib.util.find_spec("torch") is not None else None


def no_python_message() -> str:
    return f"MoMask needs its worker (PyTorch, run outside Blender): {INSTALL_HINT}"


def local_worker_command(python: str, prefs) -> list[str]:
    """The worker on this machine with interpreter `python` (run with cwd EXTENSION_ROOT)."""
    clip = ["--clip-path", bpy.path.abspath(prefs.clip_path)] if prefs.clip_path else []
    return default_worker_command(python) + clip


def worker_command(prefs) -> list[str]:
    """The worker command the preferences give (run with cwd EXTENSION_ROOT); raises WorkerUnavailable."""
    if prefs.worker_command.strip():
        return shlex.split(prefs.worker_command)
    python = bpy.path.abspath(prefs.worker_python) if prefs.worker_python else find_worker_python()
    if python is None:
        raise WorkerUnavailable(no_python_message())
    if not Path(python).is_file():
        raise WorkerUnavailable(f"Worker Python '{python}' does not exist: {INSTALL_HINT}, or choose another Python")
    return local_worker_command(python, prefs)


def _model_name(path: str) -> str:
    return Path(path).name or path


def model_items(prefs, context):
    """Default, every model directory, and the remembered choice when its directory left the list."""
    paths = list(dict.fromkeys(entry.path for entry in prefs.model_dirs if entry.path))
    items = [(DEFAULT_MODEL, "Default Model", "The model that comes with the add-on")]
    items += [(path, _model_name(path), path) for path in paths]
    if prefs.model_choice not in [item[0] for item in items]:
        items.append((prefs.model_choice, f"Missing: {_model_name(prefs.model_choice)}",
                      "This model directory is no longer in the add-on's preferences: choose another model"))
    items = [(*item, "NONE", i) for i, item in enumerate(items)]
    model_items.cache = items  # Blender keeps pointers into these strings: hold a reference
    return items


def _get_model(prefs) -> int:
    return next(item[4] for item in model_items(prefs, None) if item[0] == prefs.model_choice)


def _set_model(prefs, value: int) -> None:
    prefs.model_choice = next(item[0] for item in model_items(prefs, None) if item[4] == value)


def selected_model(prefs) -> Path:
    """The chosen model directory; raises ModelUnavailable when it left the list."""
    if prefs.model_choice == DEFAULT_MODEL:
        return DEFAULT_MODEL_DIR
    if prefs.model_choice not in [entry.path for entry in prefs.model_dirs]:
        raise ModelUnavailable(f"The model '{_model_name(prefs.model_choice)}' ({prefs.model_choice}) is no longer "
                               "among the model directories in the add-on's preferences: choose another model")
    return Path(bpy.path.abspath(prefs.model_choice))


def check_model_dir(path: Path) -> None:
    """Refuse a model directory that is not there (the worker checks the rest: on ssh it is remote)."""
    if not (path / "config.json").is_file():
        what = "the default model is not installed" if path == DEFAULT_MODEL_DIR else "no model directory"
        raise ModelUnavailable(f"Model '{path}': {what} (no config.json there). Add a model directory in the "
                               "add-on preferences (e.g. released MoMask checkpoints converted with "
                               "`momask import-momask`)")


def get(context=None):
    """This add-on's preferences."""
    return (context or bpy.context).preferences.addons[ADDON_ID].preferences


def wrapped_label(layout, text: str, icon: str = "NONE", width: int = 70) -> None:
    """A long message as several labels: one label is cut off where the region ends."""
    column = layout.column(align=True)
    for i, line in enumerate(textwrap.wrap(text, width)):
        column.label(text=line, icon=icon if i == 0 else "BLANK1")


class MOMASK_PG_model_dir(bpy.types.PropertyGroup):
    path: bpy.props.StringProperty(name="Directory", subtype="DIR_PATH",
                                   description="A MoMask model directory (config.json, weights, mean/std)")


class MOMASK_OT_model_dir_add(bpy.types.Operator):
    """Add a model directory to the list the panel offers"""
    bl_idname = "momask.model_dir_add"
    bl_label = "Add Model Directory"
    bl_options = {"INTERNAL"}

    def execute(self, context):
        get(context).model_dirs.add()
        return {"FINISHED"}


class MOMASK_OT_model_dir_remove(bpy.types.Operator):
    """Remove this model directory from the list (the files stay)"""
    bl_idname = "momask.model_dir_remove"
    bl_label = "Remove Model Directory"
    bl_options = {"INTERNAL"}
    index: bpy.props.IntProperty(options={"HIDDEN"})

    def execute(self, context):
        prefs = get(context)
        if not 0 <= self.index < len(prefs.model_dirs):
            self.report({"ERROR"}, f"no model directory {self.index}")
            return {"CANCELLED"}
        if prefs.model_dirs[self.index].path == prefs.model_choice:
            prefs.model_choice = DEFAULT_MODEL
        prefs.model_dirs.remove(self.index)
        return {"FINISHED"}


class MoMaskPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    torch_build: bpy.props.EnumProperty(name="PyTorch Build", items=TORCH_BUILDS, default="CPU",
                                        description="Which PyTorch Install Worker downloads")
    worker_python: bpy.props.StringProperty(
        name="Worker Python", subtype="FILE_PATH",
        description="A Python with PyTorch and MoMask's packages that runs the worker (Install Worker sets it; "
                    "empty: found automatically)")
    worker_command: bpy.props.StringProperty(
        name="Worker Command",
        description="Replaces the worker command entirely, e.g. ssh gpu-box python -m core.worker for a GPU "
                    "machine (empty: Worker Python runs the worker from the add-on folder)")
    model_dirs: bpy.props.CollectionProperty(type=MOMASK_PG_model_dir)
    model_choice: bpy.props.StringProperty(default=DEFAULT_MODEL, options={"HIDDEN"},
                                           description="The chosen model: DEFAULT or a model directory")
    model: bpy.props.EnumProperty(name="Model", items=model_items, get=_get_model, set=_set_model,
                                  description="The MoMask model that generates motions")
    clip_path: bpy.props.StringProperty(
        name="CLIP ViT-B/32 File", subtype="FILE_PATH",
        description="OpenAI's ViT-B-32.pt, needed by models that use CLIP such as the released MoMask checkpoints "
                    "(empty: ~/.cache/clip/ViT-B-32.pt)")

    def draw(self, context):
        layout = self.layout
        installer.draw(layout, self)
        box = layout.box()
        box.label(text="Or use an existing Python with PyTorch")
        box.prop(self, "worker_python")
        if not self.worker_python and not self.worker_command.strip():
            found = find_worker_python()
            if found:
                box.label(text=f"Found: {found}", icon="CHECKMARK")
        box.prop(self, "worker_command")

        box = layout.box()
        box.label(text="Models")
        box.prop(self, "model")
        for i, entry in enumerate(self.model_dirs):
            row = box.row(align=True)
            row.prop(entry, "path", text="")
            row.operator(MOMASK_OT_model_dir_remove.bl_idname, text="", icon="X").index = i
        box.operator(MOMASK_OT_model_dir_add.bl_idname, icon="ADD")
        box.prop(self, "clip_path")


CLASSES = (MOMASK_PG_model_dir, MOMASK_OT_model_dir_add, MOMASK_OT_model_dir_remove, MoMaskPreferences)
