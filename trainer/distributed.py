"""One run on several processes (``torchrun``): data parallel, the global batch split across the ranks.

Under ``torchrun --nproc_per_node P -m trainer train ...`` (WORLD_SIZE = P > 1) ``init_from_env`` joins the
process group (NCCL on CUDA, gloo on CPU) and gives each rank its device (``cuda:LOCAL_RANK``). Every rank
draws the same global batch (batches depend only on seed and step) and trains on its contiguous share of
the sequences (``batch_seqs`` must divide by P); DDP averages the gradients, so a step equals the
single-process step on the whole batch up to rounding (the MoE balance loss is averaged over the ranks'
shares, a per-shard statistic). Rank 0 alone writes checkpoints, the curve, the result and the runs-table row.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: str) -> str:
    """Join torchrun's process group when WORLD_SIZE > 1 and return this rank's device (else ``device``)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    cuda = device.startswith("cuda")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return f"cuda:{local}" if cuda else device


def shard(x: torch.Tensor, batch_seqs: int) -> torch.Tensor:
    """This rank's contiguous share of the global batch's rows; ValueError when they do not divide evenly."""
    rank, size = world()
    if batch_seqs % size:
        raise ValueError(f"batch_seqs {batch_seqs} is not divisible by the {size} torchrun processes")
    per = batch_seqs // size
    return x[rank * per:(rank + 1) * per]


def mean(values: torch.Tensor) -> torch.Tensor:
    """The ranks' mean of ``values`` (no-op for one process)."""
    size = world()[1]
    if size > 1:
        values = values.detach().clone()
        dist.all_reduce(values)                      # sum (every backend has it), then divide
        values /= size
    return values
