"""Blender's end of the worker boundary: start the worker process, send it requests, follow their jobs
without ever blocking Blender's UI. No bpy and no torch here, so it is tested in plain Python.

The worker is whatever command the preferences give (`default_worker_command`, or e.g.
`["ssh", "gpu-box", "python", "-m", "core.worker"]`): this module only speaks to its stdin and stdout.
Per started process three daemon threads run: a writer (a large request never blocks the caller), a reader
(decodes events and applies them to the job) and a stderr drain (a bounded tail that error messages quote,
and a pipe that never fills). A process that exits, or stays silent too long, fails its job with a message
for the user; the next request starts a fresh one.
"""
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from ._core import protocol

EXTENSION_ROOT = Path(__file__).resolve().parents[1]  # the worker command runs here: `-m core.worker` finds core/
STDERR_LINES = 200  # kept per process
QUOTED_LINES = 5  # quoted in an error message
READY_TIMEOUT = 120.0  # seconds a starting worker may take to say it is ready (torch import, ssh log-in)
HANG_TIMEOUT = 120.0  # seconds a busy worker may stay silent (one network pass, a model load)


class WorkerError(Exception):
    """The worker failed a request or stopped; the message is meant for the user."""


class WorkerBusy(WorkerError):
    """A job is still running: the worker takes one at a time."""


class JobCancelled(WorkerError):
    """The job was cancelled before it finished."""


def default_worker_command(python: str, threads: int | None = None) -> list[str]:
    """The worker on this machine with interpreter `python` (to run with cwd=EXTENSION_ROOT)."""
    threads = protocol.default_threads() if threads is None else threads
    return [python, "-m", "core.worker", "--threads", str(threads)]


