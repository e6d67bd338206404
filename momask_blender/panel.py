"""The MoMask tab of the 3D viewport's sidebar: the request, the Generate button (a progress bar while a
generation runs), and the armature's candidate list, which switches it between the generated actions. Without a
worker it says so and opens the preferences, where Install Worker is; while that runs its progress shows here."""
import dataclasses

import bpy

from . import installer, jobs, preferences
from .operators import GenerateProperties, MOMASK_OT_add_rig, MOMASK_OT_generate, MOMASK_OT_new_seed


class MOMASK_PG_settings(GenerateProperties, bpy.types.PropertyGroup):
    """The panel's request (Scene.momask); the Generate button passes it to the operator. `understood`: what the
    last generation understood its prompt as (shown under the prompt)."""
    understood: bpy.props.StringProperty(name="Understood as")
    understood_far: bpy.props.BoolProperty()


class MOMASK_PG_candidate(bpy.types.PropertyGroup):
    action: bpy.props.PointerProperty(type=bpy.types.Action, name="Action")


class MOMASK_UL_candidates(bpy.types.UIList):
    """An armature's generated actions and the action it had before; the highlighted one animates it."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        if item.action is None:
            layout.label(text="(deleted action)", icon="ERROR")
        else:
            layout.label(text=item.action.name, icon="ACTION")


class MOMASK_PT_main(bpy.types.Panel):
    bl_label = "MoMask"
    bl_idname = "MOMASK_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MoMask"

    def draw(self, context):
        layout = self.layout
        prefs = preferences.get(context)
        installation = installer.running()
        if installation is not None:
            layout.progress(factor=installation.progress, text=f"Installing the worker: {installation.status}")
        else:
            try:
                preferences.worker_command(prefs)
            except preferences.WorkerUnavailable:
                box = layout.box()
                box.label(text="MoMask needs its worker", icon="ERROR")
                box.label(text="PyTorch, installed once")
                box.operator("preferences.addon_show", text="Install Worker...",
                             icon="PREFERENCES").module = preferences.ADDON_ID
        ob = context.active_object
        target = layout.row()
        if ob is not None and ob.type == "ARMATURE":
            target.label(text=f"Target: {ob.name}", icon="ARMATURE_DATA")
        else:
            target.label(text="Select an armature", icon="INFO")
        layout.operator(MOMASK_OT_add_rig.bl_idname, icon="OUTLINER_OB_ARMATURE")
        layout.prop(prefs, "model")

        settings = context.scene.momask
        prompt = layout.column()
        prompt.prop(settings, "prompt", text="")
        if settings.understood:
            line = prompt.row()
            line.alert = settings.understood_far
            line.label(text=settings.understood, icon="ERROR" if settings.understood_far else "INFO")
        column = layout.column()
        column.prop(settings, "seconds", text="Duration (0: auto)")
        row = column.row(align=True)
        row.prop(settings, "seed")
        row.operator(MOMASK_OT_new_seed.bl_idname, text="", icon="FILE_REFRESH")
        column.prop(settings, "candidates")
        column.prop(settings, "guidance")
        column.prop(settings, "steps")
        column.prop(settings, "start_frame")
        column.prop(settings, "in_place")
        column.prop(settings, "foot_lock")
        column.prop(settings, "travel_on")

        wm = context.window_manager
        if wm.momask_status:
            layout.progress(factor=wm.momask_progress, text=wm.momask_status)
            layout.label(text="Esc cancels")
        else:
            op = layout.operator(MOMASK_OT_generate.bl_idname, icon="PLAY")
            for field in dataclasses.fields(jobs.Settings):
                setattr(op, field.name, getattr(settings, field.name))

        if ob is not None and len(ob.momask_candidates):
            layout.label(text="Candidates")
            layout.template_list(MOMASK_UL_candidates.__name__, "", ob, "momask_candidates", ob,
                                 "momask_candidate_index", rows=3)


CLASSES = (MOMASK_PG_settings, MOMASK_PG_candidate, MOMASK_UL_candidates, MOMASK_PT_main)
