"""Joints -> bone rotations, in numpy: synthetic armatures in any rest pose, roll, unit, object transform and
facing, with extra, twist and IK bones, fed HumanML3D's fixture clip and a synthetic motion that turns through
every facing; checked through numpy forward kinematics (test_solver_bpy.py checks the same in Blender)."""
import zlib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS, TARGET_OFFSETS
from core.solver import (HUMANML3D_TO_BLENDER, REST_FOOT_PITCH, SolveOptions, default_placement, describe_rig,
                         forward, mapped_joint_positions, solve)

MIXAMO = ("Hips LeftUpLeg RightUpLeg Spine LeftLeg RightLeg Spine1 LeftFoot RightFoot Spine2 LeftToeBase "
          "RightToeBase Neck LeftShoulder RightShoulder Head LeftArm RightArm LeftForeArm RightForeArm LeftHand "
          "RightHand").split()
BONE = dict(zip(JOINT_NAMES, MIXAMO))
SIDES = ("left", "right")
# (joint, its only child): segments whose direction a solve must reproduce whatever the proportions.
SEGMENTS = [(f"{s}_{a}", f"{s}_{b}") for s in SIDES for a, b in
            (("hip", "knee"), ("knee", "ankle"), ("ankle", "foot"), ("collar", "shoulder"), ("shoulder", "elbow"),
             ("elbow", "wrist"))] + [("spine1", "spine2"), ("spine2", "spine3"), ("neck", "head")]
# Marker bones (unmapped leaves) that show how a bone turned: a knee cap and an elbow crease (forward of the
# joint, on the upper bone), and a point left of the ankle (on the foot).
MARKER = 0.1


def turn(axis: str, degrees) -> np.ndarray:
    """Rotation matrices about one axis, (3, 3) or (N, 3, 3) for N angles."""
    return Rotation.from_euler(axis, np.asarray(degrees, dtype=float)[..., None], degrees=True).as_matrix()


def angle_between(a, b) -> np.ndarray:
    """Degrees between vectors along the last axis."""
    a, b = np.broadcast_arrays(a, b)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), (a * b).sum(-1)))


# ------------------------------------------------------------------------------------------------- motions
def offsets_of(joints: np.ndarray) -> np.ndarray:
    """Each joint's offset from its parent in one (22, 3) pose (the pelvis' own position first)."""
    offsets = joints - joints[PARENTS]
    offsets[0] = joints[0]
    return offsets


def compose(offsets: np.ndarray) -> np.ndarray:
    """(22, 3) joints from offsets, the pelvis 0.95 m up."""
    joints = np.zeros((22, 3))
    for j in range(1, 22):
        joints[j] = joints[PARENTS[j]] + offsets[j]
    return joints + (0.0, 0.95, 0.0)


def body_frame(joints: np.ndarray):
    """(left, up, front) of a (22, 3) pose in HumanML3D's frame (y up), left from the hips and shoulders, level:
    the solver's convention for which way a rig faces."""
    up = np.array([0.0, 1.0, 0.0])
    left = sum((joints[JOINT_INDEX["left_" + j]] - joints[JOINT_INDEX["right_" + j]]) /
               np.linalg.norm(joints[JOINT_INDEX["left_" + j]] - joints[JOINT_INDEX["right_" + j]])
               for j in ("hip", "shoulder")) * (1, 0, 1)
    left /= np.linalg.norm(left)
    return left, up, np.cross(left, up)


def rest_pose(offsets: np.ndarray, arms="T", knee_bend=0.0) -> np.ndarray:
    """(22, 3) joints (HumanML3D frame) with the bone lengths and torso shape of `offsets`, the upper arms and
    forearms "T", "A" (27 deg down) or "down", the legs straight down or bent forward by knee_bend degrees."""
    left, up, front = body_frame(compose(offsets))
    directions = offsets.copy()
    arm, bend = np.radians({"T": 0.0, "A": 27.0, "down": 90.0}[arms]), np.radians(knee_bend)
    for j, name in enumerate(JOINT_NAMES):
        length, side = np.linalg.norm(offsets[j]), (1.0 if name.startswith("left_") else -1.0)
        if name.endswith(("elbow", "wrist")):
            directions[j] = length * (side * np.cos(arm) * left - np.sin(arm) * up)
        elif name.endswith("knee"):
            directions[j] = length * (-np.cos(bend) * up + np.sin(bend) * front)
        elif name.endswith("ankle"):
            directions[j] = length * (-np.cos(bend) * up - np.sin(bend) * front)
    return compose(directions)


