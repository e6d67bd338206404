"""Bone maps: every preset, generic rigs (Quaternius, CesiumMan, 3ds Max Biped, VRM), real BVH files,
left/right from rest positions, interpolated joints, overrides and the skeletons that cannot be mapped."""
import json
import tarfile

import numpy as np
import pytest

from core import bonemap
from core.bonemap import UnmappableSkeletonError, map_skeleton
from core.bvh import read_bvh
from core.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS, RAW_OFFSETS, TARGET_BONE_LENGTHS
from tests.conftest import shared_path
from tests.support.files import VRM_BONES, glb, vrm_gltf


# ------------------------------------------------------------------------------------ building test rigs
def smpl_pose(arms: str = "T", knee_bend: float = 0.0) -> np.ndarray:
    """(22, 3) SMPL joints in the SMPL frame (+x left, +y up, facing +z), feet near y = 0, with HumanML3D's
    bone lengths; arms "T", "down" or "A" (27 deg below horizontal); knees bent forward by knee_bend deg."""
    directions = RAW_OFFSETS.copy()
    for j, name in enumerate(JOINT_NAMES):
        side = 1.0 if name.startswith("left_") else -1.0
        if name.endswith(("shoulder", "elbow", "wrist")):
            angle = {"T": 0.0, "A": np.radians(27), "down": np.pi / 2}[arms]
            directions[j] = (side * np.cos(angle), -np.sin(angle), 0.0)
        bend = np.radians(knee_bend)
        if name.endswith("knee"):
            directions[j] = (0.0, -np.cos(bend), np.sin(bend))
        elif name.endswith("ankle"):
            directions[j] = (0.0, -np.cos(bend), -np.sin(bend))
    positions = np.zeros((22, 3))
    for j in range(1, 22):
        positions[j] = positions[PARENTS[j]] + directions[j] * TARGET_BONE_LENGTHS[j]
    return positions + (0.0, 0.95, 0.0)


# Proper rotations (and a unit) from the SMPL frame to a file's frame: BVH y up facing +z; Blender z up facing
# -y in centimetres; Unreal z up facing +y (left is -x there).
FRAMES = {
    "bvh": (np.eye(3), 1.0),
    "blender_cm": (np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]), 100.0),
    "unreal": (np.array([[-1, 0, 0], [0, 0, 1], [0, 1, 0]]), 1.0),
}


def where(spec: str, joints: np.ndarray) -> np.ndarray:
    """A position from a spec: 'joint', 'a/b:t' (t of the way from a to b) or 'joint+x,y,z' (metres in the
    SMPL frame, x pointing away from the body's midline for right_* joints too)."""
    if "/" in spec:
        ends, t = spec.split(":")
        a, b = ends.split("/")
        return (1 - float(t)) * joints[JOINT_INDEX[a]] + float(t) * joints[JOINT_INDEX[b]]
    joint, _, offset = spec.partition("+")
    offset = np.array(offset.split(","), dtype=float) if offset else np.zeros(3)
    return joints[JOINT_INDEX[joint]] + offset * (-1.0 if joint.startswith("right_") else 1.0, 1.0, 1.0)


def build(bones, arms="T", knee_bend=0.0, frame="bvh", mirror=False):
    """(names, parents, rest positions) of [(name, parent name or None, where)] in the given frame; mirror
    reflects the body left-right (a rig whose names say the opposite side)."""
    joints = smpl_pose(arms, knee_bend) * ((-1.0 if mirror else 1.0), 1.0, 1.0)
    names = [name for name, _, _ in bones]
    parents = [names.index(parent) if parent else -1 for _, parent, _ in bones]
    rotation, unit = FRAMES[frame]
    positions = np.array([where(spec, joints) for _, _, spec in bones]) @ rotation.T * unit
    return names, parents, positions


def standard_rig(table: str, extras=()):
    """Bones named by `table` (22 names in JOINT_NAMES order, '-' = the rig has none) at the SMPL joints,
    parented like SMPL; extras (name, parent, where, children it adopts) inserted or appended."""
    names = table.split()
    assert len(names) == 22
    parent_of = {}
    for j, name in enumerate(names):
        if name != "-":
            ancestor = PARENTS[j]
            while ancestor >= 0 and names[ancestor] == "-":
                ancestor = PARENTS[ancestor]
            parent_of[name] = (names[ancestor] if ancestor >= 0 else None, JOINT_NAMES[j])
    for name, parent, spec, adopted in extras:
        parent_of[name] = (parent, spec)
        for child in adopted:
            parent_of[child] = (name, parent_of[child][1])
    return [(name, parent, spec) for name, (parent, spec) in parent_of.items()]


def expected(table: str):
    """The bones tuple a map of `table` must have."""
    return tuple(None if name == "-" else name for name in table.split())


def chain(parent: str | None, *links: tuple[str, str]) -> list:
    """Bones [(name, where), ...] each parented to the one before, the first to `parent`."""
    parents = [parent] + [name for name, _ in links[:-1]]
    return [(name, up, spec) for (name, spec), up in zip(links, parents)]


def both_sides(make) -> list:
    """make(s, side) for ('L', 'left') then ('R', 'right'), concatenated."""
    return [bone for s, side in (("L", "left"), ("R", "right")) for bone in make(s, side)]


def fingers(side: str) -> list:
    """Mixamo thumb and index bones (extras) below the hand of side 'Left' or 'Right'."""
    wrist = f"{side.lower()}_wrist"
    return [(*bone, ()) for finger, z in (("Thumb", 0.02), ("Index", 0.0))
            for bone in chain(f"{side}Hand", *((f"{side}Hand{finger}{k}", f"{wrist}+{0.04 * k},0,{z}")
                                               for k in (1, 2)))]


# The expected maps, written from the rigs' documentation (docs/architecture.md "Bone maps",
# rigs/README.md), in JOINT_NAMES order: pelvis l_hip r_hip spine1 l_knee r_knee spine2 l_ankle r_ankle spine3
# l_foot r_foot neck l_collar r_collar head l_shoulder r_shoulder l_elbow r_elbow l_wrist r_wrist.
MIXAMO = ("Hips LeftUpLeg RightUpLeg Spine LeftLeg RightLeg Spine1 LeftFoot RightFoot Spine2 LeftToeBase "
          "RightToeBase Neck LeftShoulder RightShoulder Head LeftArm RightArm LeftForeArm RightForeArm LeftHand "
          "RightHand")
