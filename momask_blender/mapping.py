"""The bone mapping table: which bone of the active armature stands for each of the 22 SMPL joints, stored on
the armature data (Armature.momask_mapping, so it is saved with the .blend and shared by linked duplicates) and
edited row by row in the panel.

Detection is right for most rigs but not all (a 3ds Max export whose 'LeftShoulder' is the upper arm, a twist
bone taken for a forearm), so the animator sees the map, fixes a row, and every later generation uses the
stored table as it is (armature_reading.read_rig). Detect fills the table from automatic detection (the VRM
add-on's humanoid table where there is one; rows found by the skeleton's shape rather than their names are
marked, until edited) and changes nothing when it cannot map the rig; Map by Hand then
starts a table with the bones it found; Load VRM takes the humanoid table of a .vrm/.glb file; Clear goes back
to detecting at each generation."""
from pathlib import Path

import bpy
from bpy_extras.io_utils import ImportHelper

from ._core import bonemap, skeleton
from .armature_reading import read_rig
from .operators import armature_poll
from .rigify import control_rig

# The 22 joints as an animator names the bones that carry them.
JOINT_LABELS = {"pelvis": "Hips", "spine1": "Spine (lower)", "spine2": "Spine (middle)", "spine3": "Chest",
                "neck": "Neck", "head": "Head"} | {
    f"{side}_{joint}": f"{side.capitalize()} {label}" for side in ("left", "right") for joint, label in (
        ("collar", "Clavicle"), ("shoulder", "Upper Arm"), ("elbow", "Forearm"), ("wrist", "Hand"),
        ("hip", "Thigh"), ("knee", "Shin"), ("ankle", "Foot"), ("foot", "Toes"))}
# The mark of bones found by the skeleton's shape (core.bonemap's structural matcher), not by their names.
SHAPE_ICON = "OUTLINER_DATA_ARMATURE"
# Rigs that detection recognises by their bone names (core.bonemap.PRESETS), as their makers call them.
RIG_NAMES = {"mixamo": "Mixamo", "smpl22_template": "SMPL (BVH)", "cmu": "CMU motion capture",
             "bandai": "Bandai-Namco motion capture", "ue5": "Unreal Engine 5", "ue4": "Unreal Engine 4",
             "smplx": "MoMask (SMPL-X)", "smpl_fbx": "SMPL (FBX)", "rigify": "Rigify", "rigify_def": "Rigify",
             "rigify_org": "Rigify", "metarig": "Rigify metarig"}


def joint_labels(joints) -> str:
    return ", ".join(JOINT_LABELS.get(joint, joint) for joint in joints)


def detected_as(bone_map: bonemap.BoneMap) -> str:
    """How detection found the bones, in words."""
    if bone_map.preset == bonemap.GENERIC:
        return "bone names and hierarchy"
    return f"a {RIG_NAMES.get(bone_map.preset, bone_map.preset)} rig"


def _bone_edited(row, context) -> None:
    """A row the animator sets is theirs: no longer marked as found by shape."""
    row.by_shape = False


class MOMASK_PG_joint_bone(bpy.types.PropertyGroup):
    """One row: `name` is the SMPL joint, `bone` the armature's bone (empty: interpolated or unmapped), `by_shape`
    whether Detect found that bone by the skeleton's shape rather than its name (worth a look)."""
    bone: bpy.props.StringProperty(name="Bone", description="The armature's bone for this joint (empty: "
                                   "interpolated from its neighbours where possible, else not keyed)",
                                   update=_bone_edited)
    by_shape: bpy.props.BoolProperty(name="Found by Shape", description="Detect found this bone by where it sits "
                                     "in the skeleton, not by its name")


class MOMASK_PG_mapping(bpy.types.PropertyGroup):
    joints: bpy.props.CollectionProperty(type=MOMASK_PG_joint_bone)
    active: bpy.props.IntProperty(name="Joint")
    source: bpy.props.StringProperty(name="Source", description="Where the stored table came from")


