"""Add-on preferences: which Python runs the worker (or a whole worker command, e.g. over ssh) and which model
directories the panel offers. The worker's Python is found by itself where the set-up made one."""
import importlib.util
import shlex
import sys
from pathlib import Path

import bpy

from ._core import model_dirs
from .worker_client import EXTENSION_ROOT, default_worker_command

ADDON_ID = __package__.rpartition(".")[0] or __package__  # bl_ext.<repo>.momask_blender: the extension root
DEFAULT_MODEL_DIR = model_dirs.DEFAULT_MODEL_DIR  # what the worker loads for a request without a model
SETUP_COMMAND = "bash scripts/setup.sh"
DEFAULT_MODEL = "DEFAULT"


class WorkerUnavailable(Exception):
    """No way to start the worker; the message says what to do."""


def find_worker_python(root: Path = EXTENSION_ROOT, blender_python: str = sys.executable) -> str | None:
    """The set-up's virtual environment beside the extension, else Blender's own Python when torch is
    installed there (looked up, never imported: torch stays out of Blender), else None."""
    for candidate in (root / ".venv" / "bin" / "python", root / ".venv" / "Scripts" / "python.exe"):
        if candidate.is_file():
            return str(candidate)
    return blender_python if importlib.util.find_spec("torch") is not None else None


def no_python_message() -> str:
    return (f"No Python with PyTorch found for the MoMask worker. In the momask-blender repository run "
            f"`{SETUP_COMMAND}` (it creates .venv), then set Worker Python to its .venv/bin/python in the "
            f"add-on preferences")


def worker_command(prefs) -> list[str]:
    """The worker command the preferences give (run with cwd EXTENSION_ROOT); raises WorkerUnavailable."""
    if prefs.worker_command.strip():
        return shlex.split(prefs.worker_command)
    python = bpy.path.abspath(prefs.worker_python) if prefs.worker_python else find_worker_python()
    if python is None:
        raise WorkerUnavailable(no_python_message())
    if not Path(python).is_file():
        raise WorkerUnavailable(f"Worker Python '{python}' does not exist; {no_python_message()}")
    return default_worker_command(python)


def _model_items(prefs, context):
    items = [(DEFAULT_MODEL, "Default model", f"The model shipped with the add-on ({DEFAULT_MODEL_DIR})")]
    items += [(str(i), Path(entry.path).name or entry.path, entry.path)
              for i, entry in enumerate(prefs.model_dirs) if entry.path]
    _model_items.cache = items  # Blender keeps pointers into these strings: hold a reference
    return items


def selected_model(prefs) -> Path:
    """The chosen model directory."""
    if prefs.model == DEFAULT_MODEL:
        return DEFAULT_MODEL_DIR
    return Path(bpy.path.abspath(prefs.model_dirs[int(prefs.model)].path))


def check_model_dir(path: Path) -> None:
    """Refuse a model directory that is not there (the worker checks the rest: on ssh it is remote)."""
    if not (path / "config.json").is_file():
        what = "the default model is not installed" if path == DEFAULT_MODEL_DIR else "no model directory"
        raise FileNotFoundError(f"Model '{path}': {what} (no config.json there). Add a model directory in the "
                                "add-on preferences (e.g. released MoMask checkpoints converted with "
                                "`momask import-momask`)")


def get(context=None):
    """This add-on's preferences."""
    return (context or bpy.context).preferences.addons[ADDON_ID].preferences


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
    index: bpy.props.IntProperty()

    def execute(self, context):
        prefs = get(context)
        if not 0 <= self.index < len(prefs.model_dirs):
            self.report({"ERROR"}, f"no model directory {self.index}")
            return {"CANCELLED"}
        prefs.model = DEFAULT_MODEL
        prefs.model_dirs.remove(self.index)
        return {"FINISHED"}


class MoMaskPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    worker_python: bpy.props.StringProperty(
        name="Worker Python", subtype="FILE_PATH",
        description="Python interpreter with PyTorch that runs the MoMask worker (empty: found automatically)")
    worker_command: bpy.props.StringProperty(
        name="Worker Command",
        description="Replaces the worker command entirely, e.g. `ssh gpu-box python -m core.worker` "
                    "(empty: Worker Python runs `-m core.worker` from the add-on folder)")
    model_dirs: bpy.props.CollectionProperty(type=MOMASK_PG_model_dir)
    model: bpy.props.EnumProperty(name="Model", items=_model_items,
                                  description="The MoMask model that generates motions")

    def draw(self, context):
        layout = self.layout
        column = layout.column()
        column.prop(self, "worker_python")
        if not self.worker_python and not self.worker_command.strip():
            found = find_worker_python()
            column.label(text=f"Found: {found}" if found else no_python_message(),
                         icon="CHECKMARK" if found else "ERROR")
        column.prop(self, "worker_command")
        layout.separator()
        layout.prop(self, "model")
        layout.label(text=f"Default model: {DEFAULT_MODEL_DIR}"
                          + ("" if (DEFAULT_MODEL_DIR / "config.json").is_file() else " (not installed)"))
        for i, entry in enumerate(self.model_dirs):
            row = layout.row(align=True)
            row.prop(entry, "path", text="")
            row.operator(MOMASK_OT_model_dir_remove.bl_idname, text="", icon="X").index = i
        layout.operator(MOMASK_OT_model_dir_add.bl_idname, icon="ADD")


CLASSES = (MOMASK_PG_model_dir, MOMASK_OT_model_dir_add, MOMASK_OT_model_dir_remove, MoMaskPreferences)