TABLES = {
    "mixamo": MIXAMO,
    "smpl22_template": MIXAMO.replace("ToeBase", "Toe"),
    # CMU: LowerBack, Neck and the LeftShoulder clavicle start where their parents start (zero OFFSET, see
    # the extras below), so spine2 and the collars are interpolated and Neck1 is the neck.
    "cmu": ("Hips LeftUpLeg RightUpLeg Spine LeftLeg RightLeg - LeftFoot RightFoot Spine1 LeftToeBase RightToeBase "
            "Neck1 - - Head LeftArm RightArm LeftForeArm RightForeArm LeftHand RightHand"),
    "bandai": ("Hips UpperLeg_L UpperLeg_R Spine LowerLeg_L LowerLeg_R - Foot_L Foot_R Chest Toes_L Toes_R Neck "
               "Shoulder_L Shoulder_R Head UpperArm_L UpperArm_R LowerArm_L LowerArm_R Hand_L Hand_R"),
    "ue5": ("pelvis thigh_l thigh_r spine_01 calf_l calf_r spine_03 foot_l foot_r spine_05 ball_l ball_r neck_01 "
            "clavicle_l clavicle_r head upperarm_l upperarm_r lowerarm_l lowerarm_r hand_l hand_r"),
    "ue4": ("pelvis thigh_l thigh_r spine_01 calf_l calf_r spine_02 foot_l foot_r spine_03 ball_l ball_r neck_01 "
            "clavicle_l clavicle_r Head upperarm_l upperarm_r lowerarm_l lowerarm_r hand_l hand_r"),
    "smplx": " ".join(JOINT_NAMES),
    "smpl_fbx": " ".join("m_avg_" + "_".join(w.capitalize() if w not in ("left", "right") else w[0].upper()
                                             for w in name.split("_")) for name in JOINT_NAMES),
    "rigify": ("torso thigh_fk.L thigh_fk.R spine_fk.001 shin_fk.L shin_fk.R spine_fk.002 foot_fk.L foot_fk.R "
               "spine_fk.003 toe_fk.L toe_fk.R neck shoulder.L shoulder.R head upper_arm_fk.L upper_arm_fk.R "
               "forearm_fk.L forearm_fk.R hand_fk.L hand_fk.R"),
    "metarig": ("spine thigh.L thigh.R spine.001 shin.L shin.R spine.002 foot.L foot.R spine.003 toe.L toe.R "
                "spine.004 shoulder.L shoulder.R spine.006 upper_arm.L upper_arm.R forearm.L forearm.R hand.L "
                "hand.R"),
}
TABLES["rigify_def"] = " ".join("DEF-" + name for name in TABLES["metarig"].split())
TABLES["rigify_org"] = " ".join("ORG-" + name for name in TABLES["metarig"].split())
EXTRAS = {  # bones a real rig of that kind also has, which the map must skip
    "mixamo": [("HeadTop_End", "Head", "head+0,0.18,0", ()), ("LeftToe_End", "LeftToeBase", "left_foot+0,0,0.05", ()),
               *fingers("Left"), *fingers("Right")],
    "cmu": [(name, parent, at + "+0,1e-6,0", adopted) for name, parent, at, adopted in (  # + float noise
        ("LHipJoint", "Hips", "pelvis", ("LeftUpLeg",)), ("RHipJoint", "Hips", "pelvis", ("RightUpLeg",)),
        ("LowerBack", "Hips", "pelvis", ("Spine",)), ("Neck", "Spine1", "spine3", ("Neck1",)),
        ("LeftShoulder", "Spine1", "spine3", ("LeftArm",)), ("RightShoulder", "Spine1", "spine3", ("RightArm",)),
        ("LThumb", "LeftHand", "left_wrist", ()))],
    "bandai": [("joint_Root", None, "pelvis+0,-0.95,0", ("Hips",))],
    "ue5": [("root", None, "pelvis+0,-0.95,0", ("pelvis",)),
            ("spine_02", "spine_01", "spine1/spine2:0.5", ("spine_03",)),
            ("spine_04", "spine_03", "spine2/spine3:0.5", ("spine_05",)),
            ("neck_02", "neck_01", "neck/head:0.5", ("head",)),
            ("upperarm_twist_01_l", "upperarm_l", "left_shoulder/left_elbow:0.5", ()),
            ("thigh_twist_01_r", "thigh_r", "right_hip/right_knee:0.5", ()),
            ("ik_foot_root", "root", "pelvis+0,-0.95,0", ()), ("ik_foot_l", "ik_foot_root", "left_ankle", ()),
            ("ik_hand_gun", "root", "right_wrist", ())],
    "ue4": [("root", None, "pelvis+0,-0.95,0", ("pelvis",)), ("ball_leaf_l", "ball_l", "left_foot+0,0,0.08", ())],
    "metarig": [("spine.005", "spine.004", "neck/head:0.5", ("spine.006",)),
                ("pelvis.L", "spine", "left_hip+0,0.1,0", ())],
}


# ------------------------------------------------------------------------------------------------- presets
@pytest.mark.parametrize("preset", list(TABLES))
@pytest.mark.parametrize("frame, arms", [("bvh", "T"), ("blender_cm", "down"), ("unreal", "A")])
def test_every_preset_maps_its_rig(preset, frame, arms):
    bones = standard_rig(TABLES[preset], EXTRAS.get(preset, ()))
    bone_map = map_skeleton(*build(bones, arms=arms, knee_bend=10, frame=frame))
    assert bone_map.preset == preset
    assert bone_map.bones == expected(TABLES[preset])
    assert bone_map.notes == () and bone_map.unmapped == ()
    missing = {JOINT_NAMES[j] for j, name in enumerate(TABLES[preset].split()) if name == "-"}
    assert set(bone_map.interpolated) == missing
    names = [name for name, _, _ in bones]
    for j, bone in enumerate(bone_map.bones):
        if bone is not None:
            np.testing.assert_array_equal(bone_map.weights[j], np.eye(len(names))[names.index(bone)])
    np.testing.assert_allclose(bone_map.weights.sum(axis=1), 1.0)


@pytest.mark.parametrize("prefix", ["mixamorig:", "mixamorig1:", "Character_01:", "mixamorig_"])
def test_mixamo_names_under_any_namespace(prefix):
    table = " ".join(prefix + name for name in MIXAMO.split())
    bones = standard_rig(table, [(prefix + n, prefix + p, w, ()) for n, p, w, _ in EXTRAS["mixamo"]])
    bone_map = map_skeleton(*build(bones, frame="blender_cm"))
    assert bone_map.preset == "mixamo" and bone_map.bones == expected(table)


def test_ue5_with_three_spine_bones_is_ue4_and_case_is_ignored():
    bone_map = map_skeleton(*build(standard_rig(TABLES["ue4"], EXTRAS["ue4"]), frame="unreal"))
    assert bone_map.preset == "ue4" and bone_map.bones[JOINT_INDEX["head"]] == "Head"


def test_generated_rigify_rig_holds_three_name_sets():
    """A generated rig has the controls, DEF- and ORG- bones (and MCH- and twist bones) together: detection
    picks the controls; the deforming sets are one argument away."""
    bones = standard_rig(TABLES["rigify"])
    for prefix in ("DEF-", "ORG-", "MCH-"):
        bones += [(prefix + name, prefix + parent if parent else None, spec)
                  for name, parent, spec in standard_rig(TABLES["metarig"])]
    bones.append(("DEF-upper_arm.L.001", "DEF-upper_arm.L", "left_shoulder/left_elbow:0.5"))
    rig = build(bones, arms="A", frame="blender_cm")
    assert map_skeleton(*rig).preset == "rigify"
    for preset in ("rigify_org", "rigify_def"):
        assert map_skeleton(*rig, preset=preset).bones == expected(TABLES[preset])


