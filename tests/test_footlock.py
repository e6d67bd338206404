"""Foot locking on real motion: HumanML3D's kick with the dataset's own contact channels, the CMU walk converted
by core.mocap with the contacts HumanML3D's features give it, and versions of them that skate (a body gliding
over its feet, a kick called planted throughout); then on a rig of other proportions through the solver."""
import numpy as np
import pytest

from core import solver
from core.features import foot_contacts
from core.footlock import detect_contacts, foot_skate, held_contacts, lock_feet, solve_locked
from core.mocap import bvh_to_smpl_joints
from core.skeleton import FOOT_CONTACT_JOINTS, JOINT_INDEX
from tests.conftest import shared_path
from tests.support.rigs import build_rig, offsets_of, rest_pose, with_contacts

FEET = list(FOOT_CONTACT_JOINTS)
LEGS = [tuple(JOINT_INDEX[f"{side}_{j}"] for j in ("hip", "knee", "ankle")) for side in ("left", "right")]
LEG_JOINTS = [j for side in ("left", "right") for j in (JOINT_INDEX[f"{side}_{name}"]
                                                         for name in ("knee", "ankle", "foot"))]


@pytest.fixture
def kick(fixture_dir) -> tuple[np.ndarray, np.ndarray]:
    return (np.load(fixture_dir / "000000_joints.npy").astype(np.float64),
            foot_contacts(np.load(fixture_dir / "000000_vecs.npy")) > 0.5)


@pytest.fixture
def walk() -> tuple[np.ndarray, np.ndarray]:
    joints, _ = bvh_to_smpl_joints(shared_path("rigs", "bvh_cmu_12_01_walk_mobu.bvh"), fps=20)
    return with_contacts(joints)


def glide(joints: np.ndarray, speed: float, fps: float = 20.0) -> np.ndarray:
    """The clip with its whole body carried sideways at `speed` m/s: every planted foot skates."""
    drift = np.arange(len(joints))[:, None, None] * (speed / fps) * np.array([1.0, 0.0, 0.0])
    return joints + drift


def lengths(joints: np.ndarray) -> np.ndarray:
    return np.stack([np.linalg.norm(joints[:, b] - joints[:, a], axis=-1)
                     for hip, knee, ankle in LEGS for a, b in ((hip, knee), (knee, ankle))], axis=-1)


def assert_legs_reshaped_only(before: np.ndarray, after: np.ndarray) -> None:
    """Only knees, ankles and toes move; thighs and shins keep their lengths; each knee stays in the plane of
    its hip, its new ankle and its old knee (the leg's bend plane)."""
    others = np.setdiff1d(np.arange(22), LEG_JOINTS)
    np.testing.assert_array_equal(after[:, others], before[:, others])
    np.testing.assert_allclose(lengths(after), lengths(before), atol=1e-9)
    for hip, knee, ankle in LEGS:
        plane = np.cross(after[:, ankle] - before[:, hip], before[:, knee] - before[:, hip])
        offset = ((after[:, knee] - before[:, hip]) * solver.unit(plane)).sum(-1)
        assert np.abs(offset[np.linalg.norm(plane, axis=-1) > 1e-4]).max() < 1e-9


def foot_speed(joints: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(joints[:, FEET], axis=0), axis=-1) * 20


@pytest.mark.shared
@pytest.mark.parametrize("clip", ["kick", "walk"])
def test_planted_feet_stand_still_on_the_floor(request, clip):
    joints, contacts = request.getfixturevalue(clip)
    held = held_contacts(joints, contacts)
    assert held.sum() > 0.7 * contacts.sum()  # real contacts are mostly confirmed
    locked = lock_feet(joints, contacts)
    before, after = foot_skate(joints, held), foot_skate(locked, held)
    assert before > 2.0 and after < 0.1, (before, after)
    assert locked[:, FEET, 1].min() >= 0.0  # HumanML3D's floor
    assert detect_contacts(locked)[held].mean() > 0.95  # the locked feet still read as planted
    assert_legs_reshaped_only(joints, locked)
    assert foot_speed(locked).max() < foot_speed(joints).max() + 0.5  # blended: no pops


@pytest.mark.shared
def test_a_body_gliding_over_its_feet_gets_planted_steps(walk):
    """The walk carried sideways at 0.4 m/s: its stance feet skate; locked, they stand, and where a pin would
    stretch too far the foot steps over to a new one within the blend."""
    joints, contacts = walk
    gliding = glide(joints, 0.4)
    held = held_contacts(gliding, contacts)
    assert foot_skate(gliding, held) > 30
    locked = lock_feet(gliding, contacts)
    assert foot_skate(locked, held) < 0.1
    assert held.sum() > 0.4 * contacts.sum()
    assert_legs_reshaped_only(gliding, locked)


