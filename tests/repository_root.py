"""pytest plugin (loaded by pyproject's addopts): collect the repository root as a plain folder.

The root holds `__init__.py` because it is the Blender extension's root (blender_manifest.toml beside it). pytest
would collect it as a package and import that `__init__.py` before the first test: as a module named after the
clone's folder, which fails for a folder that is no Python name (`git clone` gives `momask-blender`, a zip
download `momask-blender-main`) and otherwise imports the whole Blender side into every test run. Nothing in the
root file is a test, so the root is collected as a plain folder and that file never imported.
"""
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path, parent):
    if path == parent.config.rootpath:
        return pytest.Dir.from_parent(parent, path=path)
    return None
