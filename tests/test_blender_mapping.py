"""The bone mapping table in bpy 5.0.1: detected, edited, saved in the .blend and read back, used by read_rig
(and so by every generation); a stored bone that no longer exists, a rig missing an arm, VRM 0.x and 1.0
humanoid tables from files and from the VRM add-on's data; the panel that shows it."""
import json
import re
import types

import pytest

from tests.support.blender import (RecordingLayout, addon_core, addon_module, bpy, extension, generate,  # noqa: F401
                                   scene, snapshot)

from core.bonemap import TABLE  # noqa: E402
from core.skeleton import JOINT_NAMES, PARENTS  # noqa: E402
from tests.support.files import VRM_BONES, glb, vrm_gltf  # noqa: E402

# Bone names a detector cannot read (b00 .. b21 in JOINT_NAMES order): the skeleton's shape maps them.
OPAQUE = [f"b{j:02d}" for j in range(len(JOINT_NAMES))]


def build_armature(names, name="Rig"):
    """An armature with the built-in rig's rest joints, bone j named names[j] (None: no such bone; its children
    hang from the nearest bone above), active and selected."""
    joints = addon_module("rig_builder").rest_joints()
    armature = bpy.data.armatures.new(name)
    ob = bpy.data.objects.new(name, armature)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.view_layer.objects.active = ob
    ob.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    edit = {}
    for j, bone_name in enumerate(names):
        if bone_name is None:
            continue
        bone = armature.edit_bones.new(bone_name)
        bone.head, bone.tail = joints[j], joints[j] + (0.0, 0.0, 0.05)
        parent = PARENTS[j]
        while parent >= 0 and names[parent] is None:
            parent = PARENTS[parent]
        bone.parent = edit.get(parent)
        edit[j] = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    return ob


def stored_rows(ob) -> dict[str, str]:
    return {row.name: row.bone for row in ob.data.momask_mapping.joints}


def read_rig(ob, **kwargs):
    return addon_module("armature_reading").read_rig(ob, **kwargs)


# ----------------------------------------------------------------------------------------- detect and edit
def test_detected_table_is_edited_saved_reloaded_and_used(scene, tmp_path):
    ob = build_armature(list(JOINT_NAMES))
    assert not len(ob.data.momask_mapping.joints)
    assert bpy.ops.momask.detect_mapping() == {"FINISHED"}
    assert stored_rows(ob) == {joint: joint for joint in JOINT_NAMES}
    assert ob.data.momask_mapping.source == "Detect: a MoMask (SMPL-X) rig"

    # the animator's edits: spine2 interpolated instead of its bone; the right hand on the forearm's bone
    rows = ob.data.momask_mapping.joints
    rows["spine2"].bone, rows["right_wrist"].bone = "", "right_elbow"
    rows["right_elbow"].bone = "right_shoulder"
    rows["right_shoulder"].bone = "right_collar"
    rows["right_collar"].bone = ""
    path = tmp_path / "edited.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_homefile(use_empty=True)
    assert "Rig" not in bpy.data.objects
    bpy.ops.wm.open_mainfile(filepath=str(path))

    ob = bpy.data.objects["Rig"]
    rig = read_rig(ob)
    bones = dict(zip(JOINT_NAMES, rig.bone_map.bones))
    assert rig.bone_map.preset == TABLE
    assert (bones["spine2"], bones["right_wrist"], bones["right_elbow"], bones["right_shoulder"]) == (
        None, "right_elbow", "right_shoulder", "right_collar")
    assert set(rig.bone_map.interpolated) == {"spine2", "right_collar"} and not rig.bone_map.unmapped
    assert bones["left_wrist"] == "left_wrist"  # untouched rows as detected
    detected = read_rig(ob, stored=False).bone_map
    assert detected.preset == "smplx" and detected.bones == tuple(JOINT_NAMES)

    assert bpy.ops.momask.clear_mapping() == {"FINISHED"}
    assert not len(ob.data.momask_mapping.joints) and read_rig(ob).bone_map.preset == "smplx"


def test_a_stored_bone_that_no_longer_exists_is_named(scene):
    ob = build_armature(list(JOINT_NAMES))
    bpy.ops.momask.detect_mapping()
    ob.data.bones["left_elbow"].name = "forearm.L"
    ob.data.bones["head"].name = "HeadBone"
    with pytest.raises(addon_core("bonemap").UnmappableSkeletonError,
                       match="the MoMask mapping table of 'Rig' maps head to 'head', left_elbow to 'left_elbow', "
                             "but the armature has no such bone.*press Detect"):
        read_rig(ob)
    before = snapshot()
    with pytest.raises(RuntimeError, match="'Rig' cannot be animated: .*maps head to 'head'"):
        generate(prompt="a person walks")
    assert snapshot() == before
    assert bpy.ops.momask.detect_mapping() == {"FINISHED"}  # detection finds the renamed bones by name and place
    assert stored_rows(ob)["left_elbow"] == "forearm.L" and stored_rows(ob)["head"] == "HeadBone"


