"""Averaged gradient episodic memory (A-GEM).

Chaudhry, Ranzato, Rohrbach & Elhoseiny 2019, "Efficient Lifelong Learning with A-GEM" (ICLR),
Eqs. 10-11. With g the gradient of the current batch's loss and g_ref the gradient of the loss on a
batch drawn at random from the episodic memory of all past tasks, the step uses

    g~ = g - (g . g_ref / g_ref . g_ref) g_ref    if g . g_ref < 0,    else g~ = g,

the projection of g onto the half-space where the average memory loss does not rise (to first
order). The projection is computed without a branch: the coefficient is min(g . g_ref, 0) / |g_ref|^2,
so no value is read back from the device.

Memory: an equal quota per task (`per_task`), filled with a random sample of each task's training
data when the task ends, so the reference batch holds past tasks only (the paper's episodic memory).
Task-free streams (online A-GEM): no task ends, so the memory is a reservoir of the stream, updated with
each batch after its step (A-GEM with a reservoir, as in Buzzega et al. 2020's "A-GEM-R"), and the
reference batch is drawn from all that was met before the batch.
Hyper-parameters: `buffer_size` (total over tasks; the paper stores a fixed number of samples per
task), `replay_batch_size` (the size of the reference batch, a random subset of the memory; 128
here, the Trainer's batch size). A-GEM has no other hyper-parameter.

Data-parallel training: every rank holds the same memory (filled from the same data with the same
generator) and draws the same reference batch; each computes g_ref on its share of it and the shares'
gradients are all-reduced (`Rehearsal.replay_gradient`), so with the averaged g every rank applies the
same projection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..data import TASK_FREE, Stream, Task
from .base import TASK_BASED
from .replay import Rehearsal, check_whole

if TYPE_CHECKING:
    from ..training import Trainer


def project(grads: list[Tensor], ref: list[Tensor]) -> list[Tensor]:
    """A-GEM's Eq. 11 on gradients given parameter by parameter."""
    dot = torch.stack([(g * r).sum() for g, r in zip(grads, ref)]).sum()
    norm = torch.stack([r.pow(2).sum() for r in ref]).sum()
    coef = dot.clamp(max=0) / norm.clamp(min=torch.finfo(norm.dtype).tiny)
    return [g - coef * r for g, r in zip(grads, ref)]


class AGEM(Rehearsal):
    """After the backward pass, project the gradient against one averaged memory gradient."""

    name = "agem"
    summary = "averaged gradient episodic memory: one projection per step (Chaudhry et al. 2019)"
    policy = "per_task"
    scenarios = TASK_BASED | {TASK_FREE}

    def __init__(self, buffer_size: int = 500, replay_batch_size: int = 128) -> None:
        check_whole(self, buffer_size=buffer_size, replay_batch_size=replay_batch_size)
        self.buffer_size, self.replay_batch_size = buffer_size, replay_batch_size

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        self.policy = "reservoir" if stream.scenario == TASK_FREE else "per_task"
        super().attach(trainer, stream)

    def after_backward(self) -> None:
        memory = self.memory
        if not memory.filled:
            return
        params = [p for p in self.model.parameters() if p.requires_grad]
        ref = self.replay_gradient(memory.sample(self.replay_batch_size), params)
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        for p, g in zip(params, project(grads, ref)):
            p.grad = g

    def after_step(self) -> None:
        if self.policy == "reservoir":
            self.memory.add(*self.trainer.global_batch())

    def after_task(self, task: Task) -> None:
        self.memory.add_split(task.train, task.id, self.trainer.generator)