def synthetic_motion(frames=240) -> np.ndarray:
    """(T, 22, 3) joints by forward kinematics on HumanML3D's target skeleton (arms down): two full turns around
    a circle (every facing), knees from straight to 120 deg, arms from down to overhead with their elbows folding
    and straightening and the upper arms twisting, the spine bending and twisting."""
    t = np.arange(frames)
    turn_phase, step = 2 * np.pi * t / frames, 2 * np.pi * t / 40
    local = np.broadcast_to(np.eye(3), (frames, 22, 3, 3)).copy()
    local[:, 0] = turn("y", np.degrees(2 * turn_phase)) @ turn("x", 10 * np.sin(step))
    for j, name in enumerate(JOINT_NAMES):
        side = 1.0 if name.startswith("left_") else -1.0
        phase = step + (0 if side > 0 else np.pi)
        if name.endswith("_hip"):
            local[:, j] = turn("x", -50 * np.sin(phase) - 20) @ turn("y", side * 20 * np.sin(turn_phase))
        elif name.endswith("_knee"):
            local[:, j] = turn("x", 60 - 60 * np.cos(phase))
        elif name.endswith("_ankle"):
            local[:, j] = turn("x", 20 * np.sin(phase))
        elif name.startswith("spine"):
            local[:, j] = turn("x", 12 * np.sin(turn_phase)) @ turn("y", 15 * np.sin(step / 3))
        elif name.endswith("_shoulder"):  # the skeleton's arms hang down
            raise_arm = side * (85 - 85 * np.cos(turn_phase * 1.5))  # from down to overhead, sideways
            swing_twist = turn("x", -40 * np.sin(phase)) @ turn("y", side * 30 * np.sin(step / 2))
            local[:, j] = turn("z", raise_arm) @ swing_twist
        elif name.endswith("_elbow"):
            local[:, j] = turn("x", -(70 - 70 * np.cos(phase / 2)))
    offsets = TARGET_OFFSETS.copy()
    offsets[0] = (0.0, 0.95, 0.0)
    world = np.empty_like(local)
    joints = np.zeros((frames, 22, 3))
    for j in range(22):
        parent = PARENTS[j]
        if parent < 0:
            world[:, j], joints[:, j] = local[:, j], offsets[0] + np.stack(
                [1.5 * np.sin(turn_phase), 0.05 * np.sin(2 * step), 1.5 * np.cos(turn_phase)], -1)
        else:
            world[:, j] = world[:, parent] @ local[:, j]
            joints[:, j] = joints[:, parent] + world[:, parent] @ offsets[j]
    return joints


@pytest.fixture
def fixture_clip(fixture_dir) -> np.ndarray:
    return np.load(fixture_dir / "000000_joints.npy").astype(np.float64)


@pytest.fixture(scope="module")
def motion() -> np.ndarray:
    return synthetic_motion()


# ---------------------------------------------------------------------------------------------------- rigs
# Object transforms, as (world matrix, armature-space rotation of the Blender-frame body, armature unit per metre).
TRANSFORMS = {
    "plain": (np.eye(4), np.eye(3), 1.0),
    # a Mixamo FBX: 0.01-scaled object rotated X +90 deg, bones in centimetres with y up inside
    "fbx_cm": (np.diag([0.01, 0.01, 0.01, 1.0]) @ np.block([[turn("x", 90), np.zeros((3, 1))], [0, 0, 0, 1]]),
               turn("x", -90), 100.0),
    # a glTF under an empty: 100-scaled, 1 cm bones, moved and turned in the world
    "scaled_100_in_empty": (np.block([[100 * turn("z", 37) @ turn("x", -90), np.array([[2.0], [-3.0], [0.5]])],
                                      [0, 0, 0, 1]]), turn("x", 90) @ turn("z", -37), 0.01),
    "turned_180": (np.block([[turn("z", 180), np.zeros((3, 1))], [0, 0, 0, 1]]), np.eye(3), 1.0),
    "facing_plus_y": (np.eye(4), turn("z", 180), 1.0),  # the body faces +y inside the armature (UE)
}


