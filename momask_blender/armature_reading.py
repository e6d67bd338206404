"""An armature object as the solver sees it: bone names, parents, rest matrices, the object's placement and its
bone map, taken from the first of
1. the table stored on the armature (Armature.momask_mapping, shown and edited in the panel: mapping.py);
2. the VRM add-on's humanoid table, where that add-on is installed and the armature has one;
3. detection from the bone names, hierarchy and rest heads (core.bonemap).
A table is taken as it is (no detection mixed in), so an animator's edit is never second-guessed."""
import re

import numpy as np

from ._core import bonemap, skeleton, solver

STORED, VRM_ADDON = "the MoMask mapping table", "the VRM add-on's humanoid table"


def stored_table(armature) -> dict[str, str] | None:
    """SMPL joint -> bone name of the table stored on the armature data (rows with no bone left out), None if
    none is stored."""
    stored = getattr(armature, "momask_mapping", None)
    if stored is None or not len(stored.joints):
        return None
    rows = {row.name: row.bone for row in stored.joints}
    if len(stored.joints) != skeleton.NUM_JOINTS or set(rows) != set(skeleton.JOINT_NAMES):
        raise bonemap.UnmappableSkeletonError(
            f"{STORED} of '{armature.name}' is damaged ({len(stored.joints)} rows, expected one per joint: "
            f"{', '.join(skeleton.JOINT_NAMES)}): press Detect to rebuild it")
    return {joint: bone for joint, bone in rows.items() if bone}


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def vrm_addon_table(armature) -> dict[str, str] | None:
    """SMPL joint -> bone name from the VRM add-on's humanoid (Armature.vrm_addon_extension; duck-typed, since
    the add-on is optional): VRM 1.0 (vrm1.humanoid.human_bones.<snake_case bone>.node.bone_name) or 0.x
    (vrm0.humanoid.human_bones, items with .bone and .node.bone_name), the model's own version first. None
    when the armature has no VRM bone assigned."""
    extension = getattr(armature, "vrm_addon_extension", None)
    if extension is None:
        return None

    def vrm1():
        bones = extension.vrm1.humanoid.human_bones
        return {vrm: getattr(bones, _snake_case(vrm)).node.bone_name
                for vrm in (*bonemap.VRM_JOINTS, *bonemap.VRM_SPINE) if hasattr(bones, _snake_case(vrm))}

    def vrm0():
        return {item.bone: item.node.bone_name for item in extension.vrm0.humanoid.human_bones}

    readers = (vrm1, vrm0) if str(getattr(extension, "spec_version", "1.0")).startswith("1") else (vrm0, vrm1)
    for read in readers:
        try:
            table = bonemap.vrm_joint_table(read())
        except AttributeError:  # an add-on version laid out otherwise
            continue
        if table:
            return table
    return None


def read_rig(ob, table: dict[str, str] | None = None, stored: bool = True) -> solver.RigDescription:
    """core.solver's description of an armature object. Its bone map: `table` (SMPL joint -> bone name; joints
    left out are interpolated or unmapped) when given; else the stored table (unless stored=False); else the VRM
    add-on's; else detected. Raises core.bonemap.UnmappableSkeletonError (naming the joints it lacks, or the
    table's bones the armature no longer has) or ValueError."""
    if ob is None or ob.type != "ARMATURE":
        raise ValueError(f"'{ob.name}' is not an armature" if ob is not None else "no active object")
    bones = ob.data.bones
    names = [bone.name for bone in bones]
    index = {name: i for i, name in enumerate(names)}
    parents = [index[bone.parent.name] if bone.parent else -1 for bone in bones]
    rest = np.empty((len(bones), 4, 4), dtype=np.float32)
    bones.foreach_get("matrix_local", rest.ravel())
    rest = np.swapaxes(rest, 1, 2)  # foreach_get flattens Blender's matrices column by column
    world = np.array(ob.matrix_world)
    source = "the table"
    if table is None and stored:
        table, source = stored_table(ob.data), STORED
    if table is None:
        table, source = vrm_addon_table(ob.data), VRM_ADDON
    if table is None:
        return solver.describe_rig(names, parents, rest, world)
    stale = {joint: bone for joint, bone in table.items() if bone not in index}
    if stale:
        raise bonemap.UnmappableSkeletonError(
            f"{source} of '{ob.name}' maps " + ", ".join(f"{joint} to '{bone}'" for joint, bone in stale.items())
            + ", but the armature has no such bone" + (" (renamed or deleted?): fix those rows or press Detect"
                                                       if source == STORED else ""))
    return solver.describe_rig(names, parents, rest, world, preset=bonemap.TABLE, overrides=table)
