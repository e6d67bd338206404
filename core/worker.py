"""`python -m core.worker`: the PyTorch process Blender talks to (JSON lines, see core/protocol.py).

A separate process keeps torch's threads, DLLs and crashes out of Blender, and the same command runs on
another machine (`ssh gpu-box python -m core.worker`). One worker serves many requests and keeps the models
it loaded warm. A reader thread takes requests off stdin while a job runs, so `cancel` and `ping` are
answered at once and a second job is refused as busy (the client decides whether to queue). stdout carries
protocol lines only: whatever torch and its libraries print goes to stderr.
"""
import argparse
import os
import queue
import secrets
import sys
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import fields

from . import protocol

MAX_MODELS = 2  # model directories kept loaded; the least recently used one is dropped first
UNSENT_FIELDS = ("tokens", "windows")  # motion fields only the worker side needs


class RequestError(Exception):
    """A request the worker cannot serve; `kind` is one of the error kinds in core/protocol.py."""

    def __init__(self, message: str, kind: str = "bad-request"):
        super().__init__(message)
        self.kind = kind


def options_parser() -> argparse.ArgumentParser:
    """The worker's options, shared with `momask serve`."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--threads", type=int, default=protocol.default_threads(),
                        help="torch threads (default: all cores but one, left to Blender)")
    parser.add_argument("--model", default=None, help="model directory to load before answering (default: none)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    add_precision_option(parser)
    add_clip_path_option(parser)
    return parser


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    """--precision, for every command that samples (the worker, generate, inpaint, evaluate)."""
    parser.add_argument("--precision", choices=protocol.PRECISIONS, default="auto",
                        help="CPU matrix products of the transformers (default auto: bfloat16 where the CPU has it "
                             "natively, else float32)")


def add_clip_path_option(parser: argparse.ArgumentParser) -> None:
    """--clip-path, for every command that may load a model conditioned on CLIP (the released checkpoints)."""
    parser.add_argument("--clip-path", default=None, metavar="FILE",
                        help="OpenAI's CLIP ViT-B-32.pt, for models that use CLIP (default: ~/.cache/clip/ViT-B-32.pt)")


def job_functions() -> dict:
    """The core function serving each job type of core/protocol.py but load: its request parameters are the
    function's keywords (imported here, not at the top: `core.worker` itself imports without torch)."""
    from .inpainting import inbetween, inpaint
    from .prompt_generation import generate_prompts
    from .sequence import generate_long
    return {"generate": generate_prompts, "inpaint": inpaint, "inbetween": inbetween, "sequence": generate_long}


def motion_payload(motion) -> dict:
    """A generated or edited motion (dataclass) as a result entry: its arrays, length and extra fields."""
    return {f.name: getattr(motion, f.name) for f in fields(motion) if f.name not in UNSENT_FIELDS}


