"""An armature's animation as the 22 joints the models edit, and the space they edit them in.

Blender evaluates every frame asked for (actions, NLA strips, constraints, drivers: what the viewport shows),
and the pose bones' heads go through the rig's bone map. Heads are taken in the armature's own space and placed
with the rig's fixed world matrix, so solving the edited joints with `motion_placement` as the placement puts
the bones back exactly where they were sampled, whatever the object itself does over time."""
import numpy as np

from ._core import skeleton, solver


def motion_placement(rig: solver.RigDescription) -> np.ndarray:
    """(4, 4) similarity from the models' space (metres, y up, HumanML3D's body size) to the rig's world: scaled
    by the rig's leg length, so a giant or a centimetre rig is edited as a human-sized body."""
    return solver.default_placement(rig, skeleton.rest_positions(skeleton.TARGET_OFFSETS)[None])


def to_motion_space(joints: np.ndarray, placement: np.ndarray) -> np.ndarray:
    """(..., 22, 3) world-space joints -> the models' space, the inverse of `placement`."""
    return (joints - placement[:3, 3]) @ np.linalg.inv(placement[:3, :3]).T


def evaluated_joints(scene, ob, rig: solver.RigDescription, frames) -> np.ndarray:
    """(F, 22, 3) world-space joints of armature `ob` as Blender evaluates it at each of `frames`, through the
    bone map of `rig` (read_rig's, or a description of some of its bones: a Rigify rig's proxy reads the ORG
    bones, which carry the deforming skeleton whether the limbs follow IK or FK); the scene goes back to its own
    frame afterwards."""
    frames = list(frames)
    bones = ob.pose.bones
    index = [bones.find(name) for name in rig.names]
    heads = np.empty((len(frames), len(bones), 3), dtype=np.float32)
    current, subframe = scene.frame_current, scene.frame_subframe
    try:
        for i, frame in enumerate(frames):
            scene.frame_set(frame)
            bones.foreach_get("head", heads[i].ravel())
    finally:
        scene.frame_set(current, subframe=subframe)
    world = rig.world_matrix
    return rig.bone_map.weights @ (heads[:, index] @ world[:3, :3].T + world[:3, 3])