def build_rig(joints: np.ndarray, transform="plain", extras=(), toes=True, ik_feet=False, seed=0,
              arms_forward=None):
    """A RigDescription of Mixamo-named bones at (22, 3) rest joints (HumanML3D frame), every rest matrix with
    a random rotation (any roll, any tail), plus markers and `extras` [(name, parent, position)]."""
    world, inner, unit = TRANSFORMS[transform]
    _, up, front = body_frame(joints)
    bones = [(BONE[name], BONE[JOINT_NAMES[PARENTS[j]]] if j else None, joints[j])
             for j, name in enumerate(JOINT_NAMES) if toes or not name.endswith("_foot")]
    for s in ("Left", "Right"):
        side = s.lower()
        ankle = joints[JOINT_INDEX[f"{side}_ankle"]]
        foot = joints[JOINT_INDEX[f"{side}_foot"]] - ankle
        if not toes:  # the foot's tip, pitched like HumanML3D's standing foot
            foot = np.cos(REST_FOOT_PITCH) * front - np.sin(REST_FOOT_PITCH) * up
            bones.append((f"{s}FootTip", f"{s}Foot", ankle + MARKER * foot))
        bones += [(f"{s}KneeCap", f"{s}UpLeg", joints[JOINT_INDEX[f"{side}_knee"]] + MARKER * front),
                  (f"{s}ElbowCrease", f"{s}Arm", joints[JOINT_INDEX[f"{side}_elbow"]] + MARKER * front),
                  (f"{s}FootSide", f"{s}Foot", ankle + MARKER * np.cross(up, foot) / np.linalg.norm(foot))]
    bones += list(extras)
    if ik_feet:
        bones = [(n, "root" if n in ("LeftFoot", "RightFoot") else p, at) for n, p, at in bones]
    names = [name for name, _, _ in bones]
    parents = [names.index(parent) if parent else -1 for _, parent, _ in bones]
    rest = np.tile(np.eye(4), (len(bones), 1, 1))
    rest[:, :3, :3] = Rotation.random(len(bones), random_state=seed).as_matrix()
    rest[:, :3, 3] = np.array([at for _, _, at in bones]) @ (inner @ HUMANML3D_TO_BLENDER).T * unit
    return describe_rig(names, parents, rest, world)


def placed(pose, joints: np.ndarray) -> np.ndarray:
    """The motion's joints in world space, as the solve placed them."""
    return joints @ pose.placement[:3, :3].T + pose.placement[:3, 3]


def heads(rig, pose) -> dict[str, np.ndarray]:
    return dict(zip(rig.names, np.moveaxis(forward(rig, pose), 1, 0)))


def mapped_rows(rig) -> np.ndarray:
    return np.flatnonzero(np.isclose(rig.bone_map.weights.max(axis=1), 1.0))


def assert_joints_reproduced(rig, pose, joints, tolerance_m=1e-3):
    rows = mapped_rows(rig)
    error = np.linalg.norm(mapped_joint_positions(rig, pose)[:, rows] - placed(pose, joints)[:, rows], axis=-1)
    assert error.max() < tolerance_m, f"worst joint {JOINT_NAMES[rows[error.max(0).argmax()]]}: {error.max()} m"


def assert_no_flips(pose, max_step_deg):
    dots = (pose.rotations[1:] * pose.rotations[:-1]).sum(-1)
    assert dots.min() > 0
    step = np.degrees(2 * np.arccos(np.clip(dots, -1, 1)))
    assert step.max() < max_step_deg, f"largest frame-to-frame turn {step.max():.1f} deg"


