"""Generated Rigify rigs: the motion keyed on the FK controls an animator works with, the rig's own constraints
kept.

A generated rig's controls hang from mechanism bones that its constraints move (the hips pivot at the torso's
middle, the neck and head copy the torso's rotation, the legs hang from ORG-spine), so rotations solved on the
plain hierarchy land elsewhere once the constraints run. Instead the motion is solved on a proxy armature: the
ORG bones' rest geometry (the deforming skeleton's) in the SMPL hierarchy, with a child per FK control at the
control's rest place. Each control copies its proxy child (world-space Copy Transforms), and Blender's visual
bake (bpy_extras.anim_utils.bake_action, what bpy.ops.nla.bake runs, with visual keying and constraints kept)
keys the controls from what the rig evaluates. Arms and legs are switched to FK (IK_FK = 1, keyed) for the
range. The proxy and the constraints added are removed afterwards, and the pose the bake leaves on the controls
and switches is put back (a channel the animation does not drive keeps its value). The metarig and a
DEF-bones-only export have no mechanism: the bone map's metarig and rigify_def presets key them directly, like
any rig; `keyer` picks the way for any armature."""
from dataclasses import dataclass

import bpy
from bpy_extras import anim_utils
from mathutils import Matrix

from . import keying
from ._core import bonemap, skeleton, solver

CONTROLS, ORG = bonemap.PRESETS["rigify"], bonemap.PRESETS["rigify_org"]
# Controls following a joint besides that joint's own control: the pelvis' FK bone, which Rigify hangs below
# spine_fk.001 (the hip chain runs down from the torso's pivot) while 'torso' carries the whole body.
_EXTRA_FOLLOWERS = {"spine_fk": "pelvis"}
# The rig's master control: above the pelvis in the proxy, so it can carry the horizontal travel
# (SolveOptions.horizontal_on="root"); otherwise it is keyed at rest, as a plain rig's root bone is.
ROOT = "root"
# The torso's pivot controls, between 'torso' and the FK spine: keyed at rest, so the FK spine's keys mean the
# same whatever pose these had before.
HELD_AT_REST = ("hips", "chest")
FK_SWITCHES = tuple(f"{limb}_parent.{side}" for limb in ("thigh", "upper_arm") for side in "LR")
IK_FK, FK = "IK_FK", 1.0
PROXY = "MoMask proxy"  # the proxy object, armature and constraints
_CHANNELS = ("location", "rotation_quaternion", "rotation_euler", "rotation_axis_angle", "scale")
_BAKE = anim_utils.BakeOptions(only_selected=True, do_pose=True, do_object=False, do_visual_keying=True,
                               do_constraint_clear=False, do_parents_clear=False, do_clean=False, do_location=True,
                               do_rotation=True, do_scale=False, do_bbone=False, do_custom_props=False)


@dataclass(frozen=True, eq=False)
class ControlRig:
    """How a generated Rigify rig is keyed: solve on `proxy` (root, the ORG joint bones, then one follower per
    control, named as the control), then bake."""
    proxy: solver.RigDescription
    followers: tuple[str, ...]  # the controls, each copying the proxy bone of its name (root: the proxy's own)
    switches: tuple[str, ...]  # the rig's IK/FK switch bones

    def bake(self, context, ob, poses: list[solver.RigPose], names: list[str], start_frame: int,
             switch_frames=()) -> list:
        """One new action per pose keying the controls from start_frame (frame per pose frame) and the IK/FK
        switches to FK at switch_frames (default: the first and last frame; a range spliced out of the action
        needs its own ends); nothing assigned, the rig's constraints, selection, pose and action as they were."""
        proxy_ob = _build_proxy(context, ob, self.proxy)
        bones = ob.pose.bones
        selected = {bone.name for bone in bones if bone.select}
        keyed = [*self.followers, *(name for name in HELD_AT_REST if name in bones)]
        pose_before = {name: [tuple(getattr(bones[name], channel)) for channel in _CHANNELS] for name in keyed}
        switches_before = {name: bones[name].get(IK_FK) for name in self.switches}
        animation = ob.animation_data_create()
        previous = animation.action, animation.action_slot, animation.action_blend_type  # the bake sets REPLACE
        added = []
        try:
            for name in self.followers:
                constraint = bones[name].constraints.new("COPY_TRANSFORMS")
                constraint.name, constraint.target, constraint.subtarget = PROXY, proxy_ob, name
                added.append((bones[name], constraint))
            for bone in bones:
                bone.select = bone.name in keyed
            return [self._bake_pose(ob, proxy_ob, pose, name, start_frame, switch_frames)
                    for pose, name in zip(poses, names)]
        finally:
            for bone, constraint in added:
                bone.constraints.remove(constraint)
            for bone in bones:
                bone.select = bone.name in selected
            for name, values in pose_before.items():
                for channel, value in zip(_CHANNELS, values):
                    setattr(bones[name], channel, value)
            for name, value in switches_before.items():
                if value is not None:
                    bones[name][IK_FK] = value
            animation.action, animation.action_blend_type = previous[0], previous[2]
            if previous[0] is not None:
                animation.action_slot = previous[1]
            armature = proxy_ob.data
            bpy.data.objects.remove(proxy_ob)
            bpy.data.armatures.remove(armature)

    def _bake_pose(self, ob, proxy_ob, pose: solver.RigPose, name: str, start_frame: int, switch_frames):
        proxy_action = keying.write_pose(proxy_ob, self.proxy, pose, name + " (proxy)", start_frame)
        keying.assign_action(proxy_ob, proxy_action)
        action, slot, channelbag = keying.new_action(ob, name)
        frames = range(start_frame, start_frame + len(pose.rotations))
        ends = sorted(set(switch_frames) or {frames[0], frames[-1]})
        for switch in self.switches:  # FK for the keyed range
            curve = channelbag.fcurves.new(f'pose.bones["{switch}"]["{IK_FK}"]', group_name=switch)
            curve.keyframe_points.add(len(ends))
            curve.keyframe_points.foreach_set("co", [value for frame in ends for value in (frame, FK)])
            curve.update()
        ob.animation_data.action, ob.animation_data.action_slot = action, slot
        for held in HELD_AT_REST:
            if held in ob.pose.bones:
                ob.pose.bones[held].matrix_basis = Matrix.Identity(4)
        try:
            anim_utils.bake_action(ob, action=action, frames=frames, bake_options=_BAKE)
        finally:
            bpy.data.actions.remove(proxy_action)
        return action