class Worker:
    """Requests in (reader thread), one job at a time (main thread), events out (either thread, locked)."""

    def __init__(self, out, device: str, precision: str = "auto", clip_path: str | None = None):
        self.functions = job_functions()
        self.out, self.device, self.precision, self.clip_path = out, device, precision, clip_path
        self.lock = threading.Lock()  # one line at a time on `out`; guards `busy`
        self.busy = None  # id of the job queued or running
        self.cancel = threading.Event()
        self.jobs = queue.Queue()  # job requests for the main thread; None ends the worker
        self.models = OrderedDict()  # (directory, config.json mtime) -> MoMaskModels
        self.encoders = {}  # text encoder name -> encoder
        self.known = {}  # model directory -> its KnownActions (None for a model without them)

    def _write(self, message: dict):
        self.out.write(protocol.dumps(message) + "\n")
        self.out.flush()

    def send(self, message: dict):
        with self.lock:
            self._write(message)

    def error(self, job_id, message: str, kind: str):
        self.send({"id": job_id, "event": "error", "message": message, "kind": kind})

    # reader thread

    def read_requests(self, stream):
        """Accept every line of `stream` until a shutdown request or its end (the client went away), then
        cancel the job and stop. Never blocked in a read once shutting down: a thread holding stdin's lock
        while the interpreter exits aborts it."""
        for line in stream:
            if line.strip() and self.accept(line) == "shutdown":
                break
        self.cancel.set()
        self.jobs.put(None)

    def accept(self, line: bytes | str) -> str | None:
        """Answer ping, cancel, shutdown and bad requests (core/protocol.py's declarations) at once; queue a job
        unless one is running. Returns "shutdown" for a shutdown request."""
        try:
            request = protocol.loads(line)
        except ValueError as err:
            return self.error(None, f"not a protocol line ({err}): {line[:100]!r}", "bad-request")
        job_id, kind = request.get("id"), request.get("type")
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            return self.error(None, f"request {kind!r} has no integer 'id' (got {job_id!r})", "bad-request")
        if kind == "ping":
            self.send({"id": job_id, "event": "result", "payload": {"pong": True, "busy": self.busy}})
        elif kind == "cancel":
            if self.busy == job_id:  # a job that already ended has sent its last event: nothing to do
                self.cancel.set()
        elif kind == "shutdown":  # read_requests stops reading and ends the worker
            return "shutdown"
        else:
            try:
                protocol.check_job(kind, request.keys() - set(protocol.ENVELOPE))
            except protocol.BadRequest as err:
                return self.error(job_id, str(err), "bad-request")
            with self.lock:
                if self.busy is not None:
                    return self._write({"id": job_id, "event": "error", "kind": "busy", "message":
                                        f"the worker is busy with job {self.busy}; wait for it or cancel it"})
                self.busy = job_id
                self.cancel.clear()
            self.jobs.put(request)

    # main thread

    def serve(self):
        while (request := self.jobs.get()) is not None:
            self.run(request)

    def run(self, request: dict):
        """Run one job and send its last event; nothing a request does ends the worker."""
        from .sampling import GenerationCancelled
        job_id, kind = request["id"], request["type"]
        started = time.perf_counter()
        print(f"worker: job {job_id} ({kind}) started", file=sys.stderr, flush=True)
        try:
            payload = self.load(job_id, request) if kind == "load" else self.make_motions(job_id, kind, request)
            event = {"event": "result", "payload": {**payload, "seconds": time.perf_counter() - started}}
        except GenerationCancelled as err:
            event = {"event": "cancelled", "message": str(err)}
        except RequestError as err:
            event = {"event": "error", "message": str(err), "kind": err.kind}
        except protocol.BadRequest as err:
            event = {"event": "error", "message": str(err), "kind": "bad-request"}
        except Exception as err:  # a bug or a resource problem (memory, CUDA): report it and keep serving
            traceback.print_exc()
            event = {"event": "error", "kind": "internal", "message": f"{kind} failed inside the worker "
                     f"({type(err).__name__}: {err}); a bug or a resource problem, its traceback is in the worker's log"}
        with self.lock:  # free before the last event goes out, so the client may send the next job at once
            self.busy = None
            self._write({"id": job_id, **event})
        print(f"worker: job {job_id} ({kind}) {event['event']} after {time.perf_counter() - started:.2f} s",
              file=sys.stderr, flush=True)

    def progress(self, job_id, step: int, total: int, message: str):
        if job_id is not None:
            self.send({"id": job_id, "event": "progress", "step": step, "total": total, "message": message})

    def model(self, job_id, directory):
        """(directory, models, text encoder) for a model directory (None: the default), loaded once."""
        from .checkpoint import CheckpointError, load_model_dir, resolve_model_dir
        from .text_encoders import get_text_encoder
        if directory is not None and not isinstance(directory, str):
            raise RequestError(f"'model' must be a directory path or null, got {directory!r}")
        path = resolve_model_dir(directory)
        config_file = path / "config.json"
        key = (str(path.resolve()), config_file.stat().st_mtime_ns if config_file.is_file() else None)
        if key not in self.models:
            while len(self.models) >= MAX_MODELS:
                self.models.popitem(last=False)
            self.progress(job_id, 0, 0, f"loading the model {path}")
            try:
                models = load_model_dir(path, self.device, self.precision)
            except CheckpointError as err:
                raise RequestError(str(err), "model") from None
            name = models.config["text_encoder"]["name"]
            if name not in self.encoders:
                self.progress(job_id, 0, 0, f"loading the text encoder {name}")
                try:
                    self.encoders[name] = get_text_encoder(name, device=self.device, clip_path=self.clip_path)
                except (ImportError, OSError, ValueError) as err:
                    raise RequestError(f"{path}: its text encoder {name!r} cannot be loaded: {err}", "model") from None
            self.models[key] = models
        self.models.move_to_end(key)
        models = self.models[key]
        return path, models, self.encoders[models.config["text_encoder"]["name"]]

    def load(self, job_id, request: dict) -> dict:
        path, models, encoder = self.model(job_id, request.get("model"))
        return {"model": str(path), "config": models.config, "text_encoder": encoder.name, "device": self.device}

    def make_motions(self, job_id, kind: str, request: dict) -> dict:
        """generate -> motions [prompt][candidate] and what each prompt's parts were understood as; inpaint,
        inbetween, sequence -> motions [candidate].
        The request's parameters (checked against core/protocol.py on arrival) are the core function's keywords;
        a missing seed is drawn here so that the result names the seed that reproduces it. The function raises
        protocol.BadRequest for input it cannot serve; anything else it raises is a bug."""
        params = {name: value for name, value in request.items() if name not in protocol.ENVELOPE + ("model",)}
        if params.get("seed") is None:
            params["seed"] = secrets.randbelow(2 ** 31)
        path, models, encoder = self.model(job_id, request.get("model"))
        extra = {"known": self.known_actions(path)} if kind == "generate" else {}
        out = self.functions[kind](models, encoder, **params, **extra, cancel=self.cancel.is_set,
                                   progress=lambda step, total: self.progress(job_id, step, total,
                                                                              f"{kind}: step {step} of {total}"))
        shown = {name: value for name, value in params.items() if not hasattr(value, "shape")}  # not the arrays
        if kind != "generate":
            return {"model": str(path), "params": shown, "motions": [motion_payload(m) for m in out]}
        motions, understood = out
        return {"model": str(path), "params": shown, "motions": [[motion_payload(m) for m in row] for row in motions],
                "understood": [[{"prompt": part.prompt, "closest": part.closest, "far": part.far} for part in parts]
                               for parts in understood]}

    def known_actions(self, path):
        """The model directory's known actions (core.known_actions), read once."""
        from .known_actions import KnownActions
        if path not in self.known:
            self.known[path] = KnownActions.load(path)
        return self.known[path]


