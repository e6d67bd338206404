"""Timeline editing on the active armature, as operators (also the Python API) and a panel under MoMask's:

`bpy.ops.momask.regenerate_range(prompt="...", frame_start=..., frame_end=..., ranges="", in_place=False,
seed=0, guidance=4.0, steps=10, foot_lock=True)` regenerates frames frame_start..frame_end (inclusive) and every
further range written in `ranges` ("50-70, 90-99"); `bpy.ops.momask.fill_gap(prompt="", frame_start=...,
frame_end=...)` fills the gap between two clips (its first and last frame); `bpy.ops.momask.generate_sequence(
seed=0, ...)` keys the scene's prompt timeline (Scene.momask_timeline.segments) as one action. A range left out
(frame_start and frame_end not given) is the scene's preview range when one is set. All three plant the feet
of what they make unless foot_lock=False. Like generate, they run modally under INVOKE and block under EXEC, and
change nothing when the request is refused.

The panel draws each button with the options it uses beside it: the range tools' (Scene.momask_timeline.edit)
and the prompt timeline's (.sequence) are their own, never the main section's taken silently. While a
generation runs the buttons stay, greyed out, and say why."""
import bpy

from . import jobs, timeline_jobs
from ._core import limits, timebase
from .operators import GenerateProperties, WorkerJobOperator

# generate's properties, declared once there; taken by name rather than inherited (Blender lists a base class'
# properties first), so each operator's redo panel keeps its own order
_SHARED = GenerateProperties.__annotations__


class MOMASK_PG_segment(bpy.types.PropertyGroup):
    prompt: bpy.props.StringProperty(name="Prompt", description="What the character does in this segment")
    seconds: bpy.props.FloatProperty(name="Duration", default=3.0, min=0.0,
                                     soft_min=limits.MIN_FRAMES / timebase.FPS, soft_max=20.0, step=10,
                                     unit="TIME_ABSOLUTE",
                                     description="How long this segment lasts, in seconds")


class MOMASK_PG_edit_options(bpy.types.PropertyGroup):
    """Seed, guidance, steps and feet of Regenerate Range and Fill Gap."""
    seed: _SHARED["seed"]
    guidance: _SHARED["guidance"]
    steps: _SHARED["steps"]
    foot_lock: _SHARED["foot_lock"]


class MOMASK_PG_sequence_options(bpy.types.PropertyGroup):
    """Generate Sequence's options."""
    start_frame: _SHARED["start_frame"]
    in_place: _SHARED["in_place"]
    seed: _SHARED["seed"]
    guidance: _SHARED["guidance"]
    steps: _SHARED["steps"]
    foot_lock: _SHARED["foot_lock"]


OVERWRITE = bpy.props.BoolProperty(name="Overwrite Action", default=False,
                                   description="Change the action itself; off: a copy becomes a new candidate")


class MOMASK_PG_timeline(bpy.types.PropertyGroup):
    """The timeline section's request (Scene.momask_timeline)."""
    prompt: bpy.props.StringProperty(name="Prompt", description="What the character does in the range or gap "
                                                                "(empty: whatever fits)")
    frame_start: bpy.props.IntProperty(name="First Frame", default=1, description="First frame of the range")
    frame_end: bpy.props.IntProperty(name="Last Frame", default=48, description="Last frame of the range (included)")
    ranges: bpy.props.StringProperty(name="More Ranges", description="Further ranges to regenerate in the same "
                                                                     "request, as in '50-70, 90-99'")
    in_place: OVERWRITE
    edit: bpy.props.PointerProperty(type=MOMASK_PG_edit_options)
    segments: bpy.props.CollectionProperty(type=MOMASK_PG_segment)
    segment_index: bpy.props.IntProperty(name="Segment")
    sequence: bpy.props.PointerProperty(type=MOMASK_PG_sequence_options)


class EditProperties:
    """Shared by regenerate_range and fill_gap."""
    prompt: bpy.props.StringProperty(name="Prompt", description="What the character does (empty: whatever fits)")
    frame_start: bpy.props.IntProperty(name="First Frame", description="First frame (default: the preview range's)")
    frame_end: bpy.props.IntProperty(name="Last Frame",
                                     description="Last frame, included (default: the preview range's)")
    in_place: OVERWRITE
    seed: _SHARED["seed"]
    guidance: _SHARED["guidance"]
    steps: _SHARED["steps"]
    foot_lock: _SHARED["foot_lock"]


