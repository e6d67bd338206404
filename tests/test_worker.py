"""The worker boundary: the protocol's arrays, the real `python -m core.worker` driven through Blender's
WorkerClient (tiny random model, the bundled MiniLM encoder, one torch thread), and the failures a user can
meet: bad requests, a busy worker, cancelling, a worker that dies, hangs, never starts or is out of date."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from core import protocol
from core.checkpoint import model_config, save_model_dir
from core.features import recover_from_ric
from momask_blender.worker_client import (EXTENSION_ROOT, JobCancelled, WorkerBusy, WorkerClient, WorkerError,
                                          default_worker_command)
from tests.support.tiny_models import small_models

WORKER = default_worker_command(sys.executable, threads=1)
needs_signals = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX signals")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small random model conditioned on MiniLM's 384-d vectors, as the worker loads it from disk."""
    return str(save_model_dir(small_models(), tmp_path_factory.mktemp("worker") / "model"))


@pytest.fixture(scope="module")
def client():
    with WorkerClient(WORKER, cwd=EXTENSION_ROOT) as warm:
        yield warm


def run_to_end(job, timeout=120.0) -> list[dict]:
    """Poll a job as Blender's timer does until it is done -> all its events."""
    events, deadline = [], time.monotonic() + timeout
    while not job.done:
        assert time.monotonic() < deadline, f"job {job.kind} did not finish in {timeout} s"
        events += job.poll()
        time.sleep(0.01)
    return events + job.poll()


