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


# Clips of ../shared/data/more-mocap.tar.xz the bone-map and mocap tests read: the 14 ACCAD clips whose up axis
# only the whole clip shows, and one take of each skeleton no preset names (CMU in Daz and in Character Creator
# naming; 002_01 under an extra RL_BoneRoot).
ACCAD_UP_FROM_CLIP = ("Female-Crawl_backwards", "Female-Crawl_forward", "Male1-Crawl_backwards", "Male1-Crawl_forward",
                      "Male1-Lie", "Male1-Lie_to_Crouch", "Male1-Run_turn_change_direction", "Male1-walk_to_crouch",
                      "Male1-walk_to_skip", "Male2-Crawl_forward", "Male2-Lie", "Male2-Lie_to_Crouch",
                      "Male2-Run_turn_right_90", "Male2-Walk_back_turn_forward")
MORE_MOCAP_CLIPS = (*(f"accad/general/{name}.bvh" for name in ACCAD_UP_FROM_CLIP), "cmu/bvh_daz/07_12.bvh",
                    "cmu/bvh_cc/007_01.bvh", "cmu/bvh_cc/002_01.bvh")


@pytest.fixture(scope="session")
def more_mocap(tmp_path_factory) -> Path:
    """A folder with MORE_MOCAP_CLIPS (paths as in the archive, under more-mocap/), streamed out once."""
    import tarfile
    archive = shared_path("data", "more-mocap.tar.xz")
    out = tmp_path_factory.mktemp("more-mocap")
    wanted = {f"more-mocap/{clip}" for clip in MORE_MOCAP_CLIPS}
    with tarfile.open(archive, "r|xz") as stream:
        for member in stream:
            if member.name in wanted:
                path = out / member.name.removeprefix("more-mocap/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(stream.extractfile(member).read())
    return out