def test_detection_prefers_the_preset_that_finds_most_names(monkeypatch):
    """A Mixamo rig with 'Neck1' (older Mixamo, the Z-up BVH) also has every name of the cmu table; the
    richer mixamo table wins in whatever order the presets are tried."""
    rig = build(standard_rig(MIXAMO, [("Neck1", "Neck", "neck/head:0.5", ("Head",))]))
    monkeypatch.setattr(bonemap, "PRESETS", dict(reversed(list(bonemap.PRESETS.items()))))
    assert map_skeleton(*rig).preset == "mixamo"
    assert map_skeleton(*rig, preset="cmu").interpolated.keys() == {"spine2", "left_collar", "right_collar"}


def test_bone_order_does_not_matter():
    bones = standard_rig(MIXAMO, EXTRAS["mixamo"])
    order = np.random.default_rng(0).permutation(len(bones))
    names, parents, positions = build(bones)
    shuffled_parents = [int(np.flatnonzero(order == parents[i])[0]) if parents[i] >= 0 else -1 for i in order]
    bone_map = map_skeleton([names[i] for i in order], shuffled_parents, positions[order])
    assert bone_map.bones == expected(MIXAMO)


# ------------------------------------------------------------------------------------------ generic rigs
# Rigs no preset covers, with their real hierarchy (rigs/README.md and the files' own bone lists) and the
# quirks of their rest poses.
QUATERNIUS_MODULAR = [  # glTF: Root -> Hips; no toe bones; the collar is 'Shoulder.L'
    *chain(None, ("Root", "pelvis+0,-0.95,0"), ("Hips", "pelvis"), ("Abdomen", "spine1"), ("Torso", "spine2"),
           ("Chest", "spine3"), ("Neck", "neck"), ("Head", "head")),
    *both_sides(lambda s, side: [
        *chain("Chest", (f"Shoulder.{s}", f"{side}_collar"), (f"UpperArm.{s}", f"{side}_shoulder"),
               (f"LowerArm.{s}", f"{side}_elbow"), (f"Hand.{s}", f"{side}_wrist"),
               (f"Index2.{s}", f"{side}_wrist+0.08,0,0")),
        (f"Thumb2.{s}", f"Hand.{s}", f"{side}_wrist+0.05,0,0.03"),
        *chain("Hips", (f"UpperLeg.{s}", f"{side}_hip"), (f"LowerLeg.{s}", f"{side}_knee"),
               (f"Foot.{s}", f"{side}_ankle"))]),
]
QUATERNIUS_2019 = [  # IK rig: legs hang from 'Body' (not 'Hips'), feet and pole targets from the root 'Bone'
    *chain(None, ("Bone", "pelvis+0,-0.95,0"), ("Body", "pelvis+0,-0.02,0.05"), ("Hips", "pelvis+0,-0.07,0"),
           ("Abdomen", "spine1"), ("Torso", "spine3"), ("Neck", "neck"), ("Head", "head")),
    *both_sides(lambda s, side: [
        *chain("Torso", (f"Shoulder.{s}", f"{side}_collar"), (f"UpperArm.{s}", f"{side}_shoulder"),
               (f"LowerArm.{s}", f"{side}_elbow"), (f"Palm.{s}", f"{side}_wrist"),
               (f"MiddleHand.{s}", f"{side}_wrist+0.05,0,0"), (f"Fingers.{s}", f"{side}_wrist+0.1,0,0")),
        (f"Thumb1.{s}", f"Palm.{s}", f"{side}_wrist+0.02,0,0.03"),
        *chain("Body", (f"UpperLeg.{s}", f"{side}_hip"), (f"LowerLeg.{s}", f"{side}_knee")),
        (f"Foot.{s}", "Bone", f"{side}_ankle"), (f"PoleTarget.{s}", "Bone", f"{side}_knee+0,0,0.7")]),
]
CESIUM_MAN = [  # Collada joints: numbered chains, no hip/knee/ankle words, no collar, no head bone
    *chain(None, ("Skeleton_torso_joint_1", "pelvis"), ("Skeleton_torso_joint_2", "spine1"),
           ("torso_joint_3", "spine3"), ("Skeleton_neck_joint_1", "neck"), ("Skeleton_neck_joint_2", "head")),
    *chain("torso_joint_3", ("Skeleton_arm_joint_L__4_", "left_shoulder"), ("Skeleton_arm_joint_L__3_", "left_elbow"),
           ("Skeleton_arm_joint_L__2_", "left_wrist")),
    *chain("torso_joint_3", ("Skeleton_arm_joint_R", "right_shoulder"), ("Skeleton_arm_joint_R__2_", "right_elbow"),
           ("Skeleton_arm_joint_R__3_", "right_wrist")),
    *both_sides(lambda s, side: chain("Skeleton_torso_joint_1", *(
        (f"leg_joint_{s}_{n}", f"{side}_{joint}")
        for n, joint in ((1, "hip"), (2, "knee"), (3, "ankle"), (5, "foot"))))),
]
BIPED = [  # 3ds Max Biped: thighs hang from 'Bip01 Spine', clavicles from the neck, '...Nub' end bones
    *chain(None, ("Bip01", "pelvis+0,-0.95,0"), ("Bip01 Pelvis", "pelvis"), ("Bip01 Spine", "spine1"),
           ("Bip01 Spine1", "spine2"), ("Bip01 Spine2", "spine3"), ("Bip01 Neck", "neck"), ("Bip01 Head", "head"),
           ("Bip01 HeadNub", "head+0,0.2,0")),
    *both_sides(lambda s, side: [
        *chain("Bip01 Spine", (f"Bip01 {s} Thigh", f"{side}_hip"), (f"Bip01 {s} Calf", f"{side}_knee"),
               (f"Bip01 {s} Foot", f"{side}_ankle"), (f"Bip01 {s} Toe0", f"{side}_foot"),
               (f"Bip01 {s} Toe0Nub", f"{side}_foot+0,0,0.04")),
        *chain("Bip01 Neck", (f"Bip01 {s} Clavicle", f"{side}_collar"), (f"Bip01 {s} UpperArm", f"{side}_shoulder"),
               (f"Bip01 {s} Forearm", f"{side}_elbow"), (f"Bip01 {s} Hand", f"{side}_wrist"),
               (f"Bip01 {s} Finger0", f"{side}_wrist+0.05,0,0.02"))]),
]
VRM = [  # VRoid: J_Bip_C_* centre bones, an UpperChest, J_Bip_L_Shoulder is the collar, J_Sec_* extras
    *chain(None, ("J_Bip_C_Hips", "pelvis"), ("J_Bip_C_Spine", "spine1"), ("J_Bip_C_Chest", "spine2"),
           ("J_Bip_C_UpperChest", "spine3"), ("J_Bip_C_Neck", "neck"), ("J_Bip_C_Head", "head")),
    *both_sides(lambda s, side: [
        *chain("J_Bip_C_UpperChest", (f"J_Bip_{s}_Shoulder", f"{side}_collar"),
               (f"J_Bip_{s}_UpperArm", f"{side}_shoulder"), (f"J_Bip_{s}_LowerArm", f"{side}_elbow"),
               (f"J_Bip_{s}_Hand", f"{side}_wrist")),
        (f"J_Sec_{s}_Bust1", "J_Bip_C_UpperChest", f"{side}_collar+0,-0.1,0.1"),
        *chain("J_Bip_C_Hips", (f"J_Bip_{s}_UpperLeg", f"{side}_hip"), (f"J_Bip_{s}_LowerLeg", f"{side}_knee"),
               (f"J_Bip_{s}_Foot", f"{side}_ankle"), (f"J_Bip_{s}_ToeBase", f"{side}_foot"))]),
]
GENERIC_CASES = {  # rig, rest pose, expected map ('~' interpolated, '-' unmapped)
    "quaternius_modular": (QUATERNIUS_MODULAR, dict(arms="T", frame="blender_cm"),
                           "Hips UpperLeg.L UpperLeg.R Abdomen LowerLeg.L LowerLeg.R Torso Foot.L Foot.R Chest - - "
                           "Neck Shoulder.L Shoulder.R Head UpperArm.L UpperArm.R LowerArm.L LowerArm.R Hand.L Hand.R"),
    "quaternius_2019": (QUATERNIUS_2019, dict(arms="T", knee_bend=17, frame="blender_cm"),
                        "Body UpperLeg.L UpperLeg.R Abdomen LowerLeg.L LowerLeg.R ~ Foot.L Foot.R Torso - - Neck "
                        "Shoulder.L Shoulder.R Head UpperArm.L UpperArm.R LowerArm.L LowerArm.R Palm.L Palm.R"),
    "cesium_man": (CESIUM_MAN, dict(arms="A", knee_bend=25, frame="blender_cm"),
                   "Skeleton_torso_joint_1 leg_joint_L_1 leg_joint_R_1 Skeleton_torso_joint_2 leg_joint_L_2 "
                   "leg_joint_R_2 ~ leg_joint_L_3 leg_joint_R_3 torso_joint_3 leg_joint_L_5 leg_joint_R_5 "
                   "Skeleton_neck_joint_1 ~ ~ Skeleton_neck_joint_2 Skeleton_arm_joint_L__4_ Skeleton_arm_joint_R "
                   "Skeleton_arm_joint_L__3_ Skeleton_arm_joint_R__2_ Skeleton_arm_joint_L__2_ "
                   "Skeleton_arm_joint_R__3_"),
    "biped": (BIPED, dict(arms="T", frame="unreal"),
              "|".join(["Bip01 Pelvis", "Bip01 L Thigh", "Bip01 R Thigh", "Bip01 Spine", "Bip01 L Calf", "Bip01 R Calf",
                        "Bip01 Spine1", "Bip01 L Foot", "Bip01 R Foot", "Bip01 Spine2", "Bip01 L Toe0", "Bip01 R Toe0",
                        "Bip01 Neck", "Bip01 L Clavicle", "Bip01 R Clavicle", "Bip01 Head", "Bip01 L UpperArm",
                        "Bip01 R UpperArm", "Bip01 L Forearm", "Bip01 R Forearm", "Bip01 L Hand", "Bip01 R Hand"])),
    "vrm": (VRM, dict(arms="A", frame="bvh"),
            "J_Bip_C_Hips J_Bip_L_UpperLeg J_Bip_R_UpperLeg J_Bip_C_Spine J_Bip_L_LowerLeg J_Bip_R_LowerLeg "
            "J_Bip_C_Chest J_Bip_L_Foot J_Bip_R_Foot J_Bip_C_UpperChest J_Bip_L_ToeBase J_Bip_R_ToeBase J_Bip_C_Neck "
            "J_Bip_L_Shoulder J_Bip_R_Shoulder J_Bip_C_Head J_Bip_L_UpperArm J_Bip_R_UpperArm J_Bip_L_LowerArm "
            "J_Bip_R_LowerArm J_Bip_L_Hand J_Bip_R_Hand"),
}


