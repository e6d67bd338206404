"""BVH -> SMPL-22 joints on real files: up axis, units, frame rate and the bone map's 1:1 case."""
import tarfile
from dataclasses import replace

import numpy as np
import pytest

from core.bonemap import UnmappableSkeletonError, map_skeleton
from core.bvh import read_bvh
from core.cli import main as momask
from core.mocap import Z_UP_TO_Y_UP, bvh_to_smpl_joints
from core.skeleton import JOINT_INDEX, LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS
from core.timebase import resample
from tests.conftest import ACCAD_UP_FROM_CLIP, shared_path

FEET = list(LEFT_FOOT_JOINTS + RIGHT_FOOT_JOINTS)


def test_resample_interpolates_linearly_in_time():
    rng = np.random.default_rng(1)
    start, velocity = rng.normal(size=(22, 3)), rng.normal(size=(22, 3))
    positions = start + velocity * np.arange(31)[:, None, None] / 30.0  # 1 s of linear motion at 30 fps
    out = resample(positions, 20.0, 30.0)
    assert out.shape == (21, 22, 3)
    np.testing.assert_allclose(out, start + velocity * np.arange(21)[:, None, None] / 20.0, atol=1e-12)

    wiggle = rng.normal(size=(32, 22, 3))  # 32 frames: floor(31 * 20 / 30) + 1 = 21 output frames
    out = resample(wiggle, 20.0, 30.0)
    assert out.shape == (21, 22, 3)
    np.testing.assert_allclose(out[::2], wiggle[::3], atol=1e-12)  # shared instants are kept
    np.testing.assert_allclose(out[1], (wiggle[1] + wiggle[2]) / 2, atol=1e-12)  # 1.5 source frames in
    np.testing.assert_allclose(resample(wiggle, 30.0, 30.0), wiggle, atol=1e-12)
    assert resample(wiggle, 20.0, 120.0).shape[0] == 31 // 6 + 1


def standing(joints: np.ndarray) -> dict:
    """Body measurements (metres, y up) of (T, 22, 3) joints."""
    floor = joints[:, FEET, 1].min(axis=1)
    leg = np.linalg.norm(joints[:, 1] - joints[:, 4], axis=-1) + np.linalg.norm(joints[:, 4] - joints[:, 7], axis=-1)
    return {"pelvis": np.median(joints[:, 0, 1] - floor), "leg": np.median(leg),
            "head_above_pelvis": joints[:, JOINT_INDEX["head"], 1] > joints[:, 0, 1] + 0.3}


