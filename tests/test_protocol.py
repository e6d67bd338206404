"""The worker's requests as core/protocol.py declares them are what the core functions serving them take: renaming
a keyword in core fails here instead of silently changing what Blender may send."""
import inspect

import pytest

from core import protocol
from core.worker import job_functions

SUPPLIED_BY_THE_WORKER = ("models", "text_encoder", "progress", "cancel", "known")


def accepted_and_required(function) -> tuple[set[str], set[str]]:
    """(every keyword, the required ones) a function takes from a request; one passing **options on (inbetween)
    also takes the keyword-only parameters of inpaint, which receives them."""
    params = inspect.signature(function).parameters.values()
    taken = [p for p in params if p.name not in SUPPLIED_BY_THE_WORKER and p.kind not in (p.VAR_POSITIONAL,
                                                                                              p.VAR_KEYWORD)]
    accepted = {p.name for p in taken}
    if any(p.kind == p.VAR_KEYWORD for p in params):
        accepted |= {p.name for p in inspect.signature(job_functions()["inpaint"]).parameters.values()
                     if p.kind == p.KEYWORD_ONLY and p.name not in SUPPLIED_BY_THE_WORKER}
    return accepted, {p.name for p in taken if p.default is p.empty}


@pytest.mark.parametrize("kind", [kind for kind in protocol.JOB_TYPES if kind != "load"])
def test_each_job_declares_exactly_what_its_function_takes(kind):
    accepted, required = accepted_and_required(job_functions()[kind])
    assert set(protocol.JOBS[kind].required) == required
    assert set(protocol.JOBS[kind].parameters) == accepted


def test_every_job_is_served():
    assert set(job_functions()) | {"load"} == set(protocol.JOB_TYPES)


@pytest.mark.parametrize("kind, params, message", [
    ("generate", {"prompts": ["walk"], "model": None, "seed": 1}, None),
    ("load", {"model": "models/default"}, None),
    ("load", {"prompts": ["walk"]}, r"load: unknown parameter\(s\) prompts; accepted: model$"),
    ("inpaint", {"source": None}, r"inpaint: missing parameter\(s\) ranges"),
    ("sequence", {"segments": [], "prompts": []}, r"unknown parameter\(s\) prompts"),
    ("ping", {}, "unknown request type 'ping'"),  # not a job
])
def test_check_job(kind, params, message):
    if message is None:
        protocol.check_job(kind, params)
    else:
        with pytest.raises(protocol.BadRequest, match=message):
            protocol.check_job(kind, params)
