"""Shared test fixtures: where ../shared lives, and skipping tests that need it outside CI."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOMASK_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared; skips the test (or fails it in CI, where the data must be there)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = f"needs {path} (../shared is only present in CI and on the developers' machines)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
def fixture_dir() -> Path:
    """The HumanML3D reference clip and statistics."""
    return shared_path("fixtures", "humanml3d")