@dataclass(frozen=True, eq=False)
class Keyer:
    """How solved poses go onto an armature: solved on `solved` (the rig itself, or a generated Rigify rig's
    proxy) and written as new actions by key()."""
    rig: solver.RigDescription
    control: ControlRig | None

    @property
    def solved(self) -> solver.RigDescription:
        return self.control.proxy if self.control is not None else self.rig

    def key(self, context, ob, poses: list[solver.RigPose], names: list[str], start_frame: int,
            switch_frames=()) -> list:
        """One new action per pose from start_frame (nothing assigned): baked onto a control rig's controls
        (switch_frames: see ControlRig.bake), else keying the solved bones directly."""
        if self.control is not None:
            return self.control.bake(context, ob, poses, names, start_frame, switch_frames)
        return [keying.write_pose(ob, self.rig, pose, name, start_frame) for pose, name in zip(poses, names)]


def keyer(ob, rig: solver.RigDescription) -> Keyer:
    """The way poses go onto armature `ob` (read_rig gave `rig`): through control_rig where it is one."""
    return Keyer(rig, control_rig(ob, rig))


def control_rig(ob, rig: solver.RigDescription) -> ControlRig | None:
    """The proxy set-up when `rig` (read_rig of the armature object `ob`) maps the FK controls of a generated
    Rigify rig and the rig has their ORG bones; None for any other rig, which is keyed directly."""
    mapped = {joint: bone for joint, bone in zip(skeleton.JOINT_NAMES, rig.bone_map.bones) if bone is not None}
    if not mapped or any(CONTROLS[j] != bone or ORG[j] not in rig.names for j, bone in mapped.items()):
        return None
    joints = list(mapped)  # SMPL order: parents first
    root = [ROOT] if ROOT in rig.names else []
    names = root + [ORG[j] for j in joints]
    parents = [-1] * len(root)
    for joint in joints:
        parent = skeleton.PARENTS[skeleton.JOINT_INDEX[joint]]
        while parent >= 0 and skeleton.JOINT_NAMES[parent] not in mapped:
            parent = skeleton.PARENTS[parent]
        parents.append(names.index(ORG[skeleton.JOINT_NAMES[parent]]) if parent >= 0 else len(root) - 1)
    followers = {mapped[j]: ORG[j] for j in joints} | {
        control: ORG[j] for control, j in _EXTRA_FOLLOWERS.items() if j in mapped and control in rig.names}
    names += list(followers)
    parents += [names.index(org) for org in followers.values()]
    index = [rig.names.index(name) for name in names]
    proxy = solver.describe_rig(names, parents, rig.rest_matrices[index], rig.world_matrix, preset=bonemap.TABLE,
                                overrides={j: ORG[j] for j in joints})
    return ControlRig(proxy, tuple(root) + tuple(followers), tuple(s for s in FK_SWITCHES if s in ob.pose.bones))


def _build_proxy(context, ob, proxy: solver.RigDescription):
    """The proxy armature object at the rig's place (bones as long as the rig's of their names), linked to the
    scene (the rig's constraints need it evaluated). Made in edit mode: the active object and mode are restored."""
    armature = bpy.data.armatures.new(PROXY)
    proxy_ob = bpy.data.objects.new(PROXY, armature)
    context.scene.collection.objects.link(proxy_ob)
    proxy_ob.matrix_world = Matrix(proxy.world_matrix)
    view_layer = context.view_layer
    active = view_layer.objects.active
    mode = active.mode if active is not None else "OBJECT"
    if mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = proxy_ob
    bpy.ops.object.mode_set(mode="EDIT")
    edit = []
    for name, parent, rest in zip(proxy.names, proxy.parents, proxy.rest_matrices):
        bone = armature.edit_bones.new(name)
        bone.head, bone.tail = (0.0, 0.0, 0.0), (0.0, ob.data.bones[name].length, 0.0)
        bone.matrix = Matrix(rest)
        bone.parent = edit[parent] if parent >= 0 else None
        edit.append(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = active
    if mode != "OBJECT":
        bpy.ops.object.mode_set(mode=mode)
    return proxy_ob