@pytest.mark.parametrize("case", list(GENERIC_CASES))
def test_generic_matcher_on_rigs_without_a_preset(case):
    bones, pose, table = GENERIC_CASES[case]
    bone_map = map_skeleton(*build(bones, **pose))
    assert bone_map.preset == "generic"
    want = table.split("|") if "|" in table else table.split()
    assert bone_map.bones == tuple(None if w in "~-" else w for w in want)
    assert set(bone_map.interpolated) == {JOINT_NAMES[j] for j, w in enumerate(want) if w == "~"}
    assert set(bone_map.unmapped) == {JOINT_NAMES[j] for j, w in enumerate(want) if w == "-"}
    assert not bone_map.weights[[JOINT_INDEX[j] for j in bone_map.unmapped]].any()
    report = bone_map.report()
    assert "generic" in report and all(f"{j:<15}-- unmapped" in report for j in bone_map.unmapped)


def test_generic_matcher_agrees_with_the_presets_it_can_read():
    for preset in ("mixamo", "bandai", "ue4", "cmu"):
        rig = build(standard_rig(TABLES[preset], EXTRAS.get(preset, ())), knee_bend=10)
        by_preset, generic = map_skeleton(*rig), map_skeleton(*rig, preset="generic")
        assert generic.preset == "generic" and generic.bones == by_preset.bones, preset
        np.testing.assert_array_equal(generic.weights, by_preset.weights)


# ------------------------------------------------------------------------------------------- left / right
@pytest.mark.parametrize("frame", list(FRAMES))
def test_mirrored_names_are_resolved_by_rest_positions(frame):
    """Bones named Left on the body's right (a reflected rig): the body frame from the rest positions
    (up pelvis -> head, forward from the toes) decides, in any axes and units."""
    bone_map = map_skeleton(*build(standard_rig(MIXAMO), frame=frame, mirror=True))
    assert bone_map.bones[JOINT_INDEX["left_hip"]] == "RightUpLeg"
    assert bone_map.bones[JOINT_INDEX["left_foot"]] == "RightToeBase"
    assert bone_map.bones[JOINT_INDEX["right_wrist"]] == "LeftHand"
    assert bone_map.bones[JOINT_INDEX["left_collar"]] == "RightShoulder"
    assert len(bone_map.notes) == 2 and "sides swapped" in bone_map.report()


def test_one_limb_pair_named_the_wrong_way_is_swapped_alone():
    table = MIXAMO.replace("Left", "@").replace("Right", "Left").replace("@", "Right")
    arms = [f"{s}{b}" for s in ("Left", "Right") for b in ("Shoulder", "Arm", "ForeArm", "Hand")]
    table = " ".join(n.replace("Left", "@").replace("Right", "Left").replace("@", "Right") if n in arms else n
                     for n in table.split())  # legs mirrored, arms named correctly
    bone_map = map_skeleton(*build(standard_rig(table)))
    assert bone_map.bones == expected(table)  # each joint gets the bone at its place, whatever its name
    assert bone_map.bones[JOINT_INDEX["left_hip"]] == "RightUpLeg"
    assert bone_map.notes == ("the leg named left lies on the body's right (rest positions): sides swapped",)


def test_names_decide_when_positions_show_no_forward():
    """Without toes and with straight knees no forward direction shows, so left cannot be told from right:
    the names stand even on a reflected rig."""
    no_toes = MIXAMO.replace("LeftToeBase", "-").replace("RightToeBase", "-")
    bone_map = map_skeleton(*build(standard_rig(no_toes), mirror=True))
    assert bone_map.bones[JOINT_INDEX["left_hip"]] == "LeftUpLeg" and "swapped" not in bone_map.report()
    bent = map_skeleton(*build(standard_rig(no_toes), knee_bend=15, mirror=True))  # knees bend forward
    assert bent.bones[JOINT_INDEX["left_hip"]] == "RightUpLeg"