def protocol_stream():
    """The real stdout, kept for protocol lines; file descriptor 1 and sys.stdout then point at stderr, so
    prints from Python and from C libraries can never corrupt the protocol."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", newline="\n")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def serve(threads: int, model: str | None = None, device: str | None = None, precision: str = "auto",
          clip_path: str | None = None) -> int:
    """Run the worker on this process's stdin/stdout until stdin ends or a shutdown request."""
    out = protocol_stream()
    import torch  # after the redirection: nothing torch prints can reach the protocol stream
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the tokenizer's own pool would ignore --threads
    torch.set_num_threads(max(1, threads))
    torch.set_num_interop_threads(1)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    worker = Worker(out, device, precision, clip_path)
    if model is not None:
        try:
            worker.model(None, model)
        except RequestError as err:
            worker.error(None, str(err), err.kind)
    worker.send({"id": None, "event": "ready", "protocol": protocol.PROTOCOL_VERSION, "pid": os.getpid(),
                 "threads": torch.get_num_threads(), "device": device, "torch": torch.__version__})
    threading.Thread(target=worker.read_requests, args=(sys.stdin.buffer,), daemon=True).start()  # after ready
    worker.serve()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.worker", parents=[options_parser()],
                                     description="Serve MoMask requests as JSON lines on stdin/stdout.")
    args = parser.parse_args(argv)
    return serve(args.threads, args.model, args.device, args.precision, args.clip_path)


if __name__ == "__main__":
    sys.exit(main())
