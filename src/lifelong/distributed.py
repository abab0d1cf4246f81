"""Data-parallel training across processes with `torch.distributed` (gloo on CPU, NCCL on CUDA).

One rule makes every strategy correct under sharding: **every rank holds the same state** (model,
optimiser, strategy state, memory buffers, random generators), and each rank computes only its share
of each global batch. Each rank draws the same global permutation, takes its contiguous share of
every batch (`shard`), and the gradients are averaged weighted by each rank's row count
(`average_gradients`), so that N ranks with batch B/N step like one process with batch B. Strategy
state either follows from identical inputs (a memory updated with the whole global batch, masks and
pruning computed from identical parameters) or is computed on shards and summed (`all_reduce_sum`:
Fisher, importance, class means). Every collective here is a no-op in a single process, so
single-process code pays nothing.

Processes are started by `torchrun` (`torch.distributed.run`), which sets RANK, WORLD_SIZE,
MASTER_ADDR/PORT; `init()` joins that group.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes results, checkpoints and logs."""
    return rank() == 0


def launched() -> bool:
    """True when this process was started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> bool:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA, each rank on GPU LOCAL_RANK);
    returns whether one was joined. A no-op outside torchrun or when already joined."""
    if not launched() or dist.is_initialized():
        return active()
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def local_device(device: torch.device) -> torch.device:
    """The device of this rank: `cuda:LOCAL_RANK` for a CUDA run under torchrun, else `device`."""
    if device.type == "cuda" and launched() and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(x: Tensor) -> Tensor:
    """This rank's contiguous share of the rows of `x` (sizes differ by at most one row)."""
    if not active():
        return x
    return x.tensor_split(world_size())[rank()]


def all_reduce_sum(tensors: Iterable[Tensor]) -> None:
    """Sum each tensor over all ranks, in place (one flat collective for all of them)."""
    if not active():
        return
    items = list(tensors)
    if not items:
        return
    flat = torch.cat([t.detach().reshape(-1).to(items[0].dtype) for t in items])
    dist.all_reduce(flat)
    offset = 0
    for t in items:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


def average_gradients(params: Sequence[torch.nn.Parameter], rows: int) -> None:
    """Replace each gradient by the average over ranks weighted by their `rows` (the rows of this rank's
    batch, whose mean loss gave the gradient): the gradient of the mean loss over the global batch.
    `params` must be the same parameters, in the same order, on every rank (those of one model); one
    without a gradient on this rank (e.g. a rank whose share of the batch was empty) counts as zero
    there, and stays without one only if it has none on every rank."""
    if not active() or not params:
        return
    ref = params[0]
    flags = torch.tensor([p.grad is not None for p in params], dtype=ref.dtype, device=ref.device)
    grads = [p.grad.mul_(rows) if p.grad is not None else torch.zeros_like(p) for p in params]
    count = torch.tensor([float(rows)], dtype=ref.dtype, device=ref.device)
    all_reduce_sum([*grads, flags, count])
    total = float(count) or 1.0
    for p, g, flag in zip(params, grads, flags.tolist()):
        p.grad = g.div_(total) if flag else None


def all_gather_rows(x: Tensor) -> Tensor:
    """The rows of `x` from every rank, concatenated in rank order (ranks may hold different counts)."""
    if not active():
        return x
    n = torch.tensor([len(x)], device=x.device)
    counts = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(counts, n)
    most = int(max(int(c) for c in counts))
    padded = torch.zeros((most, *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: len(x)] = x
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(c)] for p, c in zip(parts, counts)])


def broadcast(tensors: Iterable[Tensor], src: int = 0) -> None:
    """Copy each tensor from rank `src` to every rank, in place."""
    if not active():
        return
    for t in tensors:
        dist.broadcast(t.data if isinstance(t, torch.nn.Parameter) else t, src)


def barrier() -> None:
    if active():
        dist.barrier()