def assert_hinges_and_feet(rig, pose, joints):
    """Knees fold back and elbows forward about the rig's own rest hinge (no sideways bend where the bend
    shows), and feet point at the toes with their left-right axis level."""
    at = heads(rig, pose)
    target = placed(pose, joints)
    up = np.array([0.0, 0.0, 1.0])
    for s in ("Left", "Right"):
        for upper, lower, tip, marker, natural in (("UpLeg", "Leg", "Foot", "KneeCap", -1),
                                                   ("Arm", "ForeArm", "Hand", "ElbowCrease", 1)):
            bone_axis = at[s + lower] - at[s + upper]
            front = at[s + marker] - at[s + lower]
            front -= (front * bone_axis).sum(-1, keepdims=True) * bone_axis / (bone_axis ** 2).sum(-1, keepdims=True)
            low = at[s + tip] - at[s + lower]
            bent = angle_between(bone_axis, low) > 20
            assert bent.sum() > 5
            hinge = np.cross(bone_axis, front)
            assert np.abs(angle_between(hinge, low)[bent] - 90).max() < 0.01
            assert (natural * (low * front).sum(-1)[bent] > 0).all()
        side = at[s + "FootSide"] - at[s + "Foot"]
        ankle = JOINT_INDEX[f"{s.lower()}_ankle"]
        toes = target[:, ankle + 3] - target[:, ankle]
        flat = np.abs(angle_between(toes, up) - 90) < 30  # a steep foot has no level
        assert np.abs(angle_between(side, up)[flat] - 90).max() < 0.01
        tip = at.get(s + "FootTip", at.get(s + "ToeBase"))
        assert angle_between(tip - at[s + "Foot"], toes).max() < 0.01


# --------------------------------------------------------------------------------------------------- tests
@pytest.mark.shared
@pytest.mark.parametrize("arms, knee_bend", [("T", 0), ("A", 0), ("down", 0), ("T", 20), ("A", 25)])
@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_same_proportions_reproduce_the_fixture_within_a_millimetre(fixture_clip, arms, knee_bend, transform):
    rig = build_rig(rest_pose(offsets_of(fixture_clip[0]), arms, knee_bend), transform,
                    seed=zlib.crc32(f"{arms}{transform}".encode()))
    pose = solve(rig, fixture_clip)
    assert np.isclose(np.linalg.det(pose.placement[:3, :3]), 1.0, atol=1e-6)  # same leg length: unit scale
    assert_joints_reproduced(rig, pose, fixture_clip)
    assert_hinges_and_feet(rig, pose, fixture_clip)
    assert_no_flips(pose, max_step_deg=60)  # the kick swings the shin 34 deg in one frame; a flip is ~180


@pytest.mark.parametrize("arms, knee_bend, transform", [("T", 0, "plain"), ("down", 20, "fbx_cm"),
                                                        ("A", 0, "facing_plus_y")])
def test_synthetic_motion_through_every_facing(motion, arms, knee_bend, transform):
    rig = build_rig(rest_pose(TARGET_OFFSETS, arms, knee_bend), transform)
    pose = solve(rig, motion)
    assert_joints_reproduced(rig, pose, motion)
    assert_hinges_and_feet(rig, pose, motion)
    assert_no_flips(pose, max_step_deg=20)


