"""The worker protocol: one JSON object per line over the worker's stdin (requests) and stdout (events).

Shared by the worker (core/worker.py) and Blender's client (momask_blender/worker_client.py), so it needs
numpy and the standard library only. Arrays travel as {"dtype", "shape", "b64"} objects holding the raw
little-endian bytes: exact, and a quarter of the size of the same numbers written as JSON text.

Requests: {"id": int, "type": one of REQUEST_TYPES, ...parameters}. A job's parameters are declared here
(JOBS), not read off the functions that serve them, so that renaming a keyword in core cannot change what
Blender may send: the client checks a request before sending it, the worker when it arrives, and a test holds
the core functions to these declarations. `cancel` carries the id of the job it stops; `shutdown` cancels any
job and ends the worker. Neither gets an event of its own: a stopped job ends with a "cancelled" event.
Events: {"id": int | None, "event": ..., ...}: "ready" once at start-up (id None), then per job
any number of "progress" and exactly one of "result", "error" or "cancelled".
"""
import base64
import json
import os
from dataclasses import dataclass

import numpy as np

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class Job:
    """The parameters of one job type besides `id`, `type` and `model` (which every job takes)."""
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def parameters(self) -> tuple[str, ...]:
        return self.required + self.optional


# Options of every sampling job (core.sampling.generate's keywords of the same names).
SAMPLING_OPTIONS = ("candidates", "seed", "steps", "cond_scale", "res_cond_scale", "temperature", "topk")
# One job at a time, each may stream progress; a missing seed is drawn by the worker and named in the result.
JOBS = {
    "load": Job(()),  # the model directory, loaded and kept warm
    "generate": Job(("prompts",), ("lengths",) + SAMPLING_OPTIONS),  # core.prompt_generation.generate_prompts
    "inpaint": Job(("source", "ranges"), ("prompt",) + SAMPLING_OPTIONS + ("blend_frames",)),  # core.inpainting
    "inbetween": Job(("before", "after", "gap_frames"), ("prompt",) + SAMPLING_OPTIONS + ("blend_frames",)),
    "sequence": Job(("segments",), SAMPLING_OPTIONS + ("context_frames",)),  # core.sequence.generate_long
}
JOB_TYPES = tuple(JOBS)
REQUEST_TYPES = JOB_TYPES + ("ping", "cancel", "shutdown")  # ping, cancel, shutdown act at once, even when busy
ENVELOPE = ("id", "type")  # fields of every request that are not parameters
# "error" events carry a `kind`: busy (a job is running: nothing was done), bad-request (fix the request),
# model (the model directory or its text encoder cannot be loaded), internal (a bug or a resource problem;
# the traceback is on the worker's stderr).

# Wire dtypes: every float travels as float32 (what the models compute in); bools and integers keep their kind.
WIRE_DTYPES = {"float32": np.dtype("<f4"), "int64": np.dtype("<i8"), "bool": np.dtype("bool")}
ARRAY_KEYS = frozenset(("dtype", "shape", "b64"))


# Precisions of the transformers' CPU matrix products (core.models.MoMaskModels.set_precision). "auto":
# bfloat16 where the CPU computes it natively (sampling ~1.7x faster), float32 elsewhere and on GPUs.
PRECISIONS = ("auto", "float32", "bfloat16")


class BadRequest(ValueError):
    """A request that cannot be served as it is: the message says what to fix. Only this is reported as a bad
    request; any other exception while serving one is a bug."""


def check_job(kind: str, params) -> None:
    """Refuse (BadRequest) a job type that is not declared, or parameters (besides id, type, model) that its
    declaration does not name or that leave out a required one."""
    job = JOBS.get(kind)
    if job is None:
        raise BadRequest(f"unknown request type {kind!r}; expected one of {', '.join(REQUEST_TYPES)}")
    unknown = sorted(set(params) - set(job.parameters) - {"model"})
    if unknown:
        raise BadRequest(f"{kind}: unknown parameter(s) {', '.join(unknown)}; accepted: "
                         f"{', '.join(('model',) + job.parameters)}")
    missing = [name for name in job.required if name not in params]
    if missing:
        raise BadRequest(f"{kind}: missing parameter(s) {', '.join(missing)}")


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