def store(armature, table: dict[str, str], source: str, by_shape=()) -> None:
    """Write one row per SMPL joint (bone names from `table`, joints it lacks empty; the joints in `by_shape`
    marked as found by the skeleton's shape) onto the armature data."""
    stored = armature.momask_mapping
    stored.joints.clear()
    for joint in skeleton.JOINT_NAMES:
        row = stored.joints.add()
        row.name, row.bone = joint, table.get(joint, "")
        row.by_shape = joint in by_shape
    stored.source = source


def map_summary(bone_map: bonemap.BoneMap, source: str) -> list[tuple[str, str]]:
    """(icon, text) lines: where the bones come from (`source`), the interpolated and the unmapped joints."""
    lines = [("CHECKMARK", f"Bones from {source}")]
    if bone_map.structural:
        lines.append((SHAPE_ICON, "Found by the skeleton's shape, not their names: "
                      + joint_labels(bone_map.structural)))
    if bone_map.interpolated:
        lines.append(("INFO", "Follow their neighbours: " + joint_labels(bone_map.interpolated)))
    if bone_map.unmapped:
        lines.append(("INFO", "Not animated (no bone): " + joint_labels(bone_map.unmapped)))
    return lines


def mapping_status(ob) -> list[tuple[str, str]]:
    """(icon, text) lines on the map a generation would use now, or why there is none."""
    try:
        rig = read_rig(ob)
    except ValueError as err:
        return [("ERROR", part) for part in str(err).split("; ")]
    if rig.bone_map.preset != bonemap.TABLE:
        source = "detection: " + detected_as(rig.bone_map)
    else:
        source = "the table above" if len(ob.data.momask_mapping.joints) else "the VRM add-on's humanoid"
    lines = map_summary(rig.bone_map, source)
    if control_rig(ob, rig) is not None:
        lines.append(("CON_ARMATURE", "Rigify: keys its FK controls (arms and legs switched to FK)"))
    return lines


class MOMASK_OT_detect_mapping(bpy.types.Operator):
    """Fill the bone table from the armature's bone names and hierarchy (or the VRM add-on's humanoid)"""
    bl_idname = "momask.detect_mapping"
    bl_label = "Detect"
    bl_options = {"REGISTER", "UNDO"}
    poll = classmethod(armature_poll)

    def execute(self, context):
        ob = context.active_object
        try:
            bone_map = read_rig(ob, stored=False).bone_map
        except bonemap.UnmappableSkeletonError as err:
            self.report({"ERROR"}, f"'{ob.name}' cannot be mapped automatically: {err}. Map by Hand starts a table "
                                   "with the bones that were found")
            return {"CANCELLED"}
        except ValueError as err:
            self.report({"ERROR"}, f"'{ob.name}': {err}")
            return {"CANCELLED"}
        source = "the VRM add-on" if bone_map.preset == bonemap.TABLE else "Detect: " + detected_as(bone_map)
        store(ob.data, {j: b for j, b in zip(skeleton.JOINT_NAMES, bone_map.bones) if b}, source,
              bone_map.structural)
        self.report({"INFO"}, f"'{ob.name}': " + "; ".join(text for _, text in map_summary(bone_map, source)))
        return {"FINISHED"}


class MOMASK_OT_map_by_hand(bpy.types.Operator):
    """Start a bone table to complete by hand: the bones detection finds, the other rows empty"""
    bl_idname = "momask.map_by_hand"
    bl_label = "Map by Hand"
    bl_options = {"REGISTER", "UNDO"}
    poll = classmethod(armature_poll)

    def execute(self, context):
        ob = context.active_object
        try:
            bone_map = read_rig(ob, stored=False).bone_map
            table = {joint: bone for joint, bone in zip(skeleton.JOINT_NAMES, bone_map.bones) if bone}
            by_shape = bone_map.structural
        except bonemap.UnmappableSkeletonError as err:
            table, by_shape = err.partial, ()
        except ValueError as err:
            self.report({"ERROR"}, f"'{ob.name}': {err}")
            return {"CANCELLED"}
        store(ob.data, table, "Map by Hand", by_shape)
        return {"FINISHED"}