def test_rig_facing_decides_where_the_clip_goes(motion):
    """The clip starts over the rig's pelvis and travels the way the rig faces, whatever the transforms."""
    rest = rest_pose(TARGET_OFFSETS)
    start = 10  # the circle's tangent at frame 0 is sideways; compare the path after some frames
    for transform in ("plain", "turned_180", "facing_plus_y", "scaled_100_in_empty"):
        rig = build_rig(rest, transform)
        pose = solve(rig, motion)
        world, inner, unit = TRANSFORMS[transform]
        to_world = world[:3, :3] @ inner @ HUMANML3D_TO_BLENDER * unit
        rig_front = to_world @ body_frame(rest)[2]
        rig_left = to_world @ body_frame(rest)[0]
        pelvis = mapped_joint_positions(rig, pose)[:, 0]
        np.testing.assert_allclose(pelvis[0, :2], (to_world @ rest[0] + world[:3, 3])[:2], atol=1e-9)
        travel = pelvis[start] - pelvis[0]
        source = motion[start, 0] - motion[0, 0]  # HumanML3D: +z forward, +x left
        np.testing.assert_allclose([travel @ rig_front, travel @ rig_left], [source[2], source[0]], atol=1e-9)


@pytest.mark.shared
def test_different_proportions_keep_every_segment_direction(fixture_clip):
    """A rig with other bone lengths, a wider pelvis and a 1.8x size: segments point exactly where the
    motion's do, the pelvis travels scaled by leg length."""
    rng = np.random.default_rng(3)
    offsets = offsets_of(fixture_clip[0]) * rng.uniform(0.6, 1.5, size=(22, 1)) * 1.8
    rig = build_rig(rest_pose(offsets, "A", 10), "fbx_cm")
    pose = solve(rig, fixture_clip)
    scale = np.linalg.det(pose.placement[:3, :3]) ** (1 / 3)
    shin_and_thigh = [JOINT_INDEX[f"{s}_{j}"] for s in SIDES for j in ("knee", "ankle")]
    leg_length = [np.linalg.norm(o[shin_and_thigh], axis=-1).sum() / 2 for o in (offsets, offsets_of(fixture_clip[0]))]
    assert scale == pytest.approx(leg_length[0] / leg_length[1], rel=1e-6)
    got, target = mapped_joint_positions(rig, pose), placed(pose, fixture_clip)
    for joint, child in SEGMENTS:
        a, b = JOINT_INDEX[joint], JOINT_INDEX[child]
        assert angle_between(got[:, b] - got[:, a], target[:, b] - target[:, a]).max() < 0.01, joint
    np.testing.assert_allclose(got[:, 0], target[:, 0], atol=1e-6)
    hips = [JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]]
    pelvis_up = [got[:, 3] - got[:, hips].mean(1), target[:, 3] - target[:, hips].mean(1)]
    assert angle_between(*pelvis_up).max() < 0.01
    assert_hinges_and_feet(rig, pose, fixture_clip)


def extra_bones(joints):
    """A UE-style root on the ground, CMU-style hip joints at the pelvis, an extra spine bone, twist bones."""
    at = {name: joints[j] for j, name in enumerate(JOINT_NAMES)}
    return [("root", None, at["pelvis"] * (1, 0, 1)),
            ("LHipJoint", "Hips", at["pelvis"]), ("RHipJoint", "Hips", at["pelvis"]),
            ("SpineExtra", "Spine1", (at["spine2"] + at["spine3"]) / 2),
            ("LeftArmTwist", "LeftArm", (at["left_shoulder"] + at["left_elbow"]) / 2),
            ("RightUpLegTwist", "RightUpLeg", (at["right_hip"] + at["right_knee"]) / 2)]


def rig_with_extras(rest, ik_feet=False, transform="plain"):
    extras = extra_bones(rest)
    rig = build_rig(rest, transform, extras=extras, ik_feet=ik_feet)
    # hang Hips from root, hips from the hip joints, Spine2 from the extra spine bone
    names = list(rig.names)
    parents = rig.parents.copy()
    for child, parent in (("Hips", "root"), ("LeftUpLeg", "LHipJoint"), ("RightUpLeg", "RHipJoint"),
                          ("Spine2", "SpineExtra")):
        parents[names.index(child)] = names.index(parent)
    return describe_rig(names, parents, rig.rest_matrices, rig.world_matrix)