def test_a_rig_missing_an_arm_lists_the_missing_joints(scene):
    names = [None if joint.startswith("left_") and joint[5:] in ("shoulder", "elbow", "wrist") else name
             for joint, name in zip(JOINT_NAMES, JOINT_NAMES)]
    ob = build_armature(names)
    missing = "no left arm: left_shoulder, left_elbow, left_wrist not found"
    before = snapshot()
    with pytest.raises(RuntimeError, match=f"cannot be mapped automatically: {missing}.* \\(map them by hand\\)\\. "
                                           "Map by Hand starts a table with the bones that were found"):
        bpy.ops.momask.detect_mapping()
    assert not len(ob.data.momask_mapping.joints) and ob.data.momask_mapping.source == ""  # no partial table
    assert snapshot() == before
    with pytest.raises(RuntimeError, match=f"'Rig' cannot be animated: {missing}"):
        generate(prompt="a person waves")
    layout = draw_mapping_panel()
    assert any(kw["text"].startswith(missing) for name, _, kw, _ in layout.calls if name == "label")
    assert "momask.map_by_hand" in layout.operators()

    assert bpy.ops.momask.map_by_hand() == {"FINISHED"}  # what was found, to complete by hand
    rows = stored_rows(ob)
    assert rows["left_elbow"] == "" and rows["right_elbow"] == "right_elbow" and rows["pelvis"] == "pelvis"
    assert "Table from Map by Hand: edit any row" in draw_mapping_panel().texts()


# ------------------------------------------------------------------------------------------------------ VRM
def test_vrm_files_map_a_rig_whose_names_say_nothing(scene, tmp_path):
    ob = build_armature(OPAQUE, name="Avatar")
    detected = read_rig(ob).bone_map  # detection reads it by the skeleton's shape alone
    assert detected.bones == tuple(OPAQUE) and set(detected.structural) == set(JOINT_NAMES)
    vrm0 = tmp_path / "avatar.vrm"
    vrm0.write_bytes(glb(vrm_gltf("0", dict(zip(VRM_BONES, OPAQUE)) | {"leftEye": "eye"})))
    assert bpy.ops.momask.load_vrm_mapping(filepath=str(vrm0)) == {"FINISHED"}
    assert stored_rows(ob) == dict(zip(JOINT_NAMES, OPAQUE))
    assert ob.data.momask_mapping.source == "the VRM file avatar.vrm"
    assert read_rig(ob).bone_map.bones == tuple(OPAQUE)

    # VRM 1.0 without upperChest (plain JSON .gltf): chest is spine3 (the collars' parent), spine2 interpolated
    bones = {vrm: bone for vrm, bone in zip(VRM_BONES, OPAQUE) if vrm != "chest"}
    bones["chest"] = bones.pop("upperChest")
    vrm1 = tmp_path / "avatar.gltf"
    vrm1.write_text(json.dumps(vrm_gltf("1", bones)))
    assert bpy.ops.momask.load_vrm_mapping(filepath=str(vrm1)) == {"FINISHED"}
    rig = read_rig(ob)
    assert rig.bone_map.bones == tuple(None if joint == "spine2" else bone for joint, bone in zip(JOINT_NAMES, OPAQUE))
    assert rig.bone_map.interpolated == {"spine2": "0.5 spine1 + 0.5 spine3"}


def test_a_vrm_file_that_does_not_fit_changes_nothing(scene, tmp_path):
    ob = build_armature(OPAQUE, name="Avatar")
    wrong = tmp_path / "other.vrm"
    wrong.write_bytes(glb(vrm_gltf("0", dict(zip(VRM_BONES, OPAQUE)) | {"head": "Head"})))
    with pytest.raises(RuntimeError, match="maps head to 'Head', but the armature has no such bone"):
        bpy.ops.momask.load_vrm_mapping(filepath=str(wrong))
    armless = tmp_path / "armless.vrm"
    armless.write_bytes(glb(vrm_gltf("1", {v: b for v, b in zip(VRM_BONES, OPAQUE) if "Arm" not in v})))
    with pytest.raises(RuntimeError, match="left arm incomplete: left_shoulder, left_elbow not found"):
        bpy.ops.momask.load_vrm_mapping(filepath=str(armless))
    plain = tmp_path / "plain.glb"
    plain.write_bytes(glb({"asset": {"version": "2.0"}, "nodes": [{"name": "Hips"}]}))
    with pytest.raises(RuntimeError, match="plain.glb: no VRM humanoid table"):
        bpy.ops.momask.load_vrm_mapping(filepath=str(plain))
    assert not len(ob.data.momask_mapping.joints)