@pytest.mark.shared
def test_a_kick_called_planted_throughout_keeps_its_kick(kick):
    """Contacts that say both feet stand all along (as a model can give): the re-check lets the kicking foot go
    while it is in the air, so the kick reaches as high as before, and the standing foot is planted."""
    joints, _ = kick
    everywhere = np.ones((len(joints), 4), dtype=bool)
    held = held_contacts(joints, everywhere)
    left_ankle = joints[:, JOINT_INDEX["left_ankle"], 1]
    airborne = left_ankle > 0.2
    assert not held[airborne, 0].any() and held_contacts(joints, everywhere, recheck=False)[airborne, 0].any()
    locked = lock_feet(joints, everywhere)
    assert locked[:, JOINT_INDEX["left_ankle"], 1].max() == pytest.approx(left_ankle.max(), abs=1e-3)
    assert foot_skate(locked, held) < 0.1


@pytest.mark.shared
def test_detected_contacts_agree_with_the_datasets(kick, walk):
    for joints, contacts in (kick, walk):
        detected = detect_contacts(joints)
        assert (detected & contacts).sum() > 0.95 * detected.sum()
        assert (detected & contacts).sum() > 0.8 * contacts.sum()


@pytest.mark.shared
def test_lock_feet_without_contacts_detects_them(walk):
    joints, _ = walk
    gliding = glide(joints, 0.2)
    locked = lock_feet(gliding)
    held = held_contacts(gliding)
    np.testing.assert_array_equal(held, held_contacts(gliding, detect_contacts(gliding)))
    assert held.mean() > 0.3 and foot_skate(locked, held) < 0.1


@pytest.mark.shared
def test_feet_never_go_below_the_floor(walk):
    joints, contacts = walk
    sunk = joints - np.array([0.0, 0.03, 0.0])  # every foot 3 cm into the ground at its lowest
    assert sunk[:, FEET, 1].min() < -0.02
    assert lock_feet(sunk, contacts)[:, FEET, 1].min() >= 0.0
    assert lock_feet(joints, contacts, floor=0.05)[:, FEET, 1].min() >= 0.05 - 1e-12


@pytest.mark.shared
def test_foot_skate_is_in_centimetres_per_second(kick):
    joints, contacts = kick
    standing = np.repeat(joints[:1], 40, axis=0)
    planted = np.ones((40, 4), dtype=bool)
    assert foot_skate(standing, planted) == 0.0
    assert foot_skate(glide(standing, 0.5), planted) == pytest.approx(50.0)
    assert foot_skate(glide(standing, 0.5, fps=30), planted, fps=30) == pytest.approx(50.0)
    assert np.isnan(foot_skate(standing, ~planted))


@pytest.mark.shared
def test_a_rig_of_other_proportions_keeps_its_own_feet_planted(kick, walk):
    """On a rig with other bone lengths (1.8 times as big, torso and limbs scaled unevenly) a motion's planted
    feet slide even where the motion's own do not, and sink (here) into the floor: the rig's own joints are
    locked, its planted feet standing at the height they have at rest."""
    rng = np.random.default_rng(5)
    offsets = offsets_of(kick[0][0]) * rng.uniform(0.75, 1.3, size=(22, 1)) * 1.8
    rig = build_rig(rest_pose(offsets, "A", 10), "fbx_cm")
    for joints, contacts in (walk, (glide(kick[0], 0.3), kick[1]), kick):
        plain = solver.solve(rig, joints)
        pose, held = solve_locked(rig, joints, contacts)
        back = np.linalg.inv(pose.placement)
        own = [solver.mapped_joint_positions(rig, p) @ back[:3, :3].T + back[:3, 3] for p in (plain, pose)]
        assert foot_skate(own[1], held) < 0.1 and foot_skate(own[0], held) > 2.0
        world = rig.world_matrix
        rest = (solver.rest_joints(rig) @ world[:3, :3].T + world[:3, 3]) @ back[:3, :3].T + back[:3, 3]
        assert own[1][:, FEET, 1].min() >= rest[FEET, 1].min() - 1e-9  # the rig's floor
        sunk, planted = (np.median((positions[:, FEET, 1] - rest[FEET, 1])[held]) for positions in own)
        assert sunk < -0.05 and abs(planted) < 0.02
        in_place, _ = solve_locked(rig, joints, contacts, options=solver.SolveOptions(motion="in place"))
        pelvis = solver.mapped_joint_positions(rig, in_place)[:, 0, :2]
        np.testing.assert_allclose(pelvis, np.broadcast_to(pelvis[0], pelvis.shape), atol=1e-9)


def test_bad_input_is_refused_with_a_message():
    joints = np.zeros((10, 22, 3))
    with pytest.raises(ValueError, match=r"contacts must be \(10, 4\) for 10 frames"):
        lock_feet(joints, np.ones((9, 4)))
    with pytest.raises(ValueError, match=r"joints must be \(T, 22, 3\)"):
        foot_skate(np.zeros((10, 21, 3)), np.ones((10, 4)))