def _frames(op, context) -> tuple[int, int]:
    """The operator's first and last frame, else the scene's preview range."""
    if op.properties.is_property_set("frame_start") or op.properties.is_property_set("frame_end"):
        return op.frame_start, op.frame_end
    scene = context.scene
    if not scene.use_preview_range:
        raise jobs.GenerationError("Give the first and last frame (or set a preview range in the timeline)")
    return scene.frame_preview_start, scene.frame_preview_end


def _edit_settings(op, ranges) -> timeline_jobs.EditSettings:
    return timeline_jobs.EditSettings(op.prompt, ranges, op.in_place, op.seed, op.guidance, op.steps, op.foot_lock)


class MOMASK_OT_regenerate_range(EditProperties, WorkerJobOperator, bpy.types.Operator):
    """Re-make frames of the armature's animation from the prompt; keys outside them stay (Esc cancels)"""
    bl_idname = "momask.regenerate_range"
    bl_label = "Regenerate Range"
    bl_options = {"REGISTER", "UNDO"}

    ranges: bpy.props.StringProperty(name="More Ranges", description="Further ranges, as in '50-70, 90-99'")

    def make_job(self, context):
        ranges = [_frames(self, context)] + timeline_jobs.parse_ranges(self.ranges)
        return timeline_jobs.RangeRegeneration(context, _edit_settings(self, ranges))


class MOMASK_OT_fill_gap(EditProperties, WorkerJobOperator, bpy.types.Operator):
    """Fill the gap between two clips (keys or NLA strips) from the pose before to the pose after (Esc cancels)"""
    bl_idname = "momask.fill_gap"
    bl_label = "Fill Gap"
    bl_options = {"REGISTER", "UNDO"}

    def make_job(self, context):
        return timeline_jobs.GapFill(context, _edit_settings(self, [_frames(self, context)]))


class MOMASK_OT_generate_sequence(WorkerJobOperator, bpy.types.Operator):
    """Key the prompt timeline's segments as one continuous action, a marker at each segment (Esc cancels)"""
    bl_idname = "momask.generate_sequence"
    bl_label = "Generate Sequence"
    bl_options = {"REGISTER", "UNDO"}

    seed: _SHARED["seed"]
    guidance: _SHARED["guidance"]
    steps: _SHARED["steps"]
    start_frame: _SHARED["start_frame"]
    in_place: _SHARED["in_place"]
    foot_lock: _SHARED["foot_lock"]

    def make_job(self, context):
        start = self.start_frame if self.properties.is_property_set("start_frame") else context.scene.frame_current
        segments = [(s.prompt, s.seconds) for s in context.scene.momask_timeline.segments]
        return timeline_jobs.PromptSequence(context, timeline_jobs.SequenceSettings(
            segments, self.seed, self.guidance, self.steps, start, self.in_place, self.foot_lock))


class MOMASK_OT_segment_add(bpy.types.Operator):
    """Add a segment at the end of the prompt timeline"""
    bl_idname = "momask.segment_add"
    bl_label = "Add Segment"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        timeline = context.scene.momask_timeline
        timeline.segments.add()
        timeline.segment_index = len(timeline.segments) - 1
        return {"FINISHED"}


class MOMASK_OT_segment_remove(bpy.types.Operator):
    """Remove the selected segment from the prompt timeline"""
    bl_idname = "momask.segment_remove"
    bl_label = "Remove Segment"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        timeline = context.scene.momask_timeline
        if not 0 <= timeline.segment_index < len(timeline.segments):
            self.report({"ERROR"}, "No segment selected")
            return {"CANCELLED"}
        timeline.segments.remove(timeline.segment_index)
        timeline.segment_index = max(0, min(timeline.segment_index, len(timeline.segments) - 1))
        return {"FINISHED"}


class MOMASK_OT_segment_move(bpy.types.Operator):
    """Move the selected segment earlier or later in the prompt timeline"""
    bl_idname = "momask.segment_move"
    bl_label = "Move Segment"
    bl_options = {"REGISTER", "UNDO"}

    direction: bpy.props.EnumProperty(name="Direction", description="Where the selected segment moves",
                                      items=[("UP", "Earlier", "One place up: played before the segment above"),
                                             ("DOWN", "Later", "One place down: played after the segment below")])

    def execute(self, context):
        timeline = context.scene.momask_timeline
        index = timeline.segment_index
        other = index - 1 if self.direction == "UP" else index + 1
        if not (0 <= index < len(timeline.segments) and 0 <= other < len(timeline.segments)):
            return {"CANCELLED"}
        timeline.segments.move(index, other)
        timeline.segment_index = other
        return {"FINISHED"}


