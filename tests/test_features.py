"""HumanML3D features <-> joints: against the released HumanML3D clip 000000, and by the invariances and
symmetries that the representation must have (these run without ../shared on a synthetic motion)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import core.features as features
from core.cli import main
from core.features import (CONTACTS, FEATURE_DIM, LOCAL_VEL, RIC, ROOT_LIN_VEL, ROOT_ROT_VEL, ROOT_Y, ROT6D,
                           canonical_joints, foot_contacts, forward_kinematics, joints_to_features,
                           mirror_features, mirror_joints, recover_from_ric)
from core.quaternion import qrot
from core.skeleton import (MIRROR_PERMUTATION, PARENTS, RAW_OFFSETS, TARGET_BONE_LENGTHS,
                           TARGET_OFFSETS)
from tests.support.motions import synthetic_motion

SLICES = {"root_rot_vel": ROOT_ROT_VEL, "root_lin_vel": ROOT_LIN_VEL, "root_y": ROOT_Y, "ric": RIC,
          "rot6d": ROT6D, "local_vel": LOCAL_VEL, "contacts": CONTACTS}
# Released features vs ours (HumanML3D computed in float32, and from 117 frames where we have 116, which moves
# the Gaussian-smoothed facing of the last rows a little).
FIXTURE_TOLERANCE = {"root_rot_vel": 1e-5, "root_lin_vel": 1e-5, "root_y": 1e-5, "ric": 1e-4, "rot6d": 5e-4,
                     "local_vel": 1e-5, "contacts": 0.0}


@pytest.fixture
def fixture_clip(fixture_dir):
    return np.load(fixture_dir / "000000_joints.npy"), np.load(fixture_dir / "000000_vecs.npy")


def test_slices_follow_the_263_layout():
    assert [(s.start, s.stop) for s in SLICES.values()] == [(0, 1), (1, 3), (3, 4), (4, 67), (67, 193),
                                                            (193, 259), (259, 263)]
    assert FEATURE_DIM == 263


@pytest.mark.shared
def test_recover_from_ric_reproduces_released_joints(fixture_clip):
    joints, vecs = fixture_clip
    assert np.abs(recover_from_ric(vecs) - joints).max() < 1e-5


@pytest.mark.shared
def test_features_of_released_joints_match_released_features(fixture_clip):
    joints, vecs = fixture_clip
    ours = joints_to_features(joints)
    assert ours.shape == (len(joints) - 1, 263) and ours.dtype == np.float64
    for name, sl in SLICES.items():
        error = np.abs(ours[:, sl] - vecs[:len(ours), sl]).max()
        assert error <= FIXTURE_TOLERANCE[name], f"{name}: max error {error:.3g}"


@pytest.mark.shared
def test_released_joints_are_already_canonical(fixture_clip):
    joints, _ = fixture_clip
    assert np.abs(canonical_joints(joints) - joints).max() < 1e-5


def test_canonical_joints_stand_on_the_target_skeleton_at_the_origin_facing_z():
    canon = canonical_joints(synthetic_motion())
    bones = np.linalg.norm(canon[:, 1:] - canon[:, PARENTS[1:]], axis=-1)
    np.testing.assert_allclose(bones, np.broadcast_to(TARGET_BONE_LENGTHS[1:], bones.shape), atol=1e-12)
    assert canon[..., 1].min() == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(canon[0, 0, [0, 2]], 0.0, atol=1e-12)
    across = canon[0, 2] - canon[0, 1] + canon[0, 17] - canon[0, 16]
    forward = np.cross([0.0, 1.0, 0.0], across)
    np.testing.assert_allclose(forward / np.linalg.norm(forward), [0.0, 0.0, 1.0], atol=1e-12)


def test_features_ignore_where_the_motion_is_placed_facing_and_its_scale():
    motion = synthetic_motion()
    yaw = Rotation.from_euler("y", 2.3).as_quat(scalar_first=True)
    moved = 1.7 * qrot(yaw, motion) + np.array([3.0, -0.4, -5.0])
    np.testing.assert_allclose(joints_to_features(moved), joints_to_features(motion), atol=1e-9)


def test_recover_from_ric_inverts_features_of_a_turning_motion():
    motion = synthetic_motion()
    feats = joints_to_features(motion)
    assert np.abs(feats[:, ROOT_ROT_VEL]).max() > 0.01  # the figure really turns
    np.testing.assert_allclose(recover_from_ric(feats), canonical_joints(motion)[:-1], atol=1e-9)


def test_recover_from_ric_accepts_batches():
    feats = np.stack([joints_to_features(synthetic_motion(seed=s)) for s in (1, 2)])
    batch = recover_from_ric(feats)
    assert batch.shape == (2, 79, 22, 3)
    np.testing.assert_allclose(batch[1], recover_from_ric(feats[1]))


def test_mirroring_twice_is_the_identity():
    motion = synthetic_motion()
    feats = joints_to_features(motion)
    np.testing.assert_array_equal(mirror_joints(mirror_joints(motion)), motion)
    np.testing.assert_array_equal(mirror_features(mirror_features(feats)), feats)


def test_mirrored_features_recover_the_mirrored_motion():
    feats = joints_to_features(synthetic_motion())
    np.testing.assert_allclose(recover_from_ric(mirror_features(feats)),
                               mirror_joints(recover_from_ric(feats)), atol=1e-12)


def test_mirror_features_commutes_with_processing_on_a_symmetric_skeleton(monkeypatch):
    """With a left-right symmetric target skeleton mirroring the features equals featurising the mirrored
    joints in every slice, rot6d included: this pins the sign pattern and swap of each slice."""
    symmetric = (TARGET_BONE_LENGTHS + TARGET_BONE_LENGTHS[MIRROR_PERMUTATION]) / 2
    monkeypatch.setattr(features, "TARGET_BONE_LENGTHS", symmetric)
    monkeypatch.setattr(features, "TARGET_OFFSETS", RAW_OFFSETS * symmetric[:, None])
    motion = canonical_joints(synthetic_motion())  # now on the symmetric skeleton: both legs equally long
    feats = joints_to_features(motion)
    np.testing.assert_allclose(mirror_features(feats), joints_to_features(mirror_joints(motion)), atol=1e-9)


# HumanML3D's target skeleton is not symmetric (its left leg is 1 cm longer, and the root is scaled by the right
# leg), so the features of mirrored joints put the mirrored motion on differently long bones: root, ric and
# velocities differ by that (about 1 cm); the facing, read from hips and shoulders, moves slightly, which moves
# root rotation and rot6d; contacts flip only where a foot speed sits at the threshold. Measured on clip 000000:
# 4.9e-3, 5.9e-4, 1.9e-3, 1.5e-2, 1.7e-2, 4.7e-3 and 2 of 460 contact flags.
MIRROR_TOLERANCE = {"root_rot_vel": 1e-2, "root_lin_vel": 1e-3, "root_y": 3e-3, "ric": 2e-2, "rot6d": 3e-2,
                    "local_vel": 1e-2}


@pytest.mark.shared
def test_mirror_features_match_features_of_mirrored_released_joints(fixture_clip):
    joints, _ = fixture_clip
    feats = joints_to_features(joints)
    mirrored, expected = mirror_features(feats), joints_to_features(mirror_joints(joints))
    for name, tolerance in MIRROR_TOLERANCE.items():
        error = np.abs(mirrored[:, SLICES[name]] - expected[:, SLICES[name]]).max()
        assert error <= tolerance, f"{name}: max error {error:.3g}"
    # the clip kicks with the left leg: the feet differ often, so a missing swap could not pass
    contacts = foot_contacts(feats)
    assert (contacts[:, :2] != contacts[:, 2:]).mean() > 0.2
    assert (foot_contacts(mirrored) == foot_contacts(expected)).mean() >= 0.98


def test_foot_contacts_tell_the_standing_foot_from_the_swinging_one():
    """A figure standing still and swinging its right leg: the left foot is in contact throughout, the right
    one only at the turning points of the swing; mirrored, the other way round."""
    local = np.tile([1.0, 0.0, 0.0, 0.0], (60, 22, 1))
    swing = 0.6 * np.sin(2 * np.pi * np.arange(60) / 20)
    local[:, 2] = np.stack([np.cos(swing / 2), np.sin(swing / 2), 0 * swing, 0 * swing], axis=-1)
    motion = forward_kinematics(local, np.tile([0.0, 1.0, 0.0], (60, 1)), TARGET_OFFSETS)
    contacts = foot_contacts(joints_to_features(motion))
    assert contacts.shape == (59, 4)
    assert (contacts[:, :2] == 1).all()
    assert contacts[:, 2:].mean() < 0.5
    mirrored = foot_contacts(joints_to_features(mirror_joints(motion)))
    assert (mirrored[:, 2:] == 1).all() and mirrored[:, :2].mean() < 0.5
    np.testing.assert_array_equal(foot_contacts(mirror_features(joints_to_features(motion))),
                                  contacts[:, [2, 3, 0, 1]])


def test_cli_features_and_joints_round_trip(tmp_path):
    motion = synthetic_motion()
    np.save(tmp_path / "joints.npy", motion.astype(np.float32))
    assert main(["features", str(tmp_path / "joints.npy"), str(tmp_path / "feats.npy")]) == 0
    feats = np.load(tmp_path / "feats.npy")
    np.testing.assert_allclose(feats, joints_to_features(motion.astype(np.float32)))
    assert main(["joints", str(tmp_path / "feats.npy"), str(tmp_path / "back.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "back.npy"), canonical_joints(motion)[:-1], atol=1e-5)


def test_cli_reports_bad_shapes(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((10, 21, 3)))
    assert main(["features", str(tmp_path / "bad.npy"), str(tmp_path / "out.npy")]) == 2
    assert "expected joints of shape (T, 22, 3), got (10, 21, 3)" in capsys.readouterr().err


@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 21, 3)), r"expected joints of shape \(T, 22, 3\), got \(10, 21, 3\)"),
    (np.zeros((22, 3)), r"expected joints of shape \(T, 22, 3\), got \(22, 3\)"),
    ("one frame", "need at least 2 frames"),
    ("nan", "NaN"),
    ("zero bone", r"joint 4 \(left_knee\) coincides with its parent at frame 3"),
    ("vertical", "cannot tell which way the body faces at frame 5"),
])
def test_bad_joints_raise_clear_errors(bad, message):
    if isinstance(bad, str):
        motion = synthetic_motion(frames=10)
        if bad == "one frame":
            motion = motion[:1]
        elif bad == "nan":
            motion[4, 7, 1] = np.nan
        elif bad == "zero bone":
            motion[3, 4] = motion[3, 1]
        else:  # hips and shoulders stacked on one vertical line: no facing direction
            motion[5, [1, 2, 16, 17]] = motion[5, 0] + np.array([[0, 0.1, 0], [0, -0.1, 0], [0, 0.5, 0], [0, 0.3, 0]])
        bad = motion
    with pytest.raises(ValueError, match=message):
        joints_to_features(bad)


@pytest.mark.parametrize("call", [recover_from_ric, foot_contacts, mirror_features])
def test_features_of_the_wrong_width_raise(call):
    with pytest.raises(ValueError, match=r"expected features of shape .*263.*got \(10, 262\)"):
        call(np.zeros((10, 262)))


def test_recover_from_ric_needs_a_time_axis():
    with pytest.raises(ValueError, match=r"\(\.\.\., T, 263\), got \(263,\)"):
        recover_from_ric(np.zeros(263))
