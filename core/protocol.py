"""The worker protocol: one JSON object per line over the worker's stdin (requests) and stdout (events).

Shared by the worker (core/worker.py) and Blender's client (momask_blender/worker_client.py), so it needs
numpy and the standard library only. Arrays travel as {"dtype", "shape", "b64"} objects holding the raw
little-endian bytes: exact, and a quarter of the size of the same numbers written as JSON text.

Requests: {"id": int, "type": one of REQUEST_TYPES, ...parameters}. `cancel` carries the id of the job it
stops; `shutdown` cancels any job and ends the worker. Neither gets an event of its own: a stopped job ends
with a "cancelled" event.
Events: {"id": int | None, "event": ..., ...}: "ready" once at start-up (id None), then per job
any number of "progress" and exactly one of "result", "error" or "cancelled".
"""
import base64
import json
import os

import numpy as np

PROTOCOL_VERSION = 1
JOB_TYPES = ("load", "generate", "inpaint", "inbetween", "sequence")  # one at a time, may stream progress
REQUEST_TYPES = JOB_TYPES + ("ping", "cancel", "shutdown")  # ping, cancel, shutdown act at once, even when busy
# "error" events carry a `kind`: busy (a job is running: nothing was done), bad-request (fix the request),
# model (the model directory or its text encoder cannot be loaded), internal (a bug or a resource problem;
# the traceback is on the worker's stderr).

# Wire dtypes: every float travels as float32 (what the models compute in); bools and integers keep their kind.
WIRE_DTYPES = {"float32": np.dtype("<f4"), "int64": np.dtype("<i8"), "bool": np.dtype("bool")}
ARRAY_KEYS = frozenset(("dtype", "shape", "b64"))


# Precisions of the transformers' CPU matrix products (core.models.MoMaskModels.set_precision). "auto":
# bfloat16 where the CPU computes it natively (sampling ~1.7x faster), float32 elsewhere and on GPUs.
PRECISIONS = ("auto", "float32", "bfloat16")


def default_threads() -> int:
    """The worker's torch threads: all cores but one, which stays with Blender's own thread pool."""
    return max(1, (os.cpu_count() or 2) - 1)


def encode_array(array) -> dict:
    """An array as a JSON object: float -> float32, bool -> bool, integer -> int64 (little-endian bytes)."""
    array = np.asarray(array)
    if array.dtype == bool:
        name = "bool"
    elif np.issubdtype(array.dtype, np.integer):
        name = "int64"
    elif np.issubdtype(array.dtype, np.floating):
        name = "float32"
    else:
        raise TypeError(f"protocol: cannot send an array of dtype {array.dtype}; expected float, int or bool")
    data = np.ascontiguousarray(array, dtype=WIRE_DTYPES[name]).tobytes()
    return {"dtype": name, "shape": list(array.shape), "b64": base64.b64encode(data).decode("ascii")}


def decode_array(obj: dict) -> np.ndarray:
    """The array `encode_array` made (a fresh writable array in native byte order)."""
    dtype, shape = WIRE_DTYPES.get(obj.get("dtype")), obj.get("shape")
    if dtype is None:
        raise ValueError(f"protocol: array dtype {obj.get('dtype')!r} is not one of {', '.join(WIRE_DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"protocol: array shape must be a list of sizes >= 0, got {shape!r}")
    try:
        data = base64.b64decode(obj["b64"], validate=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"protocol: array data is not valid base64 ({err})") from None
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"protocol: array of shape {shape} and dtype {obj['dtype']} needs {expected} bytes, "
                         f"got {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _to_json(value):
    """json.dumps' fallback: arrays are encoded, numpy scalars become Python numbers."""
    if isinstance(value, np.ndarray):
        return encode_array(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"protocol: cannot send a {type(value).__name__}")


def _from_json(obj: dict):
    return decode_array(obj) if obj.keys() == ARRAY_KEYS else obj


def dumps(message: dict) -> str:
    """One protocol line (no newline inside, ASCII only); numpy arrays anywhere in `message` are encoded."""
    return json.dumps(message, default=_to_json, separators=(",", ":"))


def loads(line: str | bytes) -> dict:
    """The message of one protocol line, its arrays decoded. ValueError if it is not a JSON object."""
    message = json.loads(line, object_hook=_from_json)
    if not isinstance(message, dict):
        raise ValueError(f"protocol: expected a JSON object, got {type(message).__name__}")
    return message
