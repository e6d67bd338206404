"""Put new keys into a frame range of an existing action, leaving every key outside the range as it was.

An animator's keys outside an edited range must stay bit for bit: position, both handles, handle types,
interpolation, easing, key type, selection. Blender recalculates automatic handles next to changed keys, so the
range is replaced by rewriting each curve's keys from arrays (foreach_set: fast, exact) and putting the handles
of the kept keys back after the update that gives the new keys theirs. Curves the new keys do not touch (fingers,
face, custom properties) are left alone entirely, and new rotation keys take the representation of the keys next
to them (quaternion sign, Euler turns), so Blender never interpolates the long way round across a seam."""
import math

import numpy as np

# Keyframe properties as foreach_get reads them: name -> (values per key, dtype)
_PROPERTIES = {"co": (2, np.float32), "handle_left": (2, np.float32), "handle_right": (2, np.float32),
               "interpolation": (1, np.int32), "handle_left_type": (1, np.int32), "handle_right_type": (1, np.int32),
               "easing": (1, np.int32), "type": (1, np.int32), "back": (1, np.float32), "amplitude": (1, np.float32),
               "period": (1, np.float32), "select_control_point": (1, bool), "select_left_handle": (1, bool),
               "select_right_handle": (1, bool)}
_HANDLES = ("handle_left", "handle_right")


def _read(points, names=_PROPERTIES) -> dict[str, np.ndarray]:
    keys = {}
    for name in names:
        width, dtype = _PROPERTIES[name]
        keys[name] = np.empty((len(points), width), dtype=dtype)
        points.foreach_get(name, keys[name].ravel())
    return keys


def _write(points, keys: dict[str, np.ndarray]) -> None:
    for name, values in keys.items():
        points.foreach_set(name, values.ravel())


def keys_in_range(curve, start: float, end: float) -> dict[str, np.ndarray]:
    """Position and interpolation of the curve's keys in [start, end]: {"co": (n, 2), "interpolation": (n, 1)}."""
    keys = _read(curve.keyframe_points, ("co", "interpolation"))
    inside = (keys["co"][:, 0] >= start) & (keys["co"][:, 0] <= end)
    return {name: values[inside] for name, values in keys.items()}


def replace_range(curve, start: float, end: float, new: dict[str, np.ndarray]) -> None:
    """The curve's keys in [start, end] -> the keys `new` (as keys_in_range gives them, frames inside the range
    and ascending; their other properties Blender's defaults). Every other key keeps all its properties."""
    points = curve.keyframe_points
    old = _read(points)
    frames = old["co"][:, 0]
    before, after = np.flatnonzero(frames < start), np.flatnonzero(frames > end)
    inside = slice(len(before), len(before) + len(new["co"]))
    points.clear()
    points.add(len(before) + len(new["co"]) + len(after))
    keys = _read(points)  # Blender's defaults for new keys
    kept = np.r_[np.arange(len(before)), np.arange(inside.stop, len(keys["co"]))]
    for name in keys:
        keys[name][kept] = old[name][np.r_[before, after]]
    for name, values in new.items():
        keys[name][inside] = values
    _write(points, keys)
    curve.update()  # sorted already; gives the new keys their handles and recalculates the kept ones' ...
    handles = _read(points, _HANDLES)
    for name in _HANDLES:  # ... which are put back
        handles[name][kept] = old[name][np.r_[before, after]]
    _write(points, handles)


def _new_curve(channelbag, owner, data_path: str, index: int, group: str, start: float, end: float):
    """A curve for a property the action did not animate, keyed with its current value just outside the range:
    the timeline outside the range plays as before."""
    value = owner.path_resolve(data_path)
    value = value[index] if hasattr(value, "__len__") else value
    curve = channelbag.fcurves.new(data_path, index=index, group_name=group)
    curve.keyframe_points.add(2)
    curve.keyframe_points.foreach_set("co", [start - 1, value, end + 1, value])
    curve.update()
    return curve


def _joined(data_path: str, values: np.ndarray, at_anchor: np.ndarray, side: int) -> np.ndarray:
    """(C, n) new values of one rotation, made to join the animation's value at the anchor (C,) next to them
    (side 0: before the range, -1: after), so that Blender does not interpolate the long way round: a quaternion
    takes the anchor's sign, an Euler angle its number of turns, an axis-angle both."""
    def turns(rows):
        return 2 * math.pi * np.round((at_anchor[rows] - values[rows, side]) / (2 * math.pi))[:, None]

    if data_path.endswith("rotation_quaternion"):
        return -values if values[:, side] @ at_anchor < 0 else values
    if data_path.endswith("rotation_euler"):
        return values + turns(slice(None))
    if data_path.endswith("rotation_axis_angle"):  # (angle, axis): (-angle, -axis) is the same rotation
        values = -values if values[1:, side] @ at_anchor[1:] < 0 else values
        return values + np.r_[turns(slice(0, 1)), np.zeros((3, 1))]
    return values


def splice(target, source, start: int, end: int, owner) -> None:
    """Put the keys that channelbag `source` has in frames [start, end] into the same curves of channelbag
    `target` (a curve it lacks is added, see _new_curve), replacing target's keys in that range. `owner` is the
    animated data-block (the armature object)."""
    paths = {}
    for curve in source.fcurves:
        paths.setdefault(curve.data_path, []).append(curve)
    for data_path, curves in paths.items():
        new = [keys_in_range(curve, start, end) for curve in curves]
        targets = []
        for c in curves:
            curve = target.fcurves.find(data_path, index=c.array_index)
            targets.append(curve if curve is not None else _new_curve(
                target, owner, data_path, c.array_index, c.group.name if c.group else "", start, end))
        frames = _read(targets[0].keyframe_points, ("co",))["co"][:, 0]
        anchor, side = (start - 1, 0) if (frames < start).any() else (end + 1, -1) if (frames > end).any() else (
            None, 0)
        if anchor is not None:
            at_anchor = np.array([t.evaluate(anchor) for t in targets])
            values = _joined(data_path, np.stack([keys["co"][:, 1] for keys in new]), at_anchor, side)
            for keys, row in zip(new, values):
                keys["co"][:, 1] = row
        for curve, keys in zip(targets, new):
            replace_range(curve, start, end, keys)