# ------------------------------------------------------------------------------- interpolation, overrides
def test_interpolated_joints_blend_their_neighbours():
    bone_map = map_skeleton(*build(standard_rig(TABLES["bandai"], EXTRAS["bandai"])))
    names = [name for name, _, _ in standard_rig(TABLES["bandai"], EXTRAS["bandai"])]
    row = bone_map.weights[JOINT_INDEX["spine2"]]
    assert row[names.index("Spine")] == row[names.index("Chest")] == 0.5 and row.sum() == 1.0
    assert bone_map.interpolated == {"spine2": "0.5 spine1 + 0.5 spine3"}

    no_spine = MIXAMO.replace("Spine1", "-").replace("Spine2", "-").replace("Spine ", "- ")
    names, parents, positions = build(standard_rig(no_spine))
    bone_map = map_skeleton(names, parents, positions, preset="mixamo")
    for joint, t in (("spine1", 0.25), ("spine2", 0.5), ("spine3", 0.75)):
        row = bone_map.weights[JOINT_INDEX[joint]]
        assert row.sum() == pytest.approx(1.0)
        assert row[names.index("Hips")] == pytest.approx(1 - t) and row[names.index("Neck")] == pytest.approx(t)


def test_overrides_win_over_detection():
    bones = standard_rig(MIXAMO, EXTRAS["mixamo"])
    rig = build(bones, mirror=True)  # detection swaps the sides ...
    bone_map = map_skeleton(*rig, overrides={"left_wrist": "LeftHandIndex1", "spine2": "Spine"})
    assert bone_map.bones[JOINT_INDEX["left_wrist"]] == "LeftHandIndex1"  # ... the override is kept as given
    assert bone_map.bones[JOINT_INDEX["right_wrist"]] == "LeftHand"
    assert bone_map.bones[JOINT_INDEX["spine2"]] == "Spine"
    assert "left_wrist set by override: LeftHandIndex1" in bone_map.report()
    bandai = map_skeleton(*build(standard_rig(TABLES["bandai"])), overrides={"spine2": "Spine"})
    assert "spine2" not in bandai.interpolated and bandai.bones[JOINT_INDEX["spine2"]] == "Spine"


# ------------------------------------------------------------------------------------ unmappable skeletons
def test_skeleton_without_legs_names_the_missing_joints():
    upper_body = " ".join("-" if "Leg" in n or "Foot" in n or "Toe" in n else n for n in MIXAMO.split())
    for preset in (None, "mixamo"):
        with pytest.raises(UnmappableSkeletonError) as error:
            map_skeleton(*build(standard_rig(upper_body)), preset=preset)
        assert "no left leg: left_hip, left_knee, left_ankle not found" in str(error.value)
        assert "no right leg: right_hip, right_knee, right_ankle not found" in str(error.value)
    with pytest.raises(UnmappableSkeletonError, match="left arm incomplete: left_wrist not found"):
        map_skeleton(*build(standard_rig(MIXAMO.replace("LeftHand", "-"))))


def test_two_pelvises_are_ambiguous_unless_overridden():
    bones = standard_rig(MIXAMO) + [("mixamorig:Hips", None, "pelvis+0,0.01,0")]
    with pytest.raises(UnmappableSkeletonError, match=r"2 bones qualify as pelvis \(Hips, mixamorig:Hips\)"):
        map_skeleton(*build(bones))
    assert map_skeleton(*build(bones), overrides={"pelvis": "Hips"}).bones == expected(MIXAMO)

    twins = QUATERNIUS_MODULAR + [(n + ".001", p and p + ".001", w) for n, p, w in QUATERNIUS_MODULAR]
    with pytest.raises(UnmappableSkeletonError, match=r"qualify as pelvis \(Hips, Hips.001\)"):
        map_skeleton(*build(twins))


def test_empty_and_malformed_skeletons_are_refused():
    with pytest.raises(UnmappableSkeletonError, match="empty skeleton.*pelvis, left_hip"):
        map_skeleton([], [], np.zeros((0, 3)))
    names, parents, positions = build(standard_rig(MIXAMO))
    with pytest.raises(ValueError, match="inconsistent skeleton: 22 names"):
        map_skeleton(names, parents[:-1], positions)
    with pytest.raises(ValueError, match="parent of bone 'Hips' is 22"):
        map_skeleton(names, [22] + parents[1:], positions)
    with pytest.raises(ValueError, match="cycle"):
        map_skeleton(names, [1, 0] + parents[2:], positions)
    with pytest.raises(ValueError, match="finite"):
        map_skeleton(names, parents, positions * np.nan)
    with pytest.raises(ValueError, match="unique: Hips"):
        map_skeleton(names[:-1] + ["Hips"], parents, positions)
    with pytest.raises(ValueError, match="unknown preset 'maximo'"):
        map_skeleton(names, parents, positions, preset="maximo")
    with pytest.raises(ValueError, match="override 'left_hand': not an SMPL joint"):
        map_skeleton(names, parents, positions, overrides={"left_hand": "LeftHand"})
    with pytest.raises(ValueError, match="override left_wrist -> 'Wrist.L'"):
        map_skeleton(names, parents, positions, overrides={"left_wrist": "Wrist.L"})


# --------------------------------------------------------------------------------------- real BVH files
def read_rig(name: str):
    return read_bvh(shared_path("rigs", name))


@pytest.mark.shared
def test_real_template_bvh_maps_one_to_one_by_preset_and_by_generic_matcher():
    bvh = read_rig("bvh_smpl22_humanml3d_momask_template.bvh")
    for preset in (None, "generic"):
        bone_map = map_skeleton(bvh.names, bvh.parents, bvh.rest_positions(), preset=preset)
        assert bone_map.bones == expected(TABLES["smpl22_template"]) and not bone_map.interpolated


@pytest.mark.shared
def test_real_template_without_collars_interpolates_them_near_the_real_ones():
    """_COLLAR_BLEND on the SMPL template: within 1.5 cm of the collar joints it replaces (rest pose)."""
    bvh = read_rig("bvh_smpl22_humanml3d_momask_template.bvh")
    rest = bvh.rest_positions()
    keep = [i for i, n in enumerate(bvh.names) if n not in ("LeftShoulder", "RightShoulder")]
    parents = [bvh.parents[i] if bvh.parents[i] in keep + [-1] else bvh.parents[bvh.parents[i]] for i in keep]
    bone_map = map_skeleton([bvh.names[i] for i in keep], [keep.index(p) if p >= 0 else -1 for p in parents],
                            rest[keep], preset="smpl22_template")
    for side in ("Left", "Right"):
        joint = JOINT_INDEX[f"{side.lower()}_collar"]
        assert bone_map.weights[joint].sum() == pytest.approx(1.0)
        assert np.linalg.norm(bone_map.weights[joint] @ rest[keep] - rest[bvh.names.index(f"{side}Shoulder")]) < 0.015


