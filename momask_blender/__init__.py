"""The Blender side of MoMask (never imports torch): panel, operators, preferences, worker client, keying.

register() adds the classes and the properties they keep: Scene.momask (the panel's request),
Scene.momask_timeline (the timeline section's request and prompt timeline),
Object.momask_candidates and momask_candidate_index (an armature's generated actions, the index switching
between them), Armature.momask_mapping (the stored bone mapping table), WindowManager.momask_progress and
momask_status (a running generation)."""
import bpy

from . import installer, jobs, mapping, operators, panel, preferences, timeline

_CLASSES = (preferences.CLASSES + installer.CLASSES + operators.CLASSES + panel.CLASSES + mapping.CLASSES
            + timeline.CLASSES)


def _properties():
    return {
        bpy.types.Scene: {"momask": bpy.props.PointerProperty(type=panel.MOMASK_PG_settings),
                          "momask_timeline": bpy.props.PointerProperty(type=timeline.MOMASK_PG_timeline)},
        bpy.types.Object: {
            "momask_candidates": bpy.props.CollectionProperty(type=panel.MOMASK_PG_candidate),
            "momask_candidate_index": bpy.props.IntProperty(name="Candidate", update=jobs.switch_candidate,
                                                            description="The candidate animating the armature"),
        },
        bpy.types.Armature: {"momask_mapping": bpy.props.PointerProperty(type=mapping.MOMASK_PG_mapping)},
        bpy.types.WindowManager: {
            "momask_progress": bpy.props.FloatProperty(subtype="FACTOR", min=0.0, max=1.0),
            "momask_status": bpy.props.StringProperty(),
        },
    }


def register():
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    for owner, properties in _properties().items():
        for name, prop in properties.items():
            setattr(owner, name, prop)


def unregister():
    jobs.shutdown()
    if installer.running() is not None:
        installer.running().cancel()
    for owner, properties in _properties().items():
        for name in properties:
            delattr(owner, name)
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
