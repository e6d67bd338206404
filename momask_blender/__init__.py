"""The Blender side of MoMask (never imports torch): panel, operators, worker client, keying.

Operators and the panel are registered here as they land (see the extension issue); until then the
extension registers nothing."""

_CLASSES = ()


def register():
    import bpy
    for cls in _CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    import bpy
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