@pytest.mark.shared
def test_real_cmu_bvh_skips_its_zero_length_bones():
    bvh = read_rig("bvh_cmu_12_01_walk_mobu.bvh")
    rest = bvh.rest_positions()
    bone_map = map_skeleton(bvh.names, bvh.parents, rest)
    assert bone_map.preset == "cmu" and bone_map.bones == expected(TABLES["cmu"])
    generic = map_skeleton(bvh.names, bvh.parents, rest, preset="generic")
    assert generic.bones == bone_map.bones
    joints = bone_map.weights @ rest
    segments = np.linalg.norm(joints[1:] - joints[PARENTS[1:]], axis=1)
    assert segments.min() > 0.5  # file units (~6 cm): no SMPL bone of zero length


@pytest.mark.shared
def test_real_z_up_mixamo_bvh_and_its_mirror_image():
    """Authored Z up, facing +Y, so the body's left is -X: the names are right, and a reflected copy of the
    rest pose (names now on the wrong side) gets its sides swapped."""
    bvh = read_rig("bvh_zup_nomixamoprefix.bvh")
    rest = bvh.rest_positions()
    assert rest[bvh.names.index("LeftUpLeg"), 0] < 0
    bone_map = map_skeleton(bvh.names, bvh.parents, rest)
    assert bone_map.preset == "mixamo" and bone_map.bones == expected(MIXAMO) and bone_map.notes == ()
    mirrored = map_skeleton(bvh.names, bvh.parents, rest * (-1, 1, 1))
    assert mirrored.bones[JOINT_INDEX["left_hip"]] == "RightUpLeg"
    assert mirrored.bones[JOINT_INDEX["left_shoulder"]] == "RightArm"


@pytest.mark.shared
def test_real_bandai_clip_on_its_zero_pose_and_first_frame(tmp_path):
    """Zero rotations lay Bandai-Namco's bones along x (no forward to be seen): the names decide; on frame 0
    the positions agree with them. spine2 is the midpoint of Spine and Chest in every frame."""
    with tarfile.open(shared_path("data", "bandai-namco-motion.tar.xz"), "r|xz") as stream:
        member = next(m for m in stream if m.name.endswith(".bvh"))
        path = tmp_path / "clip.bvh"
        path.write_bytes(stream.extractfile(member).read())
    bvh = read_bvh(path)
    frames = bvh.global_positions()
    for pose in (bvh.rest_positions(), frames[0]):
        bone_map = map_skeleton(bvh.names, bvh.parents, pose)
        assert bone_map.preset == "bandai" and bone_map.bones == expected(TABLES["bandai"]) and bone_map.notes == ()
    joints = np.einsum("jb,fbc->fjc", bone_map.weights, frames)
    spine, chest = bvh.names.index("Spine"), bvh.names.index("Chest")
    np.testing.assert_allclose(joints[:, JOINT_INDEX["spine2"]], (frames[:, spine] + frames[:, chest]) / 2)
    np.testing.assert_allclose(joints[:, JOINT_INDEX["left_hip"]], frames[:, bvh.names.index("UpperLeg_L")])


# ------------------------------------------------------------------------------------- structure alone
def renamed(names: list[str], seed: int = 0) -> list[str]:
    """Every bone name replaced by a random string of consonants: no word a name matcher knows."""
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("bcdfghjklmnpqrstvwxz"), 10)) for _ in names]


def by_structure(names, parents, positions, seed: int = 0) -> tuple[str | None, ...]:
    """The bones (real names) a map of the skeleton with random names finds: the structure's alone."""
    fake = renamed(names, seed)
    bone_map = map_skeleton(fake, parents, positions)
    assert bone_map.preset == "generic" and set(bone_map.structural) == {
        joint for joint, bone in zip(JOINT_NAMES, bone_map.bones) if bone is not None}
    return tuple(None if bone is None else names[fake.index(bone)] for bone in bone_map.bones)


@pytest.mark.parametrize("frame, arms", [("bvh", "T"), ("blender_cm", "down"), ("unreal", "A")])
def test_structure_alone_finds_what_names_find(frame, arms):
    """Every preset's rig and every generic rig above, renamed at random: the hierarchy and the rest heads give
    the bones the names give (presets aside that skip spine bones: ue5 takes spine_03 of five as spine2, the
    structure the one nearest the middle)."""
    rigs = {preset: (standard_rig(table, EXTRAS.get(preset, ())), dict(arms=arms, knee_bend=10, frame=frame),
                     expected(table)) for preset, table in TABLES.items() if preset != "ue5"}
    rigs.update({case: (bones, pose, tuple(None if w in "~-" else w for w in (
        table.split("|") if "|" in table else table.split()))) for case, (bones, pose, table) in GENERIC_CASES.items()})
    for name, (bones, pose, want) in rigs.items():
        assert by_structure(*build(bones, **pose)) == want, name