class MOMASK_OT_load_vrm_mapping(bpy.types.Operator, ImportHelper):
    """Fill the bone table from a VRM model's humanoid (.vrm, .glb or .gltf) whose bones are this armature's"""
    bl_idname = "momask.load_vrm_mapping"
    bl_label = "Load VRM"
    bl_options = {"REGISTER", "UNDO"}
    filter_glob: bpy.props.StringProperty(default="*.vrm;*.glb;*.gltf", options={"HIDDEN"})
    poll = classmethod(armature_poll)

    def execute(self, context):
        ob = context.active_object
        try:
            table = bonemap.vrm_humanoid(bonemap.read_gltf_json(self.filepath), source=self.filepath)
            read_rig(ob, table=table)  # every bone there, every joint MoMask needs: else nothing changes
        except (OSError, ValueError) as err:
            self.report({"ERROR"}, f"{Path(self.filepath).name}: {err}")
            return {"CANCELLED"}
        store(ob.data, table, f"the VRM file {Path(self.filepath).name}")
        self.report({"INFO"}, f"'{ob.name}' mapped by the humanoid table of {Path(self.filepath).name}")
        return {"FINISHED"}


class MOMASK_OT_clear_mapping(bpy.types.Operator):
    """Remove the stored mapping table: the map is detected again at each generation"""
    bl_idname = "momask.clear_mapping"
    bl_label = "Clear Mapping"
    bl_options = {"REGISTER", "UNDO"}
    poll = classmethod(armature_poll)

    def execute(self, context):
        stored = context.active_object.data.momask_mapping
        stored.joints.clear()
        stored.source = ""
        return {"FINISHED"}


class MOMASK_UL_mapping(bpy.types.UIList):
    """Joint | bone (searchable among the armature's bones), marked where Detect found it by shape."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        split = layout.split(factor=0.4)
        split.label(text=JOINT_LABELS.get(item.name, item.name))
        row = split.row(align=True)
        row.prop_search(item, "bone", item.id_data, "bones", text="", icon="BONE_DATA")
        if item.by_shape:
            row.label(text="", icon=SHAPE_ICON)


class MOMASK_PT_mapping(bpy.types.Panel):
    bl_label = "Bone Mapping"
    bl_idname = "MOMASK_PT_mapping"
    bl_parent_id = "MOMASK_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MoMask"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type == "ARMATURE"

    def draw(self, context):
        layout = self.layout
        ob = context.active_object
        stored = ob.data.momask_mapping
        row = layout.row(align=True)
        row.operator(MOMASK_OT_detect_mapping.bl_idname, icon="VIEWZOOM")
        row.operator(MOMASK_OT_load_vrm_mapping.bl_idname, icon="FILE")
        if len(stored.joints):
            row.operator(MOMASK_OT_clear_mapping.bl_idname, text="", icon="X")
            layout.label(text=f"Table from {stored.source}: edit any row")
            layout.template_list(MOMASK_UL_mapping.__name__, "", stored, "joints", stored, "active",
                                 rows=len(stored.joints))
        else:
            layout.operator(MOMASK_OT_map_by_hand.bl_idname, icon="GREASEPENCIL")
            layout.label(text="Bones are detected at each generation: Detect shows them")
        for icon, text in mapping_status(ob):
            layout.label(text=text, icon=icon)


CLASSES = (MOMASK_PG_joint_bone, MOMASK_PG_mapping, MOMASK_OT_detect_mapping, MOMASK_OT_map_by_hand,
           MOMASK_OT_load_vrm_mapping, MOMASK_OT_clear_mapping, MOMASK_UL_mapping, MOMASK_PT_mapping)
