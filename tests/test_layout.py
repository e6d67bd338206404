"""The repository's shape: the extension manifest validates with Blender's own validator, and the two
halves keep their import rules (core's numpy parts without torch, the Blender side without torch)."""
import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_manifest_validates_with_blenders_validator():
    spec = importlib.util.find_spec("bpy")  # located, not imported: the wheel ships the validator as a file
    assert spec is not None, "bpy 5.0.1 is not installed (scripts/setup.sh installs it)"
    bpy_root = Path(spec.origin).parent / "5.0" / "scripts"
    result = subprocess.run(
        [sys.executable, str(bpy_root / "addons_core/bl_pkg/cli/blender_ext.py"), "validate", str(REPO),
         "--valid-tags", str(bpy_root / "modules/_bpy_internal/extensions/tags.py")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


NUMPY_ONLY_MODULES = ["core.skeleton", "core.quaternion", "core.features", "core.bvh", "core.bonemap",
                      "core.mocap", "core.solver", "core.protocol", "core.worker", "core.cli"]


def blender_shared_modules() -> list[str]:
    """The core modules the Blender side loads: the __all__ of momask_blender/_core.py, read without importing
    it (its package needs bpy)."""
    tree = ast.parse((REPO / "momask_blender" / "_core.py").read_text())
    listed = next(node.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "__all__")
    return [f"core.{name}" for name in ast.literal_eval(listed)]


def test_core_imports_itself_relatively():
    """Inside Blender core/ is a subpackage of the extension, not the top-level `core` (another add-on's name
    too): a module that imported `core.x` would load another package's module, or none."""
    absolute = [f"{path.relative_to(REPO)}:{node.lineno}" for path in (REPO / "core").rglob("*.py")
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "core"
                or isinstance(node, ast.Import) and any(a.name.split(".")[0] == "core" for a in node.names)]
    assert absolute == []


def test_the_blender_side_loads_core_modules():
    assert {"core.solver", "core.footlock", "core.blending", "core.timebase", "core.protocol"} <= set(
        blender_shared_modules())


def _imported_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True, text=True)
    return {name.split(".")[0] for name in out.stdout.split()}


@pytest.mark.parametrize("module", NUMPY_ONLY_MODULES)
def test_numpy_parts_of_core_import_without_torch(module):
    assert "torch" not in _imported_after(module)


@pytest.mark.parametrize("module", blender_shared_modules())
def test_modules_the_blender_side_shares_need_numpy_only(module):
    """Blender bundles numpy but not scipy."""
    assert not {"torch", "scipy"} & _imported_after(module)


def test_blender_side_never_imports_torch():
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "momask_blender").rglob("*.py")
                 if any(line.strip().startswith(("import torch", "from torch"))
                        for line in p.read_text().splitlines())]
    assert offenders == []
