"""The numpy modules of core/ as the Blender side imports them: `from ._core import solver`.

core's modules import each other as `core.<module>`, the way the worker and the command line run them. Inside
Blender core/ is a subpackage of this extension (bl_ext.<repo>.momask_blender.core), so it is entered in
sys.modules under the name `core` before any of its modules load. Where `core` is already imported (tests and
tools run from a checkout) it must be momask-blender's: another package of that name is refused by name."""
import importlib
import sys
from pathlib import Path


def _momask_core():
    loaded = sys.modules.get("core")
    if loaded is None:
        extension = __package__.rpartition(".")[0]
        if not extension:  # momask_blender imported as a top-level package: core/ sits beside it
            return importlib.import_module("core")
        loaded = sys.modules["core"] = importlib.import_module(extension + ".core")
    root = Path(next(iter(getattr(loaded, "__path__", [])), ".")).parent
    if not (root / "blender_manifest.toml").is_file() or not (root / "core" / "solver.py").is_file():
        raise ImportError(f"the module name 'core' is taken by {loaded!r}, not momask-blender's core/ package; "
                          "disable the add-on or package that installs it")
    return loaded


_momask_core()
# after `core` is registered:
from core import blending, bonemap, footlock, limits, model_dirs, skeleton, solver, timebase  # noqa: E402

__all__ = ["blending", "bonemap", "footlock", "limits", "model_dirs", "skeleton", "solver", "timebase"]
