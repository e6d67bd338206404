"""Joints -> bone rotations, in numpy: synthetic armatures in any rest pose, roll, unit, object transform and
facing, with extra, twist and IK bones, fed HumanML3D's fixture clip and a synthetic motion that turns through
every facing; checked through numpy forward kinematics (test_solver_bpy.py checks the same in Blender)."""
import zlib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS, TARGET_OFFSETS
from core.solver import (HUMANML3D_TO_BLENDER, SolveOptions, default_placement, describe_rig, forward,
                         mapped_joint_positions, solve, unit)
from tests.support.rigs import (LIMB_SEGMENTS, SEGMENTS, SIDES, TRANSFORMS, angle_between, assert_no_flips, body_frame,
                                build_rig, offsets_of, placed, rest_pose, synthetic_motion)


@pytest.fixture
def fixture_clip(fixture_dir) -> np.ndarray:
    return np.load(fixture_dir / "000000_joints.npy").astype(np.float64)


@pytest.fixture(scope="module")
def motion() -> np.ndarray:
    return synthetic_motion()


def heads(rig, pose) -> dict[str, np.ndarray]:
    return dict(zip(rig.names, np.moveaxis(forward(rig, pose), 1, 0)))


def mapped_rows(rig) -> np.ndarray:
    return np.flatnonzero(np.isclose(rig.bone_map.weights.max(axis=1), 1.0))


def assert_joints_reproduced(rig, pose, joints, tolerance_m=1e-3):
    rows = mapped_rows(rig)
    error = np.linalg.norm(mapped_joint_positions(rig, pose)[:, rows] - placed(pose, joints)[:, rows], axis=-1)
    assert error.max() < tolerance_m, f"worst joint {JOINT_NAMES[rows[error.max(0).argmax()]]}: {error.max()} m"


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


def spine_rig(joints: np.ndarray, spine: int, chest: bool, bow: float):
    """A rig at (22, 3) rest joints whose spine, from the pelvis to the bone the arms hang from, has `spine` bones
    (named Spine, Spine1, ...) plus a 'Chest' bone if `chest`, bowed forward at rest by `bow` degrees at each of
    its joints (a rest curvature the motion's spine does not have); generic names elsewhere."""
    names = {"pelvis": "Hips", "neck": "Neck", "head": "Head"} | {
        f"{s}_{j}": f"{b}.{s[0].upper()}" for s in SIDES for j, b in (
            ("hip", "Thigh"), ("knee", "Shin"), ("ankle", "Foot"), ("foot", "Toe"), ("collar", "Clavicle"),
        ("shoulder", "UpperArm"), ("elbow", "Forearm"), ("wrist", "Hand"))}
    bottom, top = joints[JOINT_INDEX["pelvis"]], joints[JOINT_INDEX["spine3"]]
    length, up = np.linalg.norm(top - bottom) / (spine + chest), unit(top - bottom)
    front = body_frame(joints)[2]
    bones, at, direction = [("Hips", None, bottom)], bottom, up
    for k, name in enumerate([f"Spine{k or ''}" for k in range(spine)] + ["Chest"] * chest):
        direction = unit(np.cos(np.radians(bow)) * direction + np.sin(np.radians(bow)) * front)
        at = at + length * direction
        bones.append((name, bones[-1][0], at))
    shift = at - top  # the chest, and all above it, where the bowed spine ends
    for j, name in enumerate(JOINT_NAMES):
        if name in names and name != "pelvis":
            parent = JOINT_NAMES[PARENTS[j]]
            upper = name in ("neck", "head") or name.endswith(("collar", "shoulder", "elbow", "wrist"))
            bones.append((names[name], names.get(parent, bones[spine + chest][0]), joints[j] + shift * upper))
    rest = np.tile(np.eye(4), (len(bones), 1, 1))
    rest[:, :3, 3] = np.array([p for _, _, p in bones]) @ HUMANML3D_TO_BLENDER.T
    bone_names = [n for n, _, _ in bones]
    return describe_rig(bone_names, [bone_names.index(p) if p else -1 for _, p, _ in bones], rest)


@pytest.mark.shared
@pytest.mark.parametrize("spine, chest, bow", [(2, False, 0.0), (2, True, 10.0), (3, False, 8.0), (5, False, 0.0),
                                               (4, True, 12.0)])
def test_the_torso_follows_whatever_the_spine(fixture_clip, motion, spine, chest, bow):
    """Spines of 2 to 5 bones, with or without a chest, bowed at rest, on a body of other proportions: the neck
    lies where the motion's does seen from the pelvis (the spine's bend and lean), the shoulder line follows
    within a few degrees, the limbs exactly, and nothing flips on a motion turning through every facing."""
    scale = np.random.default_rng(spine).uniform(0.7, 1.4, size=22)  # left and right alike
    offsets = offsets_of(fixture_clip[0]) * scale[[JOINT_INDEX[n.replace("right_", "left_")] for n in JOINT_NAMES],
                                                  None]
    rig = spine_rig(rest_pose(offsets, "A", 10), spine, chest, bow)
    for joints in (fixture_clip, motion):
        pose = solve(rig, joints)
        got, target = mapped_joint_positions(rig, pose), placed(pose, joints)
        for a, b in [*LIMB_SEGMENTS, ("pelvis", "neck")]:
            a, b = JOINT_INDEX[a], JOINT_INDEX[b]
            assert angle_between(got[:, b] - got[:, a], target[:, b] - target[:, a]).max() < 0.01, JOINT_NAMES[a]
        shoulders = [JOINT_INDEX["left_shoulder"], JOINT_INDEX["right_shoulder"]]
        line = angle_between(*(p[:, shoulders[0]] - p[:, shoulders[1]] for p in (got, target)))
        assert np.median(line) < 1.0 and np.percentile(line, 99) < 5.0
    assert_no_flips(pose, max_step_deg=30)


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
                                                                                           len(extras), 4)), atol=1e-12)
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