@pytest.mark.shared
@pytest.mark.parametrize("ik_feet", [False, True])
def test_extra_twist_and_ik_bones(fixture_clip, ik_feet):
    rig = rig_with_extras(rest_pose(offsets_of(fixture_clip[0]), "A"), ik_feet, "scaled_100_in_empty")
    assert rig.bone_map.preset == "mixamo"
    pose = solve(rig, fixture_clip)
    assert_joints_reproduced(rig, pose, fixture_clip)
    assert_hinges_and_feet(rig, pose, fixture_clip)
    extras = [rig.names.index(n) for n in ("root", "LHipJoint", "RHipJoint", "SpineExtra", "LeftArmTwist",
                                           "RightUpLegTwist")]
    np.testing.assert_allclose(pose.rotations[:, extras], np.broadcast_to([1.0, 0, 0, 0], (len(fixture_clip),
                                                                                           len(extras), 4)))
    at = heads(rig, pose)
    np.testing.assert_allclose(at["LeftArmTwist"], (at["LeftArm"] + at["LeftForeArm"]) / 2, atol=1e-9)
    assert set(pose.located) == {"Hips"} | ({"LeftFoot", "RightFoot"} if ik_feet else set())
    unlocated = [i for i, n in enumerate(rig.names) if n not in pose.located]
    assert np.abs(pose.locations[:, unlocated]).max() < 1e-9


def test_root_motion_on_the_root_bone(motion):
    rest = rest_pose(TARGET_OFFSETS)
    rig = rig_with_extras(rest)
    on_pelvis = solve(rig, motion)
    on_root = solve(rig, motion, SolveOptions(horizontal_on="root"))
    assert on_root.located == ("Hips", "root")
    assert_joints_reproduced(rig, on_root, motion)
    root, pelvis = heads(rig, on_root)["root"], placed(on_root, motion)[:, 0]
    np.testing.assert_allclose(root[:, 2], root[0, 2], atol=1e-12)  # stays on the ground
    np.testing.assert_allclose(root[:, :2] - root[0, :2], pelvis[:, :2] - pelvis[0, :2], atol=1e-9)
    assert np.linalg.norm(root - root[0], axis=-1).max() > 2
    np.testing.assert_allclose(heads(rig, on_pelvis)["root"], np.broadcast_to(root[0], root.shape), atol=1e-12)
    with pytest.raises(ValueError, match="'Hips' has no bone above it"):
        solve(build_rig(rest), motion, SolveOptions(horizontal_on="root"))


def test_in_place_keeps_the_turns_and_drops_the_travel(motion):
    rig = build_rig(rest_pose(TARGET_OFFSETS))
    pose = solve(rig, motion, SolveOptions(motion="in place"))
    got = mapped_joint_positions(rig, pose)
    np.testing.assert_allclose(got[:, 0, :2], np.broadcast_to(got[0, 0, :2], (len(motion), 2)), atol=1e-9)
    hips = JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]
    source = (motion[:, hips[0]] - motion[:, hips[1]]) @ HUMANML3D_TO_BLENDER.T  # the rig faces -y as the motion
    lateral = got[:, hips[0]] - got[:, hips[1]]
    np.testing.assert_allclose(lateral, source, atol=1e-9)
    assert np.ptp(got[:, 0, 2]) > 0.01  # the pelvis still bobs


def test_placement_can_be_given(motion):
    rig = build_rig(rest_pose(TARGET_OFFSETS), "turned_180")
    placement = np.eye(4)
    placement[:3, :3], placement[:3, 3] = 2 * HUMANML3D_TO_BLENDER, (5.0, 0.0, 0.0)
    pose = solve(rig, motion, SolveOptions(placement=placement))
    np.testing.assert_array_equal(pose.placement, placement)
    got = mapped_joint_positions(rig, pose)
    np.testing.assert_allclose(got[:, 0], 2 * motion[:, 0] @ HUMANML3D_TO_BLENDER.T + (5, 0, 0), atol=1e-9)
    assert not np.allclose(default_placement(rig, motion), placement)


