"""The training loop all kinds share: optimiser and learning-rate schedule, mixed precision on CUDA,
DistributedDataParallel under torchrun, logging, checkpoints and exact resume.

Exactness: each step seeds torch and draws its batch from generators keyed by (seed, step, rank)
(core.train.data), so the step number stands for every RNG state and the sampler position; a checkpoint
holds the step, the weights with the buffers state_dict leaves out (the RVQ's EMA codebook statistics),
the optimiser, the loss scaler and the partial sums of the current logging interval. Resuming from it
reproduces the uninterrupted run bit for bit on the same machine and software."""
import bisect
import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .config import ConfigError, StageConfig, TrainConfig, load_config
from .data import STEP, batch_items, rng_for, step_seed
from .ddp import Distributed, device_for, init_distributed
from .log import TrainingLog
from .tasks import Task, build_task

CHECKPOINT = "checkpoint.pt"


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM stopped the run after a complete step; a checkpoint was written."""


def learning_rate(stage: StageConfig, step: int) -> float:
    """Linear warm-up to `lr` over `warmup` steps, then times `gamma` at each milestone passed (MultiStepLR)."""
    warm = min(1.0, (step + 1) / stage.warmup) if stage.warmup else 1.0
    return stage.lr * warm * stage.gamma ** bisect.bisect_right(stage.milestones, step)


def _unsaved_buffers(net: nn.Module) -> dict:
    """Buffers the state_dict leaves out (the RVQ's EMA statistics) but an exact resume needs."""
    saved = net.state_dict().keys()
    return {name: b for name, b in net.named_buffers() if name not in saved}


def fingerprint(net: nn.Module) -> str:
    """sha256 of every weight and buffer: equal on all processes of a healthy DDP run."""
    digest = hashlib.sha256()
    for name, tensor in sorted({**net.state_dict(), **_unsaved_buffers(net)}.items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _amp_dtype(config: TrainConfig, task: Task, device: torch.device):
    if device.type != "cuda" or config.amp == "off" or not task.autocast:
        return None
    if config.amp == "bf16" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class _StopRequests:
    """SIGINT/SIGTERM during training ask the loop to stop after the current step and checkpoint, instead
    of dying in the middle of an update; a second signal interrupts at once."""

    def __enter__(self):
        self.requested, self.previous = False, {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # an interruption while writing leaves the previous checkpoint intact


def _inputs(task: Task) -> dict:
    """What a resumed run must read as before: the text encoder and the RVQ (the dataset may move)."""
    return {k: v for k, v in task.info.items() if k != "dataset"}


def _load_checkpoint(path: Path, kind: str, config: TrainConfig, task: Task, device: torch.device) -> dict:
    from ..checkpoint import load_torch_pickle
    state = load_torch_pickle(path)
    if state.get("kind") != kind:
        raise ConfigError(f"{path}: a checkpoint of a {state.get('kind')!r} run, not {kind}; use another --out")
    for what, then, now in (("settings", state["config"], config.resume_key(kind)),
                            ("inputs", state["inputs"], _inputs(task))):
        if then != now:
            then, now = _flat(then), _flat(now)
            changed = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
            raise ConfigError(f"{path}: this run was started with other {what} ({', '.join(changed)} differ); "
                              f"resume it with its own config and --rvq, or use another --out")
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in state.items()}


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = repr(value)
    return out


def make_optimizer(net: nn.Module, stage: StageConfig) -> torch.optim.Optimizer:
    """AdamW or Adam with the stage's betas and weight decay (the loop sets the learning rate each step)."""
    optimizer = torch.optim.AdamW if stage.optimizer == "adamw" else torch.optim.Adam
    return optimizer(net.parameters(), lr=stage.lr, betas=stage.betas, weight_decay=stage.weight_decay)


def training_step(model: nn.Module, task: Task, batch: tuple, optimizer, scaler, amp, grad_clip) -> dict:
    """One update: forward (autocast to `amp` if given), backward through the loss scaler, optional
    gradient-norm clipping, optimiser step. `model` is the task or its DDP wrapper. Returns the metrics."""
    with torch.autocast(batch[0].device.type, dtype=amp, enabled=amp is not None):
        metrics = model(*batch)
    scaler.scale(metrics["loss"]).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(task.net.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return metrics


def train(kind: str, config, data, out, rvq=None, device: str | None = None, stop_at: int | None = None,
          progress: bool = True, init=None) -> Path:
    """Train the `kind` network ("rvq", "mask", "residual", "length", "evaluator") with `config` (a
    TrainConfig or a JSON file) on the dataset at `data`, in the run directory `out`. A checkpoint in
    `out` is resumed. `rvq`: the RVQ run directory the transformers read tokens from (else the config's).
    `stop_at`: pause after this many steps (checkpointed; calling again continues). `init`: a model directory
    whose RVQ (and feature statistics) a fresh RVQ run starts from. Under torchrun every process calls this;
    rank 0 writes."""
    config = config if isinstance(config, TrainConfig) else load_config(config)
    config.stage(kind)
    dist = init_distributed()
    try:
        return _run(kind, config, data, Path(out), rvq, dist, device_for(dist, device), stop_at, progress, init)
    finally:
        dist.shutdown()


def _run(kind, config: TrainConfig, data, out: Path, rvq, dist: Distributed, device, stop_at, progress, init) -> Path:
    stage, main = config.stage(kind), dist.is_main
    if main:
        out.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    task = build_task(kind, config, data, out, rvq, dist, progress and main, device, init).to(device)
    net = task.net
    optimizer = make_optimizer(net, stage)
    amp = _amp_dtype(config, task, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    step, seconds, names, sums, count = 0, 0.0, None, None, 0
    checkpoint = out / CHECKPOINT
    if checkpoint.is_file():
        state = _load_checkpoint(checkpoint, kind, config, task, device)
        net.load_state_dict(state["net"])
        for name, buffer in _unsaved_buffers(net).items():
            buffer.copy_(state["buffers"][name])
        optimizer.load_state_dict(state["optimizer"])
        if scaler.is_enabled() and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        step, seconds, names, sums, count = (state[k] for k in ("step", "seconds", "names", "sums", "count"))
    log = TrainingLog(out, step) if main else None
    end = stage.iterations if stop_at is None else min(stop_at, stage.iterations)
    model = DistributedDataParallel(task, device_ids=[device.index] if device.type == "cuda" else None,
                                    forward_sync_buffers=task.sync_buffers,
                                    find_unused_parameters=task.partial_graph) if dist.active else task
    task.train()
    bar = tqdm(total=stage.iterations, initial=step, desc=f"train {kind}", unit="it", disable=not (progress and main),
               mininterval=1.0)
    started = last_save = interval_start = time.monotonic()
    interval_steps = 0

    def save():
        _save_checkpoint(checkpoint, {
            "kind": kind, "step": step, "config": config.resume_key(kind), "inputs": _inputs(task), "net": net.state_dict(),
            "buffers": _unsaved_buffers(net), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "seconds": seconds + time.monotonic() - started, "names": names, "sums": sums, "count": count})

    with _StopRequests() as stop:
        while step < end:
            torch.manual_seed(step_seed(config.seed, step, dist.rank))
            rng = rng_for(config.seed, STEP, step, dist.rank)
            lr = learning_rate(stage, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            items = batch_items(task.num_items, stage.batch_size, step, dist.rank, dist.world_size, config.seed,
                                task.weights)
            metrics = training_step(model, task, task.batch(items, rng, device), optimizer, scaler, amp,
                                    stage.grad_clip)
            step += 1
            interval_steps += 1
            values = torch.stack([v.detach().double() for v in metrics.values()])
            names, sums, count = list(metrics), (values if sums is None else sums + values), count + 1
            bar.update()
            if step % config.log_every == 0 or step == stage.iterations:
                means = dist.mean(sums / count).tolist()
                now = time.monotonic()
                if main:
                    log.write({"step": step, "lr": lr, **dict(zip(names, means)),
                               "samples_per_s": interval_steps * stage.batch_size * dist.world_size / (now - interval_start),
                               "seconds": round(seconds + now - started, 1)})
                    bar.set_postfix(loss=f"{means[names.index('loss')]:.4g}")
                sums, count, interval_steps, interval_start = None, 0, 0, now
            stopping = dist.any(stop.requested, device)
            if main and (stopping or step == end or time.monotonic() - last_save > 60 * config.checkpoint_minutes):
                save()
                log.plot(f"{kind} ({out.name})")
                last_save = time.monotonic()
            if stopping:
                bar.close()
                raise TrainingInterrupted(f"stopped after step {step} of {stage.iterations}; checkpoint in {checkpoint}; "
                                          f"run the same command to resume")
    bar.close()
    if step < stage.iterations:
        return out
    dist.broadcast_buffers(net)
    prints = dist.gather(fingerprint(net))
    if main:
        task.save_final(out, {"steps": step, "config": config.resume_key(kind), "rank_fingerprints": prints})
        log.plot(f"{kind} ({out.name})")
    dist.barrier()
    return out