class Job:
    """One request as the worker reports it. `progress` (0..1), `status` (text), `done`, `cancelled`,
    `result` (payload, arrays decoded), `error` and `error_kind` follow the events as they arrive;
    `error_kind` is a protocol kind, or "stopped" / "not-responding" when the process failed. Call `poll()`
    from a timer: it returns the new events and is where a silent worker is caught."""

    def __init__(self, client: "WorkerClient", job_id: int, kind: str, connection: "_Connection"):
        self.id, self.kind = job_id, kind
        self.progress = 0.0
        self.status = "waiting for the MoMask worker" if connection.ready.is_set() else "starting the MoMask worker"
        self.done, self.cancelled = False, False
        self.result, self.error, self.error_kind = None, None, None
        self._client, self._connection = client, connection
        self._events = queue.Queue()  # not yet returned by poll()
        self._lock = threading.Lock()
        self._finished = threading.Event()

    def _apply(self, event: dict):
        """Take one event of this job (reader thread, or the client when the process failed)."""
        with self._lock:
            if self.done:
                return
            kind = event.get("event")
            if kind == "progress":
                if event.get("total"):
                    self.progress = min(1.0, event["step"] / event["total"])
                self.status = event.get("message") or self.status
            elif kind == "result":
                self.result, self.progress, self.status = event.get("payload"), 1.0, "done"
            elif kind == "error":
                self.error, self.error_kind = event.get("message") or "unknown error", event.get("kind")
                self.status = self.error
            elif kind == "cancelled":
                self.cancelled, self.status = True, "cancelled"
            self._events.put(event)
            if kind in ("result", "error", "cancelled"):
                self.done = True
                self._finished.set()

    def _fail(self, message: str, kind: str):
        self._apply({"id": self.id, "event": "error", "message": message, "kind": kind})

    def poll(self) -> list[dict]:
        """The events that arrived since the last poll (never blocks); detects a hung worker."""
        self._client._check_silence(self)
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def wait(self, timeout: float | None = None) -> dict:
        """Block until the job ends -> its result. Raises WorkerError (JobCancelled when cancelled) with the
        worker's message, or TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._finished.wait(0.1):
            self._client._check_silence(self)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the MoMask worker's {self.kind} job did not finish within {timeout} s")
        if self.cancelled:
            raise JobCancelled(f"{self.kind} cancelled")
        if self.error is not None:
            raise WorkerError(self.error)
        return self.result

    def cancel(self):
        """Ask the worker to stop this job; it ends with a "cancelled" event after the current step."""
        if not self.done:
            self.status = "cancelling"
            self._connection.send({"id": self.id, "type": "cancel"})


class _Connection:
    """One started worker process and its pipes; dropped when the process ends."""

    def __init__(self, command: list[str], cwd, env):
        # Own session (POSIX) / no console window (Windows): Ctrl+C in Blender's terminal does not reach it.
        options = ({"creationflags": subprocess.CREATE_NO_WINDOW} if sys.platform == "win32"
                   else {"start_new_session": True})
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, **options)
        self.command = command
        self.info = None  # the ready event
        self.ready, self.ended = threading.Event(), threading.Event()  # ended: stdout closed
        self.last_heard = time.monotonic()
        self.stderr = deque(maxlen=STDERR_LINES)
        self.failure = None  # why the client stopped the process, if it did
        self.outbox = queue.Queue()  # encoded lines for the writer; None closes stdin
        self.threads = [threading.Thread(target=target, daemon=True)
                        for target in (self._write_lines, self._drain_stderr)]
        for thread in self.threads:
            thread.start()

    def send(self, message: dict):
        self.send_line(protocol.dumps(message))

    def send_line(self, line: str):
        self.outbox.put((line + "\n").encode("ascii"))

    def _write_lines(self):
        while (line := self.outbox.get()) is not None:
            try:
                self.process.stdin.write(line)
                self.process.stdin.flush()
            except (OSError, ValueError):  # the worker is gone; the reader reports why
                return
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def _drain_stderr(self):
        for line in self.process.stderr:
            self.stderr.append(line.decode("utf-8", "replace").rstrip())

    def kill(self, reason: str):
        """Stop the process; `reason` becomes the message of a job that was waiting on it (the first one wins)."""
        if self.failure is None:
            self.failure = reason
        self.process.kill()

    def last_messages(self) -> str:
        lines = [line.strip() for line in self.stderr if line.strip()][-QUOTED_LINES:]
        return " | ".join(lines)[-600:] if lines else "none"

    def end_message(self) -> str:
        """Why the process ended, with the last lines it wrote to stderr."""
        if self.failure is not None:
            return self.failure
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stdout closed but still running: useless to us
            self.process.kill()
            code = self.process.wait()
        self.threads[1].join(timeout=2)  # the last stderr lines
        how = f"exit code {code}" + (f", killed by signal {-code}" if code < 0 else "")
        return f"the MoMask worker stopped unexpectedly ({how}); last messages: {self.last_messages()}"


class WorkerClient:
    """Starts the worker on the first request and keeps it warm; one job at a time.

    ready_timeout: seconds to wait for a starting worker's "ready"; hang_timeout: seconds a busy worker may
    stay silent before it is killed as hung. Both are checked when a job is polled or waited on."""

    def __init__(self, command: list[str], cwd=None, env=None, ready_timeout: float = READY_TIMEOUT,
                 hang_timeout: float = HANG_TIMEOUT):
        self.command, self.cwd, self.env = list(command), cwd, env
        self.ready_timeout, self.hang_timeout = ready_timeout, hang_timeout
        self._connection = None
        self._job = None
        self._next_id = 1
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        """A worker process is running and talking (and the client has not stopped it)."""
        c = self._connection
        return c is not None and c.failure is None and c.process.poll() is None and not c.ended.is_set()

    @property
    def ready(self) -> dict | None:
        """The running worker's ready event (protocol, pid, threads, device, torch), once it arrived."""
        c = self._connection
        return c.info if c is not None and self.alive else None

    def stderr_tail(self) -> str:
        """What the current (or last) worker process wrote to stderr, up to STDERR_LINES lines."""
        return "\n".join(self._connection.stderr) if self._connection is not None else ""

    def _connect(self) -> "_Connection":
        if self._connection is not None and self._connection.process.poll() is None:
            self._connection.kill("replaced by a new worker")  # stdout closed but the process lingers
        try:
            connection = _Connection(self.command, self.cwd, self.env)
        except OSError as err:
            raise WorkerError(f"cannot start the MoMask worker `{' '.join(self.command)}`: {err}") from None
        threading.Thread(target=self._read_events, args=(connection,), daemon=True).start()
        self._connection = connection
        return connection

    def start(self) -> dict:
        """Start the worker if needed and block until it is ready -> its ready event. For a preferences
        button or a script; `request` does not need it (requests wait in the pipe while the worker starts)."""
        with self._lock:
            connection = self._connection if self.alive else self._connect()
        deadline = time.monotonic() + self.ready_timeout
        while not connection.ready.wait(0.05):
            if connection.ended.is_set():
                raise WorkerError(connection.end_message())
            if time.monotonic() > deadline:
                message = self._not_responding(connection, self.ready_timeout, "while starting")
                connection.kill(message)
                raise WorkerError(message)
        return connection.info

    def request(self, kind: str, **params) -> Job:
        """Send a job (declared in protocol.JOBS) or a "ping" and return it at once; starts the worker if none
        runs. Raises protocol.BadRequest (a ValueError: the add-on's own mistake) for a request the protocol does
        not declare, before anything is sent; WorkerBusy while another job runs, WorkerError if the command cannot
        be started."""
        if kind != "ping":
            protocol.check_job(kind, params)
        with self._lock:
            if self._job is not None and not self._job.done:
                raise WorkerBusy(f"the MoMask worker is busy with {self._job.kind} (job {self._job.id}); "
                                 "wait for it to finish or cancel it")
            line = protocol.dumps({"id": self._next_id, "type": kind, **params})  # a bad parameter raises here
            connection = self._connection if self.alive else self._connect()
            job = self._job = Job(self, self._next_id, kind, connection)  # before sending: answers come fast
            self._next_id += 1
            connection.last_heard = time.monotonic()  # silence is counted from the request on
            connection.send_line(line)
        return job

    def shutdown(self, timeout: float = 5.0):
        """Stop the worker (cancelling any job); killed if it does not exit within `timeout` seconds."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is None or connection.process.poll() is not None:
            return
        connection.failure = "the MoMask worker was shut down"
        connection.send({"id": 0, "type": "shutdown"})
        connection.outbox.put(None)
        try:
            connection.process.wait(timeout)
        except subprocess.TimeoutExpired:
            connection.process.kill()
            connection.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def _read_events(self, connection: "_Connection"):
        """Reader thread of one process: events go to the current job; the end of stdout fails it."""
        for line in connection.process.stdout:
            connection.last_heard = time.monotonic()
            try:
                event = protocol.loads(line)
            except ValueError:  # not ours (a login banner, a stray print): keep it for error messages
                connection.stderr.append("stdout: " + line.decode("utf-8", "replace").rstrip())
                continue
            job = self._job
            if event.get("event") == "ready":
                self._on_ready(connection, event)
            elif job is not None and event.get("id") == job.id:
                job._apply(event)
            elif event.get("event") == "error":  # not about a job (a bad preload): keep it for messages
                connection.stderr.append(f"worker error: {event.get('message')}")
        connection.ended.set()
        job = self._job
        if job is not None and job._connection is connection and not job.done:
            job._fail(connection.end_message(), "stopped")

    def _on_ready(self, connection: "_Connection", event: dict):
        if event.get("protocol") != protocol.PROTOCOL_VERSION:
            connection.kill(f"the MoMask worker speaks protocol version {event.get('protocol')!r} but the add-on "
                            f"speaks {protocol.PROTOCOL_VERSION}; install the same momask-blender version on "
                            "both sides")
            return
        connection.info = event
        connection.ready.set()

    def _not_responding(self, connection: "_Connection", seconds: float, doing: str) -> str:
        return (f"the MoMask worker is not responding (nothing heard for {seconds:.0f} s {doing}); it was "
                f"stopped and starts again on the next request; last messages: {connection.last_messages()}")

    def _check_silence(self, job: Job):
        """Kill a worker that stayed silent past its limit while `job` waits on it."""
        connection = job._connection
        if job.done or connection.ended.is_set():
            return
        ready = connection.ready.is_set()
        limit = self.hang_timeout if ready else self.ready_timeout
        silent = time.monotonic() - connection.last_heard
        if silent > limit:
            message = self._not_responding(connection, silent, "during a job" if ready else "while starting")
            connection.kill(message)
            job._fail(message, "not-responding")