def vrm_addon_data(version: str, bones: dict[str, str]):
    """Armature data as the VRM add-on lays it out (Armature.vrm_addon_extension) with `bones` (VRM bone ->
    Blender bone) assigned in the given version: vrm1 has an attribute per bone in snake case, vrm0 a list."""
    def node(name):
        return types.SimpleNamespace(node=types.SimpleNamespace(bone_name=name))

    def humanoid(human_bones):
        return types.SimpleNamespace(humanoid=types.SimpleNamespace(human_bones=human_bones))

    vrm1 = {vrm: bones.get(vrm, "") if version == "1" else "" for vrm in VRM_BONES}
    vrm0 = bones if version == "0" else {}
    extension = types.SimpleNamespace(
        spec_version=f"{version}.0",
        vrm1=humanoid(types.SimpleNamespace(**{re.sub("([A-Z])", r"_\1", vrm).lower(): node(bone)
                                               for vrm, bone in vrm1.items()})),
        vrm0=humanoid([types.SimpleNamespace(bone=vrm, **vars(node(bone))) for vrm, bone in vrm0.items()]))
    return types.SimpleNamespace(name="Avatar", vrm_addon_extension=extension)


@pytest.mark.parametrize("version", ["0", "1"])
def test_vrm_addon_humanoid_is_read_when_present(extension, version):
    vrm_addon_table = addon_module("armature_reading").vrm_addon_table
    assert vrm_addon_table(types.SimpleNamespace(name="Plain")) is None
    assert vrm_addon_table(vrm_addon_data(version, {})) is None
    assert vrm_addon_table(vrm_addon_data(version, dict(zip(VRM_BONES, OPAQUE)))) == dict(zip(JOINT_NAMES, OPAQUE))


# -------------------------------------------------------------------------------------------------- the panel
def draw_mapping_panel():
    layout = RecordingLayout()
    bpy.types.MOMASK_PT_mapping.draw(types.SimpleNamespace(layout=layout), bpy.context)
    return layout


def test_panel_shows_the_table_and_what_is_interpolated_or_unmapped(scene):
    names = [None if joint in ("spine2", "left_foot", "right_foot") else joint for joint in JOINT_NAMES]
    ob = build_armature(names)
    assert bpy.types.MOMASK_PT_mapping.bl_parent_id == "MOMASK_PT_main"
    assert bpy.types.MOMASK_PT_mapping.poll(bpy.context)
    layout = draw_mapping_panel()
    assert {"momask.detect_mapping", "momask.load_vrm_mapping"} <= layout.operators().keys()
    assert not [call for call in layout.calls if call[0] == "template_list"]
    texts = layout.texts()
    assert "detected at each generation" in texts and "Follow their neighbours: Spine (middle)" in texts
    assert "Not animated (no bone): Left Toes, Right Toes" in texts

    bpy.ops.momask.detect_mapping()
    layout = draw_mapping_panel()
    (args,) = [args for name, args, *_ in layout.calls if name == "template_list"]
    assert args[2:] == (ob.data.momask_mapping, "joints", ob.data.momask_mapping, "active")
    assert "momask.clear_mapping" in layout.operators()
    assert "Table from Detect: bone names and hierarchy: edit any row" in layout.texts()
    row = RecordingLayout()
    bpy.types.MOMASK_UL_mapping.draw_item(None, bpy.context, row, None, ob.data.momask_mapping.joints["neck"],
                                          0, None, "")
    assert [(name, args[:4]) for name, args, *_ in row.calls if name == "prop_search"] == [
        ("prop_search", (ob.data.momask_mapping.joints["neck"], "bone", ob.data, "bones"))]


# A Daz-named rig: the upper arms ('lShldr') are no word detection knows, so the skeleton's shape finds them.
DAZ = ["hip", "lThigh", "rThigh", "abdomen", "lShin", "rShin", None, "lFoot", "rFoot", "chest", None, None, "neck",
       "lCollar", "rCollar", "head", "lShldr", "rShldr", "lForeArm", "rForeArm", "lHand", "rHand"]


def test_rows_found_by_shape_are_marked_until_edited(scene):
    ob = build_armature(DAZ)
    texts = draw_mapping_panel().texts()
    assert "Found by the skeleton's shape, not their names: Left Upper Arm, Right Upper Arm" in texts
    assert bpy.ops.momask.detect_mapping() == {"FINISHED"}
    rows = ob.data.momask_mapping.joints
    assert stored_rows(ob)["left_shoulder"] == "lShldr"
    assert {row.name for row in rows if row.by_shape} == {"left_shoulder", "right_shoulder"}

    def marks(joint):
        layout = RecordingLayout()
        bpy.types.MOMASK_UL_mapping.draw_item(None, bpy.context, layout, None, rows[joint], 0, None, "")
        return [kwargs["icon"] for name, _, kwargs, _ in layout.calls if name == "label" and kwargs.get("icon")]

    shape = addon_module("mapping").SHAPE_ICON
    assert marks("left_shoulder") == [shape] and marks("left_elbow") == []
    rows["left_shoulder"].bone = "lCollar"  # the animator's row wins, unmarked; the table is used as it is
    rows["left_collar"].bone = ""
    assert not rows["left_shoulder"].by_shape and marks("left_shoulder") == []
    bones = dict(zip(JOINT_NAMES, read_rig(ob).bone_map.bones))
    assert bones["left_shoulder"] == "lCollar" and read_rig(ob).bone_map.structural == ()
    assert "Found by the skeleton's shape" not in draw_mapping_panel().texts()
