"""The test suite runs in a checkout whatever its folder is called. The repository root holds the Blender
extension's `__init__.py`, which pytest once imported as a package named after the folder: every test of a clone
named `momask-blender` (what `git clone` gives) errored before running. tests/repository_root.py prevents it; here
a copy of the checkout under each folder name a newcomer gets runs a test module the way scripts/test.sh does,
once without ../shared beside it (its tests skip) and once with it."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_path

COPIED = ["__init__.py", "blender_manifest.toml", "pyproject.toml", "core", "momask_blender", "tests"]
MODULE = "tests/test_features.py"  # numpy only, a second; some of its tests need ../shared


def _copy_checkout(destination: Path) -> Path:
    destination.mkdir(parents=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, destination / name)
    return destination


def _pytest_in(checkout: Path, shared: Path | None) -> subprocess.CompletedProcess:
    """scripts/test.sh's pytest command on MODULE, run in `checkout` (set-up is the interpreter running this)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MOMASK_SHARED", "PYTEST_ADDOPTS")}
    if shared is not None:
        env["MOMASK_SHARED"] = str(shared)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", MODULE], cwd=checkout,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("folder", ["momask-blender", "momask-blender-main", "My Projects/momask-blender"])
def test_suite_runs_in_a_checkout_of_any_folder_name(tmp_path, folder):
    checkout = _copy_checkout(tmp_path / folder)
    done = _pytest_in(checkout, shared=None)  # tmp_path has no shared/ beside the checkout
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\b\d+ passed, \d+ skipped in ", summary), summary
    assert "error" not in summary


@pytest.mark.shared
def test_suite_runs_in_a_checkout_with_shared_beside_it(tmp_path):
    shared = shared_path()
    checkout = _copy_checkout(tmp_path / "My Projects" / "momask-blender")
    done = _pytest_in(checkout, shared=shared)
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.fullmatch(r"\d+ passed in [\d.]+s", summary), summary
