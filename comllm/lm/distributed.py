"""Data parallelism for our SFT loop under ``accelerate launch`` or ``torchrun``.

The launchers set ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with more than one
process, every process holds the whole model, takes its slice of each global batch,
and the gradients are averaged by one all-reduce per step (NCCL on GPUs, gloo on
CPUs). The global batch size, and so every hyper-parameter of a recipe, is the same
on one process or many. Only rank 0 logs, evaluates and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel run (``world == 1``: a plain run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "DataParallel":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(rank=int(os.environ.get("RANK", "0")), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def init(self, device: str) -> str:
        """Join the process group; returns this process's device (``cuda:LOCAL_RANK`` on GPUs)."""
        if not self.active:
            return device
        import torch.distributed as dist

        on_gpu = device.startswith("cuda")
        if on_gpu:
            device = f"cuda:{self.local_rank}"
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if on_gpu else "gloo", rank=self.rank, world_size=self.world)
        return device

    def shard(self, idx: np.ndarray) -> np.ndarray:
        """This rank's part of a global batch (every rank gets at least one example)."""
        if not self.active:
            return idx
        part = np.array_split(idx, self.world)[self.rank]
        return part if len(part) else idx[:1]

    def broadcast_params(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Rank 0's weights everywhere (a fresh model's random head, say)."""
        if not self.active:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for p in params:
                dist.broadcast(p.data, src=0)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Mean of every rank's gradients, one flat all-reduce per dtype."""
        if not self.active:
            return
        import torch.distributed as dist

        by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
        for p in params:
            if p.grad is None:  # a parameter this rank's batch did not reach
                p.grad = torch.zeros_like(p)
            by_dtype.setdefault(p.grad.dtype, []).append(p)
        for group in by_dtype.values():
            flat = torch.cat([p.grad.reshape(-1) for p in group])
            dist.all_reduce(flat)
            flat /= self.world
            offset = 0
            for p in group:
                n = p.grad.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
                offset += n

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
