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
    """The core modules the Blender side loads, read from momask_blender/_core.py's imports and from the modules
    the Blender side imports from core directly."""
    names = set()
    for path in (REPO / "momask_blender").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in ("core", "_core") and node.level in (0, 1):
                names |= {f"core.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("core."):
                names.add(node.module)
    return sorted(names)


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