@pytest.mark.shared
@pytest.mark.parametrize("name, frames, fps, unit, up", [
    ("bvh_cmu_12_01_walk_mobu.bvh", 524, 120, "no unit gives a human height", "y"),
    ("bvh_zup_nomixamoprefix.bvh", 75, 30, "inch (detected)", "z"),
    ("bvh_smpl22_humanml3d_momask_template.bvh", 720, 60, "m (detected)", "y"),
])
def test_real_bvh_become_upright_metric_joints_at_20_fps(name, frames, fps, unit, up):
    joints, report = bvh_to_smpl_joints(shared_path("rigs", name))
    assert joints.shape == ((frames - 1) * 20 // fps + 1, 22, 3) and joints.dtype == np.float64
    assert f"{frames} frames at {fps} fps" in report
    assert f"up axis: {up} (detected: feet -> head within 45 deg of +{up} in 100% of frames" in report
    assert f"unit: {unit}" in report
    body = standing(joints)
    assert body["head_above_pelvis"].all()
    assert 0.7 <= body["pelvis"] <= 1.2
    assert 0.65 <= body["leg"] <= 1.1


@pytest.mark.shared
def test_z_up_file_is_turned_upright_not_mirrored():
    path = shared_path("rigs", "bvh_zup_nomixamoprefix.bvh")
    joints, _ = bvh_to_smpl_joints(path, fps=30.0)
    raw = read_bvh(path)
    positions = raw.global_positions()
    names = raw.names
    # A proper rotation: x is kept, file z becomes y and file y becomes -z (scaled by inches).
    hips, head = names.index("Hips"), names.index("Head")
    np.testing.assert_allclose(joints[:, 0], positions[:, hips] @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
                               * 0.0254, atol=1e-9)
    np.testing.assert_allclose(joints[:, JOINT_INDEX["head"], 1], positions[:, head, 2] * 0.0254, atol=1e-9)
    # told y, the file is taken as y up: the same body, lying on its back (head towards -z), same unit
    lying, report = bvh_to_smpl_joints(path, fps=30.0, up="y")
    assert "up axis: y (given)" in report and "inch (detected)" in report
    np.testing.assert_allclose(lying, joints @ Z_UP_TO_Y_UP, atol=1e-9)


@pytest.mark.shared
def test_smpl_template_maps_one_to_one_onto_its_forward_kinematics():
    bvh = read_bvh(shared_path("rigs", "bvh_smpl22_humanml3d_momask_template.bvh"))
    bone_map = map_skeleton(bvh.names, bvh.parents, bvh.rest_positions())
    assert bone_map.weights.shape == (22, 22)
    bones = bone_map.weights.argmax(axis=1)
    np.testing.assert_array_equal(bone_map.weights, np.eye(22)[bones])  # one-hot rows
    assert sorted(bones) == list(range(22))                             # a permutation
    assert bvh.names[bones[JOINT_INDEX["left_collar"]]] == "LeftShoulder"
    assert bvh.names[bones[JOINT_INDEX["left_shoulder"]]] == "LeftArm"

    joints, report = bvh_to_smpl_joints(bvh, fps=20.0)
    rest = bvh.rest_positions()  # a near-T pose, taller than any frame of the clip
    height = rest[bvh.names.index("Head"), 1] - rest[[bvh.names.index(n) for n in ("LeftToe", "RightToe")], 1].min()
    assert f"standing height (head joint to lowest foot): {height:.4g} file units" in report
    expected = resample(bvh.global_positions()[:, bones], 20.0, 60.0)
    np.testing.assert_allclose(joints, expected, atol=1e-12)
    joints60, _ = bvh_to_smpl_joints(bvh, fps=60.0)
    np.testing.assert_allclose(joints60, bvh.global_positions()[:, bones], atol=1e-12)


@pytest.mark.shared
@pytest.mark.parametrize("factor, unit", [(100, "cm"), (1000, "mm"), (1 / 0.0254, "inch"), (1 / 0.3048, "foot"),
                                          (7, None)])
def test_unit_is_the_one_giving_a_human_height(factor, unit):
    bvh = read_bvh(shared_path("rigs", "bvh_smpl22_humanml3d_momask_template.bvh"))
    metres, _ = bvh_to_smpl_joints(bvh)
    is_position = np.array([c.endswith("position") for channels in bvh.channels for c in channels])
    scaled = replace(bvh, offsets=bvh.offsets * factor, motion=np.where(is_position, bvh.motion * factor, bvh.motion))
    joints, report = bvh_to_smpl_joints(scaled)
    if unit is not None:
        assert f"unit: {unit} (detected)" in report
        np.testing.assert_allclose(joints, metres * factor * dict(cm=0.01, mm=0.001, inch=0.0254, foot=0.3048)[unit],
                                   atol=1e-9)
    else:  # 10.5 m tall in metres, 3.2 m in feet: no unit fits, the body is scaled to a standard height
        assert "no unit gives a human height, scaled to 1.55 m" in report and "= 1.55 m" in report
        ratio = joints[0, 0, 1] / metres[0, 0, 1]
        np.testing.assert_allclose(joints, metres * ratio, atol=1e-9)
        assert 1.55 / 1.6 < ratio < 1.55 / 1.4


def without_toes(bvh, end_sites: bool):
    """The skeleton with its toe bones cut off, optionally leaving End Sites where they started."""
    toes = [bvh.names.index(name) for name in ("LeftToe", "RightToe")]
    keep = [j for j in range(len(bvh.names)) if j not in toes]
    new_index = {old: new for new, old in enumerate(keep)}
    columns = np.split(np.arange(bvh.motion.shape[1]), np.cumsum([len(c) for c in bvh.channels])[:-1])
    sites = list(bvh.end_sites)
    for toe in toes:
        sites[bvh.parents[toe]] = bvh.offsets[toe] if end_sites else None
    return replace(bvh, names=[bvh.names[j] for j in keep], parents=np.array([new_index.get(bvh.parents[j], -1)
                                                                              for j in keep]),
                   offsets=bvh.offsets[keep], channels=[bvh.channels[j] for j in keep],
                   end_sites=[sites[j] for j in keep], motion=bvh.motion[:, np.concatenate([columns[j] for j in keep])])


@pytest.mark.shared
def test_missing_toe_bones_come_from_ankle_end_sites():
    bvh = read_bvh(shared_path("rigs", "bvh_smpl22_humanml3d_momask_template.bvh"))
    joints, _ = bvh_to_smpl_joints(bvh)
    toeless, report = bvh_to_smpl_joints(without_toes(bvh, end_sites=True))
    assert "left_foot, right_foot: placed at the ankle bones' End Sites" in report
    np.testing.assert_allclose(toeless, joints, atol=1e-9)
    with pytest.raises(UnmappableSkeletonError, match="no bone for left_foot and its ankle 'LeftFoot' has no End"):
        bvh_to_smpl_joints(without_toes(bvh, end_sites=False))


@pytest.fixture(scope="module")
def bandai_clip(tmp_path_factory):
    """The first .bvh in the Bandai-Namco archive, streamed out (a .tar.xz decompresses front to back)."""
    archive = shared_path("data", "bandai-namco-motion.tar.xz")
    with tarfile.open(archive, "r|xz") as stream:
        member = next(m for m in stream if m.name.endswith(".bvh"))
        path = tmp_path_factory.mktemp("bandai") / member.name.rsplit("/", 1)[-1]
        path.write_bytes(stream.extractfile(member).read())
    return path


@pytest.mark.shared
def test_bandai_clip_in_centimetres_mapped_on_its_first_frame(bandai_clip):
    bvh = read_bvh(bandai_clip)
    assert bvh.names[:2] == ["joint_Root", "Hips"] and bvh.fps == 30.0
    joints, report = bvh_to_smpl_joints(bvh)
    assert joints.shape == ((len(bvh.motion) - 1) * 2 // 3 + 1, 22, 3)
    assert "unit: cm (detected)" in report and "up axis: y (detected" in report
    assert "bone map (made on frame 0)" in report  # its zero-rotation rest pose lies along +x
    body = standing(joints)
    assert body["head_above_pelvis"].all() and 0.7 <= body["pelvis"] <= 1.2 and 0.65 <= body["leg"] <= 1.1

    np.testing.assert_allclose(bvh_to_smpl_joints(bvh, scale=0.01)[0], joints)
    np.testing.assert_allclose(bvh_to_smpl_joints(bvh, scale=0.02)[0], 2 * joints)


@pytest.mark.shared
def test_cli_writes_joints_at_requested_rate(tmp_path, capsys):
    out = tmp_path / "walk.npy"
    assert momask(["bvh2joints", str(shared_path("rigs", "bvh_cmu_12_01_walk_mobu.bvh")), str(out),
                   "--fps", "30", "--scale", "0.056"]) == 0
    assert np.load(out).shape == (523 // 4 + 1, 22, 3)
    assert "0.056 m per file unit (given)" in capsys.readouterr().out


@pytest.mark.shared
def test_cli_takes_the_up_axis_it_is_told(tmp_path, capsys):
    path = shared_path("rigs", "bvh_zup_nomixamoprefix.bvh")
    assert momask(["bvh2joints", str(path), str(tmp_path / "told.npy"), "--up", "y"]) == 0
    assert "up axis: y (given)" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "told.npy"), bvh_to_smpl_joints(path, up="y")[0], atol=1e-6)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="up must be"):
        bvh_to_smpl_joints(tmp_path / "x.bvh", up="x")
    with pytest.raises(ValueError, match="scale must be"):
        bvh_to_smpl_joints(tmp_path / "x.bvh", scale=0)
    with pytest.raises(FileNotFoundError):
        bvh_to_smpl_joints(tmp_path / "missing.bvh")


