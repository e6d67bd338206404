"""Generated joints -> keys on an armature: resampled to the scene's frame rate, solved into bone rotations (feet
planted if asked), written as a new action in its own slot with `foreach_set` (every frame keyed, linear between
frames).

Keys go into the channel each bone animates in its rotation mode, so rigs posed in Euler or axis-angle keep
working (the conversion runs through mathutils per frame; quaternion rigs such as the built-in one skip it)."""
import dataclasses

import bpy
import numpy as np
from bpy_extras import anim_utils
from mathutils import Quaternion

from ._core import footlock, solver, timebase

_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def contacts_at_fps(contacts: np.ndarray, fps: float) -> np.ndarray:
    """(T, 4) foot contacts at timebase.FPS -> (N, 4) bool at fps, as the joints are resampled."""
    return timebase.resample(contacts, fps) > 0.5


def _keyed_bones(rig: solver.RigDescription) -> list[int]:
    """The bones the solver poses: the mapped ones and every bone above them (at rest when unmapped)."""
    mapped = set(rig.bone_of.values())
    return sorted(mapped.union(*(rig.ancestors[b] for b in mapped)))


def _rotation_channels(quaternions: np.ndarray, mode: str) -> tuple[str, np.ndarray]:
    """(data path, (T, C) values) of (T, 4) quaternions in a pose bone's rotation mode."""
    if mode == "QUATERNION":
        return "rotation_quaternion", quaternions
    rotations = [Quaternion(q) for q in quaternions]
    if mode == "AXIS_ANGLE":
        return "rotation_axis_angle", np.array([(angle, *axis) for axis, angle in
                                                (q.to_axis_angle() for q in rotations)])
    eulers = [rotations[0].to_euler(mode)]
    for q in rotations[1:]:
        eulers.append(q.to_euler(mode, eulers[-1]))  # compatible with the previous frame: no flips
    return "rotation_euler", np.array(eulers)


def _key(channelbag, data_path: str, group: str, co: np.ndarray, interpolation: np.ndarray,
         values: np.ndarray) -> None:
    """One curve per column of (T, C) values; co: (T, 2) float32 [frame, value] scratch, frames filled in."""
    for index in range(values.shape[1]):
        curve = channelbag.fcurves.new(data_path, index=index, group_name=group)
        points = curve.keyframe_points
        points.add(len(co))
        co[:, 1] = values[:, index]
        points.foreach_set("co", co.ravel())
        points.foreach_set("interpolation", interpolation)
        curve.update()


def solve_at_fps(rig: solver.RigDescription, joints: np.ndarray, fps: float, options: solver.SolveOptions,
                 foot_lock: bool = False, contacts: np.ndarray | None = None) -> solver.RigPose:
    """The rig's pose for every frame at fps of (T, 22, 3) HumanML3D joints at timebase.FPS. The motion is placed
    by its own frames (interpolated ones are a little shorter in the limbs and would shrink the scale).
    foot_lock plants the feet (core.footlock.solve_locked) during the (T, 4) contacts the model gave, re-checked
    on the rig (None: detected there)."""
    joints = np.asarray(joints, dtype=np.float64)
    if options.placement is None:
        options = dataclasses.replace(options, placement=solver.default_placement(rig, joints))
    if not foot_lock:
        return solver.solve(rig, timebase.resample(joints, fps), options)
    if contacts is not None:
        footlock.checked_contacts(contacts, len(joints))
        contacts = contacts_at_fps(contacts, fps)
    return footlock.solve_locked(rig, timebase.resample(joints, fps), contacts, fps, options)[0]


def new_action(ob, name: str):
    """(action, its slot for `ob`, the slot's channelbag): a new empty action to key `ob` with."""
    action = bpy.data.actions.new(name)
    slot = action.slots.new(id_type="OBJECT", name=ob.name)
    return action, slot, anim_utils.action_ensure_channelbag_for_slot(action, slot)


def write_pose(ob, rig: solver.RigDescription, pose: solver.RigPose, name: str,
               start_frame: int) -> bpy.types.Action:
    """A new action with one slot for `ob` keying a solved pose frame by frame from start_frame (nothing is
    assigned)."""
    action, _, channelbag = new_action(ob, name)
    co = np.zeros((len(pose.rotations), 2), dtype=np.float32)
    co[:, 0] = start_frame + np.arange(len(co))
    interpolation = np.full(len(co), _LINEAR, dtype=np.int32)
    located = set(pose.located)
    for bone in _keyed_bones(rig):
        bone_name = rig.names[bone]
        prefix = f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"].'
        path, values = _rotation_channels(pose.rotations[:, bone], ob.pose.bones[bone_name].rotation_mode)
        _key(channelbag, prefix + path, bone_name, co, interpolation, values)
        if bone_name in located:
            _key(channelbag, prefix + "location", bone_name, co, interpolation, pose.locations[:, bone])
    return action


def assign_action(ob, action: bpy.types.Action) -> None:
    """Animate `ob` with `action`: through the slot Blender picks for it (the one it used before), else the
    action's first slot."""
    animation = ob.animation_data or ob.animation_data_create()
    animation.action = action
    if animation.action_slot is None and len(action.slots):
        animation.action_slot = action.slots[0]
