"""The operators, which are also the Python API:
`bpy.ops.momask.add_rig()` and `bpy.ops.momask.generate(prompt=..., seconds=4.0, seed=0, candidates=1,
guidance=4.0, steps=10, start_frame=..., in_place=False, foot_lock=True, travel_on='PELVIS')` on the active
armature.

generate (and the timeline operators of timeline.py: WorkerJobOperator) runs modally under INVOKE (the panel's
button: progress in the panel and the status bar, Esc cancels, the UI keeps running) and blocks under EXEC
(scripts, background Blender). Numbers are checked with a message rather than clamped, so a script asking for
20 s hears why it cannot have them. Without an armature to animate, or while a generation runs, their buttons
are greyed out and the tooltip says why (armature_poll)."""
import dataclasses
import random

import bpy

from . import jobs
from ._core import limits, timebase
from .rig_builder import build_rig

TIMER_SECONDS = 0.1


class GenerateProperties:
    """The request, shared by the operator and the panel's settings (Scene.momask); the timeline operators
    (timeline.py) take seed, guidance, steps, start_frame, in_place and foot_lock from here."""
    prompt: bpy.props.StringProperty(name="Prompt", description="What the character does, in words")
    seconds: bpy.props.FloatProperty(
        name="Duration", default=4.0, soft_min=0.0, soft_max=limits.MAX_FRAMES / timebase.FPS, step=10,
        unit="TIME_ABSOLUTE",
        description="Length of the motion in seconds (0: the model chooses)")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0, description="Same seed, same motion")
    candidates: bpy.props.IntProperty(name="Candidates", default=1, soft_min=1, soft_max=8,
                                      description="Motions to generate; each becomes its own action")
    guidance: bpy.props.FloatProperty(name="Guidance", default=4.0, soft_min=0.0, soft_max=10.0,
                                      description="How closely the motion follows the prompt: higher follows it "
                                                  "more literally, lower varies more")
    steps: bpy.props.IntProperty(name="Steps", default=10, soft_min=1, soft_max=50,
                                 description="Refinement passes: more are slower and give finer detail")
    start_frame: bpy.props.IntProperty(name="Start Frame", default=1, description="Frame where the motion starts")
    in_place: bpy.props.BoolProperty(name="In Place", default=False,
                                     description="No travel over the ground (turns are kept); off: the character "
                                                 "moves as the motion goes")
    foot_lock: bpy.props.BoolProperty(name="Lock Feet", default=True,
                                      description="Keep feet planted while they stand (the model's contacts, "
                                                  "re-checked on the rig) and above the floor; off: feet as generated")
    travel_on: bpy.props.EnumProperty(
        name="Travel On", default="PELVIS", description="The bone that carries the horizontal motion",
        items=(("PELVIS", "Pelvis", "The pelvis moves over the ground"),
               ("ROOT", "Root Bone", "The bone above the pelvis (a game rig's root) moves over the ground; the "
                                     "pelvis keeps the height and sway")))


class MOMASK_OT_add_rig(bpy.types.Operator):
    """Add a clean 22-bone armature with SMPL proportions at the 3D cursor, ready for generated motion"""
    bl_idname = "momask.add_rig"
    bl_label = "Add MoMask Rig"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        if context.mode != "OBJECT":
            self.report({"ERROR"}, "Switch to object mode to add the MoMask rig")
            return {"CANCELLED"}
        build_rig(context)
        return {"FINISHED"}


class MOMASK_OT_new_seed(bpy.types.Operator):
    """Draw a new random seed for the next generation"""
    bl_idname = "momask.new_seed"
    bl_label = "New Seed"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        context.scene.momask.seed = random.randrange(2 ** 31)
        return {"FINISHED"}


def armature_poll(cls, context) -> bool:
    """Whether an operator that animates the active armature can run; if not, the reason becomes the greyed-out
    button's tooltip."""
    problem = jobs.armature_problem(context.active_object)
    if problem is not None:
        cls.poll_message_set(problem)
    return problem is None


def _settings(op, context) -> jobs.Settings:
    values = {field.name: getattr(op, field.name) for field in dataclasses.fields(jobs.Settings)}
    if not op.properties.is_property_set("start_frame"):
        values["start_frame"] = context.scene.frame_current
    return jobs.Settings(**values)


def show_progress(context, progress: float, status: str) -> None:
    """Progress for the panel's bar and the status bar; an empty status ends the display."""
    wm = context.window_manager
    wm.momask_progress, wm.momask_status = progress, status
    if context.workspace is not None:
        context.workspace.status_text_set(f"MoMask: {status} (Esc to cancel)" if status else None)
    for area in context.screen.areas if context.screen is not None else ():
        if area.type == "VIEW_3D":
            area.tag_redraw()


def modal_step(op, context) -> set[str]:
    """One timer tick of a modal worker job: show progress; key the result once the job ended."""
    generation = op._generation
    ended = generation.poll()
    job = generation.job
    if not ended:
        show_progress(context, job.progress, job.status)
        return {"RUNNING_MODAL"}
    if op._timer is not None:
        context.window_manager.event_timer_remove(op._timer)
        op._timer = None
    show_progress(context, 0.0, "")
    try:
        actions = generation.finish(context)
    except jobs.GenerationError as err:
        op.report({"WARNING"} if job.cancelled else {"ERROR"}, str(err))
        return {"CANCELLED"}
    op.report({"INFO"}, generation.summary(actions))
    return {"FINISHED"}


class WorkerJobOperator:
    """An operator around the jobs.WorkerJob that make_job(context) returns: it blocks under EXEC and runs
    modally under INVOKE (progress, Esc cancels); bad input is reported before anything changed."""

    @classmethod
    def poll(cls, context):
        if context.window_manager.momask_status:
            cls.poll_message_set("Wait for the running generation to finish, or press Esc to cancel it")
            return False
        return armature_poll(cls, context)

    def make_job(self, context) -> jobs.WorkerJob:
        raise NotImplementedError

    def execute(self, context):
        try:
            generation = self.make_job(context).start()
            generation.wait()
            actions = generation.finish(context)
        except jobs.GenerationError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, generation.summary(actions))
        return {"FINISHED"}

    def invoke(self, context, event):
        try:
            self._generation = self.make_job(context).start()
        except jobs.GenerationError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        show_progress(context, 0.0, "starting")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._generation.cancel()  # the job ends with a "cancelled" event a step later
            show_progress(context, context.window_manager.momask_progress, "cancelling")
            return {"RUNNING_MODAL"}
        if event.type == "TIMER":
            return modal_step(self, context)
        return {"PASS_THROUGH"}


class MOMASK_OT_generate(GenerateProperties, WorkerJobOperator, bpy.types.Operator):
    """Generate motion from the prompt onto the active armature, each candidate as its own action (Esc cancels)"""
    bl_idname = "momask.generate"
    bl_label = "Generate Motion"
    bl_options = {"REGISTER", "UNDO"}

    def make_job(self, context):
        return jobs.Generation(context, _settings(self, context))


CLASSES = (MOMASK_OT_add_rig, MOMASK_OT_new_seed, MOMASK_OT_generate)