# Those of the ACCAD clips whose first frame is no upright body (crawling, lying, leaning into a turn) that stand
# upright in most frames (Male1-walk_to_crouch does not: its file folds the spine down below the hips).
UPRIGHT_MOSTLY = ("Male1-Run_turn_change_direction", "Male1-walk_to_skip", "Male2-Run_turn_right_90",
                  "Male2-Walk_back_turn_forward")


@pytest.mark.shared
@pytest.mark.parametrize("name", ACCAD_UP_FROM_CLIP)
def test_up_axis_and_unit_come_from_the_whole_clip(more_mocap, name):
    """ACCAD's rest pose lies along +x and these clips start crawling, lying or leaning: the whole clip shows y up
    (the BVH convention, and the floor the body rests on) and centimetres (the body's length, whatever its pose).
    Told up='y', the same clip converts alike."""
    path = more_mocap / "accad" / "general" / f"{name}.bvh"
    joints, report = bvh_to_smpl_joints(path)
    assert "up axis: y (detected: feet -> head within 45 deg of +y" in report and "unit: cm (detected)" in report
    floor = joints[:, FEET, 1].min(axis=1)
    assert np.abs(floor - np.median(floor)).max() < 0.25  # metres: resting on one floor, jumps and all
    upright = (joints[:, JOINT_INDEX["head"], 1] - joints[:, 0, 1]) > 0.3
    assert upright.mean() > 0.6 if name in UPRIGHT_MOSTLY else upright.mean() < 0.8
    np.testing.assert_array_equal(bvh_to_smpl_joints(path, up="y")[0], joints)


@pytest.mark.shared
@pytest.mark.parametrize("clip", ["cmu/bvh_daz/07_12.bvh", "cmu/bvh_cc/007_01.bvh", "cmu/bvh_cc/002_01.bvh"])
def test_daz_and_character_creator_skeletons_convert(more_mocap, clip):
    """Names no preset knows (Daz lShldr, CC_Base_L_Upperarm with twist and share bones, an RL_BoneRoot above
    the hips): the structure finds the joints the names do not; the body moves upright on human legs (07_12
    walks with bent knees)."""
    joints, report = bvh_to_smpl_joints(more_mocap / clip)
    assert "up axis: y (detected" in report and "(by structure)" in report
    body = standing(joints)
    assert body["head_above_pelvis"].mean() > 0.9 and 0.55 <= body["pelvis"] <= 1.2 and 0.65 <= body["leg"] <= 1.1