def odd_rig(spine: int = 3, collars: bool = True, toes: bool = True, twists: bool = False, root: bool = False):
    """(bones, expected map) of a rig no preset knows: `spine` bones from pelvis to the arms' fork (the first
    spine1, the last spine3, the one nearest their middle spine2), optionally no collars, no toes, twist bones
    inside the thigh and forearm chains (riding halfway), a root bone on the floor above the pelvis."""
    bones = [("root", None, "pelvis+0,-0.95,0")] if root else []
    bones.append(("pelvis", "root" if root else None, "pelvis"))
    spine_names = [f"spine{k}" for k in range(1, spine + 1)]
    bones += chain("pelvis", *((name, f"pelvis/spine3:{k / spine:.4f}") for k, name in enumerate(spine_names, 1)))
    bones += chain(spine_names[-1], ("neck", "neck"), ("head", "head"), ("head_top", "head+0,0.2,0"))
    want = {"pelvis": "pelvis", "spine1": spine_names[0] if spine > 1 else None, "spine3": spine_names[-1],
            "spine2": spine_names[(spine - 1) // 2] if spine > 2 else None, "neck": "neck",
            "head": "head"}
    for s, side in (("L", "left"), ("R", "right")):
        leg = [(f"thigh_{s}", f"{side}_hip")] + [(f"thigh_twist_{s}", f"{side}_hip/{side}_knee:0.5")] * twists
        leg += [(f"shin_{s}", f"{side}_knee"), (f"foot_{s}", f"{side}_ankle")] + [(f"toe_{s}", f"{side}_foot")] * toes
        arm = [(f"clavicle_{s}", f"{side}_collar")] * collars + [(f"upper_{s}", f"{side}_shoulder"),
                                                                (f"fore_{s}", f"{side}_elbow")]
        arm += [(f"fore_twist_{s}", f"{side}_elbow/{side}_wrist:0.5")] * twists + [(f"hand_{s}", f"{side}_wrist")]
        bones += chain("pelvis", *leg) + chain(spine_names[-1], *arm)
        bones += [(f"{finger}_{s}", f"hand_{s}", f"{side}_wrist+0.08,0,{z}") for finger, z in (("a", 0.0), ("b", 0.03))]
        want.update({f"{side}_hip": f"thigh_{s}", f"{side}_knee": f"shin_{s}", f"{side}_ankle": f"foot_{s}",
                     f"{side}_foot": f"toe_{s}" if toes else None,
                     f"{side}_collar": f"clavicle_{s}" if collars else None,
                     f"{side}_shoulder": f"upper_{s}", f"{side}_elbow": f"fore_{s}", f"{side}_wrist": f"hand_{s}"})
    return bones, tuple(want[joint] for joint in JOINT_NAMES)


@pytest.mark.parametrize("rig, pose", [
    (dict(spine=2), dict(arms="T")), (dict(spine=5), dict(arms="A", frame="unreal")),
    (dict(spine=1, collars=False), dict(arms="down", knee_bend=20)), (dict(toes=False), dict(arms="T", knee_bend=10)),
    (dict(twists=True, root=True), dict(arms="A", frame="blender_cm")),
    (dict(spine=4, collars=False, toes=False, twists=True), dict(arms="down", knee_bend=15, frame="unreal")),
])
def test_structure_maps_odd_hierarchies(rig, pose):
    bones, want = odd_rig(**rig)
    assert by_structure(*build(bones, **pose)) == want
    mirrored = tuple(bone and bone.translate(str.maketrans("LR", "RL")) for bone in want)
    assert by_structure(*build(bones, mirror=True, **pose)) == mirrored  # left and right from the rest positions


def test_structure_marks_the_joints_it_found_and_names_keep_theirs():
    """Daz-style names the name matcher half reads (lShldr is no word it knows): the structure adds the
    shoulders, marked as such in the report; the joints the names found stay the names'."""
    bones, _ = odd_rig(collars=True)
    daz = {"pelvis": "hip", "clavicle_L": "lCollar", "upper_L": "lShldr", "fore_L": "lForeArm", "hand_L": "lHand",
           "thigh_L": "lThigh", "shin_L": "lShin", "foot_L": "lFoot", "head": "head", "neck": "neck"}
    daz |= {k.replace("_L", "_R"): v.replace("l", "r", 1) for k, v in daz.items() if k.endswith("_L")}
    names, parents, positions = build([(daz.get(n, n), daz.get(p, p), w) for n, p, w in bones])
    bone_map = map_skeleton(names, parents, positions)
    bones = dict(zip(JOINT_NAMES, bone_map.bones))
    assert bones["left_shoulder"] == "lShldr" and bones["right_wrist"] == "rHand"
    assert "left_shoulder" in bone_map.structural and "left_wrist" not in bone_map.structural
    assert "  left_shoulder  <- lShldr (by structure)" in bone_map.report()


def test_structure_refuses_a_quadruped_and_a_torso_without_arms():
    """A dog (spine level, four legs down) is no body to the structure: the names' message stands, with the
    structure's reason; so is a rig whose arm stops at the clavicle (names say which joints are missing)."""
    dog = [("Hips", None, "pelvis"), ("Spine", "Hips", "pelvis+0,0,-0.25"), ("Chest", "Spine", "pelvis+0,0,-0.5"),
           ("Neck", "Chest", "pelvis+0,0.15,-0.65"), ("Head", "Neck", "pelvis+0,0.25,-0.75")]
    for s, side in (("L", "left"), ("R", "right")):
        dog += chain("Hips", *((f"Back{b}_{s}", f"{side}_{j}") for b, j in (("Leg", "hip"), ("Shin", "knee"),
                                                                           ("Foot", "ankle"), ("Toe", "foot"))))
        dog += chain("Chest", *((f"Front{b}_{s}", f"{side}_{j}+0,0,-0.5") for b, j in (
            ("Leg", "hip"), ("Shin", "knee"), ("Paw", "ankle"), ("Toe", "foot"))))
    for names in (None, "random"):
        rig = build(dog)
        if names:
            rig = (renamed(rig[0]), *rig[1:])
        with pytest.raises(UnmappableSkeletonError, match="no left arm.*structure: no two legs pointing down from a "
                                                          "spine that forks into two arms"):
            map_skeleton(*rig)
    armless = MIXAMO.replace("LeftArm", "-").replace("LeftForeArm", "-").replace("LeftHand", "-")
    with pytest.raises(UnmappableSkeletonError, match="left arm incomplete: left_elbow, left_wrist not found"):
        map_skeleton(*build(standard_rig(armless)), preset="generic")


# Real skeletons, each in the pose its map is made on (BVH: the rest pose, or frame 0 where that lies along x or
# cannot be mapped, as core.mocap does; Blender rigs: world-space rest heads after import): the 22 bones their real
# names give (the generic matcher: names, then the structure; '-' or '~': interpolated or unmapped).
CC = "Hip L_Thigh R_Thigh Waist L_Calf R_Calf Spine01 L_Foot R_Foot Spine02 L_ToeBase R_ToeBase NeckTwist01 " \
     "L_Clavicle R_Clavicle Head L_Upperarm R_Upperarm L_Forearm R_Forearm L_Hand R_Hand"
REAL_SKELETONS = {
    "rigs/bvh_cmu_12_01_walk_mobu.bvh": TABLES["cmu"],
    "rigs/bvh_zup_nomixamoprefix.bvh": MIXAMO.replace("Spine2", "Spine3").replace("Spine1", "Spine2"),
    "rigs/bvh_smpl22_humanml3d_momask_template.bvh": TABLES["smpl22_template"],
    "more-mocap/cmu/bvh_daz/07_12.bvh": "hip lThigh rThigh abdomen lShin rShin ~ lFoot rFoot chest ~ ~ neck lCollar "
                                        "rCollar head lShldr rShldr lForeArm rForeArm lHand rHand",
    "more-mocap/cmu/bvh_cc/007_01.bvh": " ".join("CC_Base_" + bone for bone in CC.split()),
    "more-mocap/cmu/bvh_cc/002_01.bvh": " ".join("CC_Base_" + bone for bone in CC.split()),
    "more-mocap/accad/general/Male2-Run_turn_right_90.bvh": MIXAMO.replace("Spine2", "Spine4").replace("Spine1",
                                                                                                        "Spine2"),
    "bandai": TABLES["bandai"],
    "blender/ue5": TABLES["ue4"],
    "blender/quaternius_modular": GENERIC_CASES["quaternius_modular"][2],
    "blender/quaternius_2019_ik": GENERIC_CASES["quaternius_2019"][2],
    "blender/cesiumman": GENERIC_CASES["cesium_man"][2],
}


def real_skeleton(name: str, more_mocap, bandai_bvh):
    """(names, parents, positions) of a REAL_SKELETONS entry."""
    if name.startswith("blender/"):
        from tests.support.blender import bpy, import_rig  # skips without bpy
        bpy.ops.wm.read_homefile(use_empty=True)
        ob = import_rig(name.removeprefix("blender/"))
        names = [bone.name for bone in ob.data.bones]
        parents = [names.index(bone.parent.name) if bone.parent else -1 for bone in ob.data.bones]
        heads = np.array([np.array(ob.matrix_world) @ np.append(bone.head_local, 1.0) for bone in ob.data.bones])
        return names, parents, heads[:, :3]
    path = {"rigs": lambda p: shared_path("rigs", p), "more-mocap": lambda p: more_mocap / p,
            "bandai": lambda p: bandai_bvh}[name.split("/")[0]](name.partition("/")[2])
    bvh = read_bvh(path)
    rest_lies = name.startswith(("more-mocap/cmu/bvh_cc", "more-mocap/accad", "bandai"))
    return bvh.names, bvh.parents, bvh.global_positions()[0] if rest_lies else bvh.rest_positions()


@pytest.fixture(scope="module")
def bandai_bvh(tmp_path_factory):
    """The first .bvh in the Bandai-Namco archive, streamed out."""
    with tarfile.open(shared_path("data", "bandai-namco-motion.tar.xz"), "r|xz") as stream:
        member = next(m for m in stream if m.name.endswith(".bvh"))
        path = tmp_path_factory.mktemp("bandai") / "clip.bvh"
        path.write_bytes(stream.extractfile(member).read())
    return path


@pytest.mark.shared
@pytest.mark.parametrize("name", list(REAL_SKELETONS))
def test_real_skeletons_renamed_at_random_map_as_their_names_do(name, more_mocap, bandai_bvh):
    names, parents, positions = real_skeleton(name, more_mocap, bandai_bvh)
    want = tuple(None if bone in "-~" else bone for bone in REAL_SKELETONS[name].split())
    assert map_skeleton(names, parents, positions, preset="generic").bones == want
    for seed in range(3):
        assert by_structure(names, parents, positions, seed) == want


# ------------------------------------------------------------------------------------------ complete tables
def test_a_table_is_taken_as_it_is():
    """preset=TABLE: no detection. Rows left out are interpolated (torso, collars) even where the rig has a bone
    a detector would take; a table naming the sides the other way round is kept; no override notes."""
    names, parents, positions = build(standard_rig(MIXAMO))
    table = {joint: bone for joint, bone in zip(JOINT_NAMES, MIXAMO.split()) if joint not in ("spine2", "left_collar")}
    table["left_wrist"], table["right_wrist"] = "RightHand", "LeftHand"
    bone_map = map_skeleton(names, parents, positions, preset=bonemap.TABLE, overrides=table)
    assert bone_map.preset == bonemap.TABLE and bone_map.notes == ()
    assert bone_map.bones == tuple(table.get(joint) for joint in JOINT_NAMES)
    assert bone_map.interpolated.keys() == {"spine2", "left_collar"}
    assert bone_map.report().startswith("bone map: given table")
    with pytest.raises(UnmappableSkeletonError, match=r"no right arm: right_shoulder, right_elbow, right_wrist not "
                                                      r"found \(the table names no bone for them\)") as error:
        map_skeleton(names, parents, positions, preset=bonemap.TABLE, overrides={
            j: b for j, b in table.items() if j not in ("right_shoulder", "right_elbow", "right_wrist")})
    assert error.value.partial["left_wrist"] == "RightHand" and "right_wrist" not in error.value.partial


def test_detection_that_fails_hands_back_the_joints_it_found():
    armless = MIXAMO.replace("LeftArm", "-").replace("LeftForeArm", "-").replace("LeftHand", "-")
    with pytest.raises(UnmappableSkeletonError, match="left arm incomplete: left_elbow, left_wrist not") as error:
        map_skeleton(*build(standard_rig(armless)))
    found = {j: b for j, b in zip(JOINT_NAMES, armless.split()) if b != "-" and j != "left_collar"}
    assert error.value.partial == found | {"left_shoulder": "LeftShoulder"}  # the clavicle, taken for the arm
    bones = standard_rig(MIXAMO) + [("mixamorig:Hips", None, "pelvis+0,0.01,0")]
    with pytest.raises(UnmappableSkeletonError, match="2 bones qualify as pelvis") as error:
        map_skeleton(*build(bones))
    assert "pelvis" not in error.value.partial and error.value.partial["head"] == "Head"


@pytest.mark.parametrize("version", ["0", "1"])
def test_vrm_humanoid_table_maps_a_vroid_rig_as_detection_does(version):
    vroid = GENERIC_CASES["vrm"][2].split()  # the VRoid rig's bones in JOINT_NAMES order
    table = bonemap.vrm_humanoid(vrm_gltf(version, dict(zip(VRM_BONES, vroid)) | {"leftEye": "J_Adj_L_FaceEye"}))
    assert table == dict(zip(JOINT_NAMES, vroid))
    bone_map = map_skeleton(*build(VRM, arms="A"), preset=bonemap.TABLE, overrides=table)
    assert bone_map.bones == map_skeleton(*build(VRM, arms="A")).bones == tuple(vroid)


def test_vrm_spine_chest_and_upper_chest_fill_smpls_spine_from_the_top():
    spine = {"spine": "S", "chest": "C", "upperChest": "U"}
    assert bonemap.vrm_joint_table(spine) == {"spine1": "S", "spine2": "C", "spine3": "U"}
    assert bonemap.vrm_joint_table({"spine": "S", "chest": "C"}) == {"spine1": "S", "spine3": "C"}
    assert bonemap.vrm_joint_table({"spine": "S", "chest": ""}) == {"spine3": "S"}
    assert bonemap.vrm_joint_table({"leftShoulder": "Clavicle", "leftUpperArm": "Arm", "leftToes": "Toe",
                                    "leftThumbProximal": "Thumb"}) == {
        "left_collar": "Clavicle", "left_shoulder": "Arm", "left_foot": "Toe"}


def test_gltf_json_is_read_from_glb_and_json_files(tmp_path):
    gltf = vrm_gltf("1", {"hips": "Hips"})
    (tmp_path / "model.vrm").write_bytes(glb(gltf, binary=b"\0" * 8))
    (tmp_path / "model.gltf").write_text(json.dumps(gltf))
    for name in ("model.vrm", "model.gltf"):
        assert bonemap.read_gltf_json(tmp_path / name) == gltf
        assert bonemap.vrm_humanoid(bonemap.read_gltf_json(tmp_path / name)) == {"pelvis": "Hips"}
    broken = {"short.glb": glb(gltf)[:16], "cut.glb": glb(gltf)[:40],
              "bin_first.glb": glb(gltf).replace(b"JSON", b"BIN\0", 1), "noise.vrm": b"\x89PNG\r\n" + bytes(range(50))}
    for name, data in broken.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=f"{name}: (truncated|not a binary glTF|neither)"):
            bonemap.read_gltf_json(tmp_path / name)


def test_vrm_tables_that_cannot_be_read_are_refused():
    with pytest.raises(ValueError, match="model.glb: no VRM humanoid table"):
        bonemap.vrm_humanoid({"asset": {}, "nodes": []}, source="model.glb")
    with pytest.raises(ValueError, match="humanBones\\) is empty"):
        bonemap.vrm_humanoid({"extensions": {"VRMC_vrm": {"humanoid": {"humanBones": {}}}}})
    gltf = vrm_gltf("0", {"hips": "Hips", "head": "Head"})
    gltf["extensions"]["VRM"]["humanoid"]["humanBones"][1]["node"] = 7
    with pytest.raises(ValueError, match="VRM bone 'head' names node 7, but the file has 3 nodes"):
        bonemap.vrm_humanoid(gltf)
    gltf = vrm_gltf("1", {"hips": "Hips", "head": "Head"})
    gltf["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"]["hips"]["node"] = 0
    with pytest.raises(ValueError, match="VRM bone 'hips' is node 0, which has no name"):
        bonemap.vrm_humanoid(gltf)