def first_progress(job, timeout=120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = [e for e in job.poll() if e["event"] == "progress"]
        if progress:
            return progress[0]
        assert not job.done, f"job ended before any progress: {job.error}"
        time.sleep(0.01)
    raise AssertionError(f"no progress from the worker in {timeout} s")


# protocol

def test_arrays_round_trip_exactly():
    rng = np.random.default_rng(0)
    floats = rng.normal(size=(7, 22, 3)).astype(np.float32)
    floats.flat[:5] = [np.nan, np.inf, -np.inf, -0.0, np.finfo(np.float32).smallest_subnormal]
    message = {"id": 3, "payload": {"joints": floats, "contacts": rng.random((7, 4)) > 0.5,
                                    "ids": np.array([-1, 2 ** 40]), "scalar": np.float32(2.5), "n": np.int64(7),
                                    "nested": [np.zeros((0, 263)), np.array(1.25, dtype=np.float64)]}}
    line = protocol.dumps(message)
    assert "\n" not in line and line.isascii()
    back = protocol.loads(line)["payload"]
    assert back["joints"].dtype == np.float32 and back["joints"].tobytes() == floats.tobytes()  # bit for bit
    assert back["contacts"].dtype == bool and np.array_equal(back["contacts"], message["payload"]["contacts"])
    assert back["ids"].dtype == np.int64 and back["ids"].tolist() == [-1, 2 ** 40]
    assert (back["scalar"], back["n"]) == (2.5, 7)
    assert back["nested"][0].shape == (0, 263) and back["nested"][1].shape == ()
    assert back["nested"][1].dtype == np.float32 and back["nested"][1] == np.float32(1.25)  # floats go as float32
    back["joints"][0] = 0  # decoded arrays are ordinary writable arrays


@pytest.mark.parametrize("obj, message", [
    ({"dtype": "float16", "shape": [1], "b64": "AAA="}, "dtype 'float16' is not one of"),
    ({"dtype": "float32", "shape": [2], "b64": "AAAAAA=="}, "needs 8 bytes, got 4"),
    ({"dtype": "float32", "shape": [1], "b64": "not base64!"}, "not valid base64"),
    ({"dtype": "float32", "shape": "3", "b64": ""}, "shape must be a list"),
])
def test_bad_arrays_are_refused_clearly(obj, message):
    with pytest.raises(ValueError, match=message):
        protocol.loads(json.dumps({"id": 1, "source": obj}))


def test_unsendable_values_are_refused_clearly():
    with pytest.raises(TypeError, match="dtype complex128"):
        protocol.dumps({"a": np.zeros(2, dtype=complex)})
    with pytest.raises(TypeError, match="cannot send a set"):
        protocol.dumps({"a": {1}})
    with pytest.raises(ValueError, match="expected a JSON object"):
        protocol.loads("[1, 2]")


def test_the_client_imports_inside_the_extension_package_without_torch(tmp_path):
    """In Blender the repository root is the package `bl_ext.<repo>.<id>`: its core/ loads as a subpackage of it,
    never as the top-level `core` another add-on may own."""
    (tmp_path / "momask_ext").symlink_to(EXTENSION_ROOT, target_is_directory=True)
    code = ("import sys, momask_ext.momask_blender.worker_client as c; "
            "print('core' in sys.modules, c.protocol.__name__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "momask_ext.core.protocol", "False"]


# the worker process itself

NOISY_WORKER = """
import os, sys, time
import core.checkpoint
real_load = core.checkpoint.load_model_dir
def chatty_load(*args, **kwargs):  # a library that prints to stdout, from Python and from C, and takes its time
    print("library chatter on stdout")
    os.write(1, b"C-level chatter on fd 1\\n")
    time.sleep(0.5)
    return real_load(*args, **kwargs)
core.checkpoint.load_model_dir = chatty_load
from core.worker import main
sys.exit(main(sys.argv[1:]))
"""


def test_worker_stdout_is_pure_protocol_and_a_second_job_is_refused(tmp_path):
    models = small_models()
    models.config = model_config("clip-vit-b32", 384, "bandai")  # an encoder whose weights are not installed
    clip_model = save_model_dir(models, tmp_path / "clip-model")
    requests = [{"id": 1, "type": "load", "model": str(clip_model)},
                {"id": 2, "type": "generate", "prompts": ["a person walks"]},
                {"id": 3, "type": "ping"}, "this is not json", {"id": 4, "type": "fly"}, {"type": "ping"},
                {"id": 5, "type": "generate", "prompt": "walk"}]
    lines = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in requests)
    env = dict(os.environ, HOME=str(tmp_path))  # no CLIP weights in ~/.cache/clip
    done = subprocess.run([sys.executable, "-c", NOISY_WORKER, "--threads", "1", "--model", "/nonexistent/model"],
                          input=lines, env=env, cwd=EXTENSION_ROOT, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr  # stdin closed: a clean exit
    events = [protocol.loads(line) for line in done.stdout.splitlines()]  # every line parses
    preload, ready = events[:2]  # a model that cannot be preloaded is reported, and the worker serves anyway
    assert preload["event"] == "error" and preload["id"] is None and preload["kind"] == "model"
    assert preload["message"] == "/nonexistent/model: model directory not found"
    assert ready["event"] == "ready" and ready["protocol"] == protocol.PROTOCOL_VERSION
    assert ready["threads"] == 1 and ready["device"] == "cpu"
    by_id = {}
    for event in events[2:]:
        by_id.setdefault(event["id"], []).append(event)
    assert [e.get("message") for e in by_id[1][:-1]] == [f"loading the model {clip_model}",
                                                         "loading the text encoder clip-vit-b32"]
    assert by_id[1][-1]["kind"] == "model" and "ViT-B-32.pt" in by_id[1][-1]["message"]
    assert by_id[2] == [{"id": 2, "event": "error", "kind": "busy",
                         "message": "the worker is busy with job 1; wait for it or cancel it"}]
    assert by_id[3] == [{"id": 3, "event": "result", "payload": {"pong": True, "busy": 1}}]
    assert by_id[4][0]["kind"] == "bad-request" and "unknown request type 'fly'" in by_id[4][0]["message"]
    assert by_id[5] == [{"id": 5, "event": "error", "kind": "bad-request",  # checked on arrival, busy or not
                         "message": "generate: unknown parameter(s) prompt; accepted: model, prompts, lengths, "
                                    "candidates, seed, steps, cond_scale, res_cond_scale, temperature, topk"}]
    unattributed = [e["message"] for e in by_id[None]]
    assert unattributed[0].startswith("not a protocol line") and "has no integer 'id'" in unattributed[1]
    assert "library chatter on stdout" in done.stderr and "C-level chatter on fd 1" in done.stderr


# through the client

def test_ready_event(client):
    ready = client.start()
    assert ready["protocol"] == protocol.PROTOCOL_VERSION and ready["threads"] == 1 and ready["device"] == "cpu"
    assert client.alive and client.ready == ready


def test_generate_streams_progress_and_returns_motions(client, model_dir):
    job = client.request("generate", model=model_dir, prompts=["a person walks forward"], lengths=[40],
                         candidates=2, steps=3, seed=5)
    events = run_to_end(job)
    assert job.error is None and job.progress == 1.0 and job.status == "done"
    steps = [(e["step"], e["total"]) for e in events if e["event"] == "progress" and e["total"]]
    assert steps == [(i, 5) for i in range(1, 6)]  # 3 masked steps + 2 residual layers, one event each
    assert events[-1]["event"] == "result" and job.result["params"]["seed"] == 5
    [motions] = job.result["motions"]
    assert len(motions) == 2 and job.result["model"] == model_dir
    for motion in motions:
        assert motion["length"] == 40 and motion["joints"].shape == (40, 22, 3) and motion["joints"].dtype == np.float32
        assert motion["features"].shape == (40, 263) and motion["contacts"].shape == (40, 4)
        assert np.allclose(motion["joints"], recover_from_ric(motion["features"]), atol=1e-5)
        assert np.array_equal(motion["contacts"], motion["features"][:, 259:] > 0.5)
    assert not np.array_equal(motions[0]["joints"], motions[1]["joints"])

    again = client.request("generate", model=model_dir, prompts=["a person walks forward"], lengths=[40],
                           candidates=2, steps=3, seed=5).wait(60)
    assert np.array_equal(again["motions"][0][1]["joints"], motions[1]["joints"])  # the seed reproduces it
    drawn = client.request("generate", model=model_dir, prompts=["a person walks forward"], lengths=[40],
                           steps=2).wait(60)
    assert isinstance(drawn["params"]["seed"], int)  # a seed is drawn and named when none is given


def test_edit_requests_send_arrays_both_ways(client, model_dir):
    source = client.request("generate", model=model_dir, prompts=["walk"], lengths=[40], steps=2,
                            seed=1).wait(60)["motions"][0][0]["joints"]
    [edit] = client.request("inpaint", model=model_dir, source=source, ranges=[[10, 20]], prompt="jump", steps=2,
                            seed=2).wait(60)["motions"]
    assert edit["joints"].shape == (40, 22, 3)
    assert np.array_equal(edit["joints"][:10], source[:10]) and np.array_equal(edit["joints"][20:], source[20:])
    assert not np.allclose(edit["joints"][10:20], source[10:20])

    [filled] = client.request("inbetween", model=model_dir, before=source[:10], after=source[30:], gap_frames=12,
                              steps=2, seed=3).wait(60)["motions"]
    assert filled["length"] == 32 and np.array_equal(filled["joints"][:10], source[:10])
    assert np.array_equal(filled["joints"][22:], source[30:])

    [long] = client.request("sequence", model=model_dir, segments=[["walk", 20], ["run", 24]], steps=2,
                            seed=4).wait(60)["motions"]
    assert long["length"] == 44 and long["joints"].shape == (44, 22, 3) and long["segment_starts"] == [0, 20]


def test_cancel_mid_generation_and_a_second_request_is_refused(client, model_dir):
    job = client.request("generate", model=model_dir, prompts=["a long dance"], lengths=[40], steps=5000)
    first_progress(job)
    with pytest.raises(WorkerBusy, match="busy with generate"):
        client.request("ping")
    job.cancel()
    events = run_to_end(job, timeout=30)
    assert job.cancelled and events[-1]["event"] == "cancelled" and job.status == "cancelled"
    assert max(e["step"] for e in events if e["event"] == "progress") < 5000 + 2
    with pytest.raises(JobCancelled):
        job.wait()
    assert client.request("ping").wait(30)["pong"]  # ready for the next job


@pytest.mark.parametrize("kind, params, error_kind, message", [
    ("generate", dict(prompts=[""]), "bad-request", "prompt 0 is empty"),
    ("generate", dict(prompts=["walk"], lengths=[500]), "bad-request", "length 500 of prompt 0 is outside"),
    ("inpaint", dict(source=np.zeros((40, 5)), ranges=[[0, 8]]), "bad-request", "the source must be features"),
    ("load", dict(model="/nonexistent/model"), "model", "model directory not found"),
    ("load", dict(model="CORRUPT"), "model", "config.json: not valid JSON"),
])
def test_bad_requests_get_clear_errors_and_the_worker_lives_on(client, model_dir, tmp_path, kind, params,
                                                               error_kind, message):
    if params.get("model") == "CORRUPT":
        (tmp_path / "config.json").write_text("{not json")
        params = dict(params, model=str(tmp_path))
    pid = client.start()["pid"]
    job = client.request(kind, **({"model": model_dir} | params))
    with pytest.raises(WorkerError) as err:
        job.wait(60)
    assert message in str(err.value) and job.error_kind == error_kind
    assert client.request("ping").wait(30)["pong"] and client.ready["pid"] == pid


@pytest.mark.parametrize("kind, params, message", [
    ("fly", {}, "unknown request type 'fly'"),
    ("generate", dict(lengths=[40]), r"generate: missing parameter\(s\) prompts"),
    ("generate", dict(prompt="walk"), r"generate: unknown parameter\(s\) prompt; accepted: model, prompts"),
])
def test_requests_the_protocol_does_not_declare_are_refused_before_sending(kind, params, message):
    never_started = WorkerClient([sys.executable, "-c", "raise SystemExit('started')"])
    with pytest.raises(protocol.BadRequest, match=message):
        never_started.request(kind, **params)
    assert not never_started.alive


BROKEN_WORKER = """
import sys
import core.sampling
def generate(*args, **options):  # a bug inside core
    return len(args) + "frames"
core.sampling.generate = generate
from core.worker import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_bug_inside_core_is_reported_as_one_with_its_traceback_in_the_log(model_dir):
    with WorkerClient([sys.executable, "-c", BROKEN_WORKER, "--threads", "1"], cwd=EXTENSION_ROOT) as broken:
        job = broken.request("generate", model=model_dir, prompts=["walk"], lengths=[40])
        with pytest.raises(WorkerError, match=r"generate failed inside the worker \(TypeError: unsupported operand"):
            job.wait(60)
        assert job.error_kind == "internal"
        assert broken.request("ping").wait(30)["pong"]  # and it serves on
        log = broken.stderr_tail()
        assert "Traceback (most recent call last)" in log and "TypeError: unsupported operand" in log


@needs_signals
def test_a_dead_or_hung_worker_fails_its_job_and_the_next_request_restarts_it(model_dir):
    with WorkerClient(WORKER, cwd=EXTENSION_ROOT, hang_timeout=2.0) as fragile:
        job = fragile.request("generate", model=model_dir, prompts=["walk"], lengths=[40])
        first_progress(job)  # loading the model
        killed = fragile.ready["pid"]
        os.kill(killed, signal.SIGKILL)
        with pytest.raises(WorkerError, match=r"stopped unexpectedly \(exit code -9, killed by signal 9\); "
                                              r"last messages: .*job 1 \(generate\) started"):
            job.wait(30)
        assert job.error_kind == "stopped" and not fragile.alive

        job = fragile.request("generate", model=model_dir, prompts=["walk"], lengths=[40])
        first_progress(job)
        frozen = fragile.ready["pid"]
        assert frozen != killed
        os.kill(frozen, signal.SIGSTOP)
        with pytest.raises(WorkerError, match=r"not responding \(nothing heard for \d+ s during a job\)") as err:
            job.wait(30)
        silent = int(re.search(r"nothing heard for (\d+) s", str(err.value))[1])
        assert silent >= 2 and job.error_kind == "not-responding"  # not before its hang_timeout of 2 s
        assert not fragile.alive

        assert fragile.request("ping").wait(60)["pong"]
        assert fragile.ready["pid"] not in (killed, frozen)
        last = fragile.ready["pid"]
    assert not fragile.alive
    with pytest.raises(ProcessLookupError):  # shut down and reaped
        os.kill(last, 0)


def test_a_worker_that_never_answers_is_not_responding():
    with WorkerClient([sys.executable, "-c", "import time; time.sleep(60)"], ready_timeout=0.5) as silent:
        job = silent.request("ping")
        with pytest.raises(WorkerError, match=r"not responding \(nothing heard for \d+ s while starting\)"):
            job.wait(10)
        assert not silent.alive
        with pytest.raises(WorkerError, match="not responding"):
            silent.start()


def test_a_worker_that_cannot_start_or_is_out_of_date_gives_a_clear_error():
    crash = [sys.executable, "-c", "import sys; sys.stderr.write('No module named torch\\n'); sys.exit(3)"]
    with WorkerClient(crash) as client:
        with pytest.raises(WorkerError, match=r"stopped unexpectedly \(exit code 3\); last messages: "
                                              r"No module named torch"):
            client.request("ping").wait(30)
    old = [sys.executable, "-c", "import time; print('{\"id\": null, \"event\": \"ready\", \"protocol\": 999}', "
                                 "flush=True); time.sleep(60)"]
    with WorkerClient(old) as client:
        with pytest.raises(WorkerError, match="speaks protocol version 999 but the add-on speaks 1"):
            client.request("ping").wait(30)
    with pytest.raises(WorkerError, match="cannot start the MoMask worker `/nonexistent/python -m core.worker"):
        WorkerClient(default_worker_command("/nonexistent/python")).request("ping")


def test_shutdown_ends_the_worker_cleanly_while_its_stdin_stays_open():
    """The client sends shutdown and keeps its end of the pipe open: the worker must exit 0, not abort in
    interpreter teardown with its reader thread blocked on stdin."""
    worker = subprocess.Popen(WORKER, cwd=EXTENSION_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        assert protocol.loads(worker.stdout.readline())["event"] == "ready"
        worker.stdin.write(b'{"id": 1, "type": "ping"}\n{"id": 2, "type": "shutdown"}\n')
        worker.stdin.flush()
        assert protocol.loads(worker.stdout.readline())["payload"]["pong"] is True
        assert worker.wait(timeout=60) == 0, worker.stderr.read().decode()[-2000:]
    finally:
        worker.kill()
        worker.stdin.close()