@pytest.mark.shared
def test_toeless_rig_points_its_feet_at_the_toes(fixture_clip):
    rig = build_rig(rest_pose(offsets_of(fixture_clip[0]), "T", 15), "fbx_cm", toes=False)
    assert set(rig.bone_map.unmapped) == {"left_foot", "right_foot"}
    pose = solve(rig, fixture_clip)
    assert_joints_reproduced(rig, pose, fixture_clip)
    assert_hinges_and_feet(rig, pose, fixture_clip)


@pytest.mark.shared
def test_collar_bones_starting_together_still_show_the_chest(fixture_clip):
    """A Z-up BVH export starts both collar bones at the chest's middle: the chest turns by its shoulders."""
    rest = rest_pose(offsets_of(fixture_clip[0]), "T")
    collars = [JOINT_INDEX["left_collar"], JOINT_INDEX["right_collar"]]
    rest[collars] = rest[collars].mean(axis=0)
    rig = build_rig(rest, "facing_plus_y")
    pose = solve(rig, fixture_clip)
    got, target = mapped_joint_positions(rig, pose), placed(pose, fixture_clip)
    assert np.isfinite(pose.rotations).all()
    for joint, child in SEGMENTS:
        a, b = JOINT_INDEX[joint], JOINT_INDEX[child]
        assert angle_between(got[:, b] - got[:, a], target[:, b] - target[:, a]).max() < 0.01, joint
    shoulders = [JOINT_INDEX["left_shoulder"], JOINT_INDEX["right_shoulder"]]
    lateral = [(p[:, shoulders[0]] - p[:, shoulders[1]]) * (1, 1, 0) for p in (got, target)]
    assert angle_between(*lateral).max() < 10  # the chest faces where the motion's does


def test_quaternions_are_blenders_matrix_basis(motion):
    """Rebuilding each bone's armature-space pose from the quaternions with scipy matches forward()."""
    rig = build_rig(rest_pose(TARGET_OFFSETS, "A"), "turned_180")
    pose = solve(rig, motion[:20])
    np.testing.assert_allclose(np.linalg.norm(pose.rotations, axis=-1), 1.0, atol=1e-12)
    basis = Rotation.from_quat(pose.rotations.reshape(-1, 4), scalar_first=True).as_matrix().reshape(20, -1, 3, 3)
    matrices = np.tile(np.eye(4), (20, len(rig.names), 1, 1))
    matrices[..., :3, :3], matrices[..., :3, 3] = basis, pose.locations
    posed = {}
    for b in rig.order:
        p = rig.parents[b]
        relative = np.eye(4) if p < 0 else posed[p] @ np.linalg.inv(rig.rest_matrices[p])
        posed[b] = relative @ rig.rest_matrices[b] @ matrices[:, b]
    heads_scipy = np.stack([posed[b][:, :3, 3] for b in range(len(rig.names))], 1)
    world = heads_scipy @ rig.world_matrix[:3, :3].T + rig.world_matrix[:3, 3]
    np.testing.assert_allclose(world, forward(rig, pose), atol=1e-9)


def test_bad_input_is_refused_with_a_message(motion):
    rig = build_rig(rest_pose(TARGET_OFFSETS))
    with pytest.raises(ValueError, match=r"joints must be \(T, 22, 3\)"):
        solve(rig, motion[:, :21])
    nan = motion.copy()
    nan[7, 3, 1] = np.nan
    with pytest.raises(ValueError, match="not finite .first at frame 7"):
        solve(rig, nan)
    with pytest.raises(ValueError, match="motion must be one of"):
        solve(rig, motion, SolveOptions(motion="walk"))
    with pytest.raises(ValueError, match="horizontal_on must be one of"):
        solve(rig, motion, SolveOptions(horizontal_on="hips"))
    stretched = np.diag([1.0, 2.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="scale uniformly"):
        describe_rig(rig.names, rig.parents, rig.rest_matrices, stretched)
    sheared = rig.rest_matrices.copy()
    sheared[5, 0, 1] += 0.3
    with pytest.raises(ValueError, match=f"bone '{rig.names[5]}' is not a rotation"):
        describe_rig(rig.names, rig.parents, sheared)
