"""An armature object as the solver sees it: bone names, parents, rest matrices and the object's placement."""
import numpy as np

from ._core import solver


def read_rig(ob) -> solver.RigDescription:
    """core.solver's description of an armature object, its bone map detected from the bone names and rest
    heads. Raises core.bonemap.UnmappableSkeletonError (naming the joints it lacks) or ValueError."""
    if ob is None or ob.type != "ARMATURE":
        raise ValueError(f"'{ob.name}' is not an armature" if ob is not None else "no active object")
    bones = ob.data.bones
    names = [bone.name for bone in bones]
    index = {name: i for i, name in enumerate(names)}
    parents = [index[bone.parent.name] if bone.parent else -1 for bone in bones]
    rest = np.empty((len(bones), 4, 4), dtype=np.float32)
    bones.foreach_get("matrix_local", rest.ravel())
    # foreach_get flattens Blender's matrices column by column
    return solver.describe_rig(names, parents, np.swapaxes(rest, 1, 2), np.array(ob.matrix_world))
