"""BVH parsing, forward kinematics and writing, checked against rotations composed by hand."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.bvh import BvhError, parse_bvh, read_bvh, write_bvh
from core.skeleton import JOINT_NAMES, PARENTS, TARGET_OFFSETS
from tests.conftest import shared_path


def elementary(axis: str, degrees: np.ndarray) -> np.ndarray:
    """(F, 3, 3) rotations about one coordinate axis, written out (independent of scipy's Euler code)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    one, zero = np.ones_like(c), np.zeros_like(c)
    rows = {"X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
    return np.moveaxis(np.array(rows), -1, 0)


# Root with rotation channels only (YXZ), a joint with position channels after its rotations (XYZ order),
# a leaf with ZXY and an End Site; CRLF, tabs, runs of spaces and junk after the frames.
ODD_LAYOUT = (
    "HIERARCHY\r\nROOT  Pelvis\r\n{\r\n\tOFFSET 1.0   2.0 3.0\r\n\tCHANNELS 3 Yrotation Xrotation Zrotation\r\n"
    "\tJOINT Chest\r\n\t{\r\n\t\tOFFSET 0 5 0\r\n"
    "\t\tCHANNELS 6 Xrotation Yrotation Zrotation Xposition Yposition Zposition\r\n"
    "\t\tJOINT Head\r\n\t\t{\r\n\t\t\tOFFSET 0.5 4 -1\r\n\t\t\tCHANNELS 3 Zrotation Xrotation Yrotation\r\n"
    "\t\t\tEnd Site\r\n\t\t\t{\r\n\t\t\t\tOFFSET 0 2 0\r\n\t\t\t}\r\n\t\t}\r\n\t}\r\n}\r\n"
    "MOTION\r\nFrames:\t{frames}\r\nFrame Time:\t0.0333333\r\n{rows}\r\n\r\nexported by some tool\r\n"
)


def odd_layout_text(motion: np.ndarray) -> str:
    rows = "\r\n".join("  ".join(f"{v:.12g}" for v in row) for row in motion)
    return ODD_LAYOUT.replace("{frames}", str(len(motion))).replace("{rows}", rows)


def test_odd_channel_layout_matches_hand_composed_rotations():
    rng = np.random.default_rng(0)
    motion = rng.uniform(-170, 170, size=(6, 12))
    motion[:, 6:9] = rng.normal(size=(6, 3)) * 3  # Chest's positions
    bvh = parse_bvh(odd_layout_text(motion), source="odd.bvh")

    assert bvh.names == ["Pelvis", "Chest", "Head"]
    assert bvh.parents.tolist() == [-1, 0, 1]
    assert bvh.channels[1] == ("Xrotation", "Yrotation", "Zrotation", "Xposition", "Yposition", "Zposition")
    assert bvh.end_sites[0] is None and bvh.end_sites[1] is None
    np.testing.assert_array_equal(bvh.end_sites[2], [0, 2, 0])
    assert bvh.fps == 30.0
    np.testing.assert_array_equal(bvh.rest_positions(), [[1, 2, 3], [1, 7, 3], [1.5, 11, 2]])

    rot_pelvis = elementary("Y", motion[:, 0]) @ elementary("X", motion[:, 1]) @ elementary("Z", motion[:, 2])
    rot_chest = rot_pelvis @ elementary("X", motion[:, 3]) @ elementary("Y", motion[:, 4]) \
        @ elementary("Z", motion[:, 5])
    pelvis = np.tile([1.0, 2.0, 3.0], (6, 1))  # no position channels: the root stays at its OFFSET
    chest = pelvis + np.einsum("fij,fj->fi", rot_pelvis, motion[:, 6:9])  # positions replace the OFFSET
    head = chest + np.einsum("fij,j->fi", rot_chest, [0.5, 4.0, -1.0])
    np.testing.assert_allclose(bvh.global_positions(), np.stack([pelvis, chest, head], axis=1), atol=1e-10)


def test_root_position_channels_replace_its_offset():
    text = ("HIERARCHY\nROOT Hips\n{\nOFFSET 9 9 9\nCHANNELS 6 Zrotation Xposition Yposition Zposition Xrotation "
            "Yrotation\nJOINT Leg\n{\nOFFSET 0 -1 0\nCHANNELS 3 Xrotation Yrotation Zrotation\nEnd Site\n{\n"
            "OFFSET 0 -1 0\n}\n}\n}\nMOTION\nFrames: 1\nFrame Time: 0.01\n90 1 2 3 0 0 0 0 0\n")
    positions = parse_bvh(text).global_positions()[0]
    # Zrotation 90 degrees turns the leg's -y offset into +x.
    np.testing.assert_allclose(positions, [[1, 2, 3], [2, 2, 3]], atol=1e-12)


def random_pose(num_frames: int, seed: int):
    rng = np.random.default_rng(seed)
    rotations = Rotation.random(num_frames * len(PARENTS), random_state=seed)
    root = rng.normal(size=(num_frames, 3)) + [0.0, 0.9, 0.0]
    return rotations, root


def hand_forward_kinematics(matrices: np.ndarray, root: np.ndarray) -> np.ndarray:
    """SMPL-order forward kinematics with plain matrix products."""
    positions = np.zeros((len(root), len(PARENTS), 3))
    global_rot = np.zeros_like(matrices)
    for j, parent in enumerate(PARENTS):
        if parent < 0:
            global_rot[:, j], positions[:, j] = matrices[:, j], root
        else:
            global_rot[:, j] = global_rot[:, parent] @ matrices[:, j]
            positions[:, j] = positions[:, parent] + global_rot[:, parent] @ TARGET_OFFSETS[j]
    return positions


@pytest.mark.parametrize("order, as_quaternions", [("ZYX", False), ("XZY", True), ("YXZ", False)])
def test_write_read_round_trip(tmp_path, order, as_quaternions):
    num_frames = 7
    rotations, root = random_pose(num_frames, seed=len(order) + as_quaternions)
    matrices = rotations.as_matrix().reshape(num_frames, len(PARENTS), 3, 3)
    local = rotations.as_quat(scalar_first=True).reshape(num_frames, len(PARENTS), 4) if as_quaternions \
        else matrices
    leaves = [j for j in range(len(PARENTS)) if j not in PARENTS]
    end_sites = [np.array([0.0, 0.0, 0.1]) if j in leaves else None for j in range(len(PARENTS))]
    path = write_bvh(tmp_path / "pose.bvh", list(JOINT_NAMES), PARENTS, TARGET_OFFSETS, local, root,
                     frame_time=1 / 20, order=order, end_sites=end_sites)

    bvh = read_bvh(path)
    assert sorted(bvh.names) == sorted(JOINT_NAMES) and bvh.fps == 20.0 and len(bvh.motion) == num_frames
    assert bvh.channels[0] == ("Xposition", "Yposition", "Zposition") + tuple(f"{a}rotation" for a in order)
    assert all(len(c) == 3 for c in bvh.channels[1:])
    written_order = [JOINT_NAMES.index(name) for name in bvh.names]  # depth first, not SMPL order
    assert [bvh.names[p] if p >= 0 else None for p in bvh.parents] == \
        [JOINT_NAMES[PARENTS[j]] if PARENTS[j] >= 0 else None for j in written_order]
    assert [bvh.end_sites[i] is not None for i in range(len(PARENTS))] == [j in leaves for j in written_order]
    expected = hand_forward_kinematics(matrices, root)[:, written_order]
    scale = np.abs(expected).max()
    np.testing.assert_allclose(bvh.global_positions(), expected, rtol=0, atol=1e-6 * scale)


def test_write_rejects_bad_arguments(tmp_path):
    rotations, root = random_pose(2, seed=3)
    matrices = rotations.as_matrix().reshape(2, len(PARENTS), 3, 3)
    with pytest.raises(ValueError, match="permutation of 'XYZ'"):
        write_bvh(tmp_path / "a.bvh", JOINT_NAMES, PARENTS, TARGET_OFFSETS, matrices, root, 0.05, order="ZXZ")
    with pytest.raises(ValueError, match="exactly one root"):
        write_bvh(tmp_path / "a.bvh", JOINT_NAMES, np.where(PARENTS == 0, -1, PARENTS), TARGET_OFFSETS,
                  matrices, root, 0.05)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        write_bvh(tmp_path / "a.bvh", JOINT_NAMES, PARENTS, TARGET_OFFSETS, matrices, root[:1], 0.05)


VALID = odd_layout_text(np.zeros((3, 12)))


@pytest.mark.parametrize("text, problem", [
    (VALID.split("MOTION")[0], "no MOTION line"),
    (VALID[:VALID.index("JOINT Head")] + "MOTION\nFrames: 0\nFrame Time: 0.1\n", "line 9: hierarchy ends early"),
    (VALID.replace("Frames:\t3", "Frames:\t5"), "line 28: expected frame 3 of 5, found 'exported by some tool'"),
    (VALID.replace("Frames:\t3", "Frames:\t5").replace("exported by some tool", ""),
     "'Frames: 5' but only 3 frame lines follow"),
    (VALID.replace("Frames:\t3", "Frames:\t2"), "line 26: more frame lines than 'Frames: 2'"),
    (VALID.replace("0  0\r\n0  0  0", "0  0\r\n0  0", 1), "line 25: frame 1 has 11 values, the hierarchy declares 12"),
    (VALID.replace("0.0333333\r\n0  ", "0.0333333\r\nx  "), "line 24: frame values are not all numbers"),
    (VALID.replace("0.0333333\r\n0  ", "0.0333333\r\nnan  "), "line 24: frame values are not all finite"),
    (VALID.replace("Zrotation Xrotation Yrotation", "Zrotation Wrotation Yrotation"),
     "line 13: unknown channel 'Wrotation' on joint 'Head'"),
    (VALID.replace("OFFSET 0 5 0", "OFFSET 0 five 0"), "line 8: expected 3 numbers after OFFSET of 'Chest'"),
    (VALID.replace("Frame Time:\t0.0333333", "Frame Time:\t0"), "line 23: Frame Time must be a positive"),
    (VALID.replace("Frames:\t3", "Framez 3"), "line 22: expected 'Frames: <count>'"),
    (VALID.replace("JOINT Head", "JOINT Chest"), "line 10: joint name 'Chest' appears twice"),
])
def test_corrupt_files_name_file_line_and_problem(tmp_path, text, problem):
    path = tmp_path / "broken.bvh"
    path.write_bytes(text.encode())
    with pytest.raises(BvhError) as caught:
        read_bvh(path)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(str(path))
    assert problem in str(caught.value)


@pytest.mark.shared
def test_reads_cmu_file_with_mixed_line_endings():
    path = shared_path("rigs", "bvh_cmu_12_01_walk_mobu.bvh")
    assert b"\r\n" in path.read_bytes()
    bvh = read_bvh(path)
    assert len(bvh.names) == 31 and bvh.names[:3] == ["Hips", "LHipJoint", "LeftUpLeg"]
    assert bvh.motion.shape == (524, 6 + 30 * 3)
    assert bvh.fps == 120.0
    positions = bvh.global_positions()
    # Root channels are world positions; the walk moves forward along the floor.
    np.testing.assert_allclose(positions[:, 0], bvh.motion[:, :3])
    assert np.linalg.norm(positions[-1, 0, [0, 2]] - positions[0, 0, [0, 2]]) > 10
