"""Running under ``torchrun``: DistributedDataParallel, gloo on CPU and nccl on CUDA.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything here is a no-op, so the
same training code runs in one process. Each rank reads its own streams (columns rank, rank + W, ...
of the B parallel streams); DDP averages gradients, so a step equals one step on the global batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import Tensor

from .cells import State, map_state


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        """Join the process group torchrun describes (once); one process when WORLD_SIZE is absent or 1."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        if not torch_dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch_dist.init_process_group(backend=backend)
        return cls(torch_dist.get_rank(), torch_dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """On CUDA each process takes the GPU of its local rank."""
        if self.enabled and device.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def barrier(self) -> None:
        """Wait for every rank (rank 0 writes the files at the end): ranks then leave the group together."""
        if self.enabled:
            torch_dist.barrier()

    def gather_objects(self, mine: dict) -> dict:
        """Merge every rank's ``{key: value}`` (picklable) into one dict, on every rank."""
        if not self.enabled:
            return dict(mine)
        parts: list[dict | None] = [None] * self.world_size
        torch_dist.all_gather_object(parts, mine)
        return {k: v for part in parts for k, v in part.items()}

    def mean(self, value: Tensor) -> float:
        """The mean of a scalar over all processes."""
        if not self.enabled:
            return value.item()
        value = _scalar_for_backend(value.detach().double().reshape(1))
        torch_dist.all_reduce(value)
        return value.item() / self.world_size

    def from_main(self, value: float) -> float:
        """Rank 0's ``value`` on every rank: decisions from a clock (the time budget's stop, its schedule's
        length) must be one decision, or the ranks' steps and rates would part."""
        if not self.enabled:
            return value
        tensor = _scalar_for_backend(torch.tensor([value], dtype=torch.float64))
        torch_dist.broadcast(tensor, src=0)
        return tensor.item()

    def my_carry(self, carry: State | None, device: torch.device) -> State | None:
        """This rank's columns of a saved full-batch carried state (L, B, H)."""
        if carry is None:
            return None
        return map_state(lambda t: t[:, self.rank::self.world_size].to(device), carry)

    def gather_carry(self, carry: State | None) -> State | None:
        """Every rank's carried state back in global stream order (L, B, H), for the checkpoint."""
        if not self.enabled or carry is None:
            return carry
        return map_state(self._gather_columns, carry)

    def _gather_columns(self, part: Tensor) -> Tensor:
        pieces = [torch.empty_like(part) for _ in range(self.world_size)]
        torch_dist.all_gather(pieces, part.contiguous())
        full = part.new_empty(part.shape[0], part.shape[1] * self.world_size, *part.shape[2:])
        for rank, piece in enumerate(pieces):
            full[:, rank::self.world_size] = piece
        return full


def _scalar_for_backend(value: Tensor) -> Tensor:
    """A (1,) float64 tensor where the process group's backend reduces it: nccl on the GPU, gloo on the CPU."""
    return value.to("cuda") if torch_dist.get_backend() == "nccl" else value.cpu()
