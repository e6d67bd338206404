"""Multi-process training: the process group `torchrun` describes in its environment variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), NCCL on GPUs and gloo on CPUs. A plain `python`
run is a world of one and needs none of it."""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, checkpoints and caches and shows the progress bar."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The average of `values` over all processes."""
        if self.active:
            values = values.clone()
            dist.all_reduce(values)
            values /= self.world_size
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when `flag` is True on one of them."""
        if not self.active:
            return flag
        value = torch.tensor(float(flag), device=device)
        dist.all_reduce(value)
        return bool(value > 0)

    def gather(self, obj) -> list:
        """Every process's `obj`, in rank order."""
        if not self.active:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Make every process's buffers rank 0's (state the optimiser does not synchronise, such as EMA
        codebooks updated from each process's own batch)."""
        if self.active:
            for buffer in module.buffers():
                dist.broadcast(buffer, 0)

    def shutdown(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed() -> Distributed:
    """Join the process group torchrun set up, or a world of one without torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    return Distributed(rank, world_size, local_rank)


def device_for(dist_info: Distributed, requested: str | None = None) -> torch.device:
    """The requested device, else this process's GPU when there is one, else the CPU."""
    if requested:
        return torch.device(requested)
    return torch.device(f"cuda:{dist_info.local_rank}" if torch.cuda.is_available() else "cpu")
