"""The torch-free modules of core/ as the Blender side imports them: `from ._core import solver`.

core/ sits beside momask_blender/ and its modules import each other relatively, so it loads under whatever name
its parent gives it: inside Blender as a subpackage of this extension (bl_ext.<repo>.momask_blender.core, never
the top-level name `core`, which another add-on may own), from a checkout (tests, tools) as `core`."""
import importlib

__all__ = ["blending", "bonemap", "footlock", "limits", "model_dirs", "protocol", "skeleton", "solver", "timebase"]
_CORE = __package__.rpartition(".")[0] + ".core" if "." in __package__ else "core"

(blending, bonemap, footlock, limits, model_dirs, protocol, skeleton, solver,
 timebase) = (importlib.import_module(f"{_CORE}.{name}") for name in __all__)