class MOMASK_OT_range_from_preview(bpy.types.Operator):
    """Take the timeline's preview range as the range to edit"""
    bl_idname = "momask.range_from_preview"
    bl_label = "From Preview Range"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        scene = context.scene
        scene.momask_timeline.frame_start, scene.momask_timeline.frame_end = (scene.frame_preview_start,
                                                                              scene.frame_preview_end)
        return {"FINISHED"}


class MOMASK_UL_segments(bpy.types.UIList):
    """The prompt timeline: one row per segment, played from top to bottom."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "prompt", text="", emboss=False, icon="TEXT")
        row.prop(item, "seconds", text="")


class MOMASK_PT_timeline(bpy.types.Panel):
    bl_label = "Timeline Editing"
    bl_idname = "MOMASK_PT_timeline"
    bl_parent_id = "MOMASK_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MoMask"

    def draw(self, context):
        layout = self.layout
        timeline = context.scene.momask_timeline

        box = layout.box()
        box.label(text="Regenerate a Range or Fill a Gap")
        box.prop(timeline, "prompt", text="")
        row = box.row(align=True)
        row.prop(timeline, "frame_start", text="First")
        row.prop(timeline, "frame_end", text="Last")
        if context.scene.use_preview_range:
            row.operator(MOMASK_OT_range_from_preview.bl_idname, text="", icon="PREVIEW_RANGE")
        box.prop(timeline, "ranges")
        box.prop(timeline, "in_place")
        _draw_options(box, timeline.edit)
        row = box.row(align=True)
        for op_class, extra in ((MOMASK_OT_regenerate_range, {"ranges": timeline.ranges}), (MOMASK_OT_fill_gap, {})):
            _set(row.operator(op_class.bl_idname), timeline.edit, prompt=timeline.prompt,
                 frame_start=timeline.frame_start, frame_end=timeline.frame_end, in_place=timeline.in_place, **extra)

        box = layout.box()
        box.label(text="Prompt Timeline")
        row = box.row()
        row.template_list(MOMASK_UL_segments.__name__, "", timeline, "segments", timeline, "segment_index", rows=3)
        buttons = row.column(align=True)
        buttons.operator(MOMASK_OT_segment_add.bl_idname, text="", icon="ADD")
        buttons.operator(MOMASK_OT_segment_remove.bl_idname, text="", icon="REMOVE")
        buttons.operator(MOMASK_OT_segment_move.bl_idname, text="", icon="TRIA_UP").direction = "UP"
        buttons.operator(MOMASK_OT_segment_move.bl_idname, text="", icon="TRIA_DOWN").direction = "DOWN"
        sequence = timeline.sequence
        row = box.row()
        row.prop(sequence, "start_frame")
        row.prop(sequence, "in_place")
        _draw_options(box, sequence)
        _set(box.operator(MOMASK_OT_generate_sequence.bl_idname, icon="SEQUENCE"), sequence,
             start_frame=sequence.start_frame, in_place=sequence.in_place)


def _draw_options(layout, options):
    """Seed, guidance, steps and Lock Feet of one group of buttons, drawn with them."""
    row = layout.row(align=True)
    row.prop(options, "seed")
    row.prop(options, "steps")
    row = layout.row()
    row.prop(options, "guidance")
    row.prop(options, "foot_lock")


def _set(op, options, **values):
    """Give a button the seed, guidance, steps and Lock Feet of `options` and the other `values`."""
    for name in ("seed", "guidance", "steps", "foot_lock"):
        setattr(op, name, getattr(options, name))
    for name, value in values.items():
        setattr(op, name, value)


CLASSES = (MOMASK_PG_segment, MOMASK_PG_edit_options, MOMASK_PG_sequence_options, MOMASK_PG_timeline,
           MOMASK_OT_regenerate_range, MOMASK_OT_fill_gap, MOMASK_OT_generate_sequence, MOMASK_OT_segment_add,
           MOMASK_OT_segment_remove, MOMASK_OT_segment_move, MOMASK_OT_range_from_preview, MOMASK_UL_segments,
           MOMASK_PT_timeline)
