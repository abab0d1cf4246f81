"""Gradient episodic memory (GEM).

Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual Learning" (NeurIPS), Section 3.
With g the gradient of the current batch's loss and G the (t x p) matrix whose row k is the
gradient of the loss on the episodic memory of past task k, the step uses the closest vector to g
(in Euclidean norm) that increases no past task's memory loss:

    minimise 1/2 |g~ - g|^2  subject to  G g~ >= 0      (the projection of the paper's QP)

solved through its dual QP over t variables:

    v* = argmin_{v >= 0}  1/2 v' G G' v + g' G' v,        g~ = G' v* + g.

As in the paper (and its code's `memory_strength`), `margin` gamma >= 0 is added to v* (the dual is
solved over v >= gamma), which biases the update towards positive backward transfer. When no
constraint is violated (G g >= 0) the gradient is left unchanged.

The dual is solved exactly by an active-set method (Lawson & Hanson 1974, NNLS, in the Gram form
of Bro & de Jong 1997) in float64 on the host: no QP package is needed. It terminates in finitely
many steps with the KKT conditions met to round-off (tolerance 1e-12 relative). The t x t Gram matrix
and the t dot products are the only values read back per step (t = tasks seen so far).

The t memory gradients come from one forward pass over the whole memory and one batched backward
pass (`is_grads_batched`: a vmap over the t per-task losses), not from t separate passes.
Memory: an equal quota per task (`per_task`), filled with a random sample of each task's training
data when the task ends. Hyper-parameters: `buffer_size` (total; the paper stores 256 samples per
task), `margin` (gamma; 0.5 in the paper's experiments).

Data-parallel training: every rank holds the same memory (filled from the same data with the same
generator); each computes G on its share of it and the shares' G are all-reduced (`memory_gradients`),
so with the averaged g every rank solves the same QP and applies the same projection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import distributed
from ..data import Task
from .replay import Rehearsal, check_non_negative, check_whole, each

if TYPE_CHECKING:
    from ..data import Stream
    from ..training import Trainer


def nonnegative_qp(gram: Tensor, lin: Tensor, max_iter: int = 1000) -> Tensor:
    """argmin_{u >= 0} 1/2 u' gram u + lin' u for a positive semi-definite `gram` (active set)."""
    n = len(lin)
    tol = 1e-12 * max(1.0, float(gram.diagonal().abs().max()), float(lin.abs().max()))
    u, passive = torch.zeros(n, dtype=gram.dtype), torch.zeros(n, dtype=torch.bool)

    def solve() -> Tensor:  # the unconstrained optimum over the passive set, zero elsewhere
        s, idx = torch.zeros_like(u), passive.nonzero().flatten()
        s[idx] = torch.linalg.lstsq(gram[idx][:, idx], -lin[idx, None]).solution.flatten()
        return s

    for _ in range(max_iter):
        w = -(gram @ u + lin)  # minus the gradient: where raising a zero variable helps
        if passive.all() or float(w[~passive].max()) <= tol:
            break
        passive[torch.where(passive, -torch.inf, w).argmax()] = True
        s = solve()
        while passive.any() and float(s[passive].min()) <= tol:
            blocked = passive & (s <= tol)  # step from u towards s until the first of them reaches 0
            alpha = (u[blocked] / (u[blocked] - s[blocked]).clamp(min=tol)).min().clamp(max=1.0)
            u = u + alpha * (s - u)
            passive &= u > tol
            u = torch.where(passive, u, 0.0)
            s = solve()
        u = s
    return u


class GEM(Rehearsal):
    """After the backward pass, project the gradient so that no past task's memory loss rises."""

    name = "gem"
    summary = "gradient episodic memory: a QP projection per step (Lopez-Paz & Ranzato 2017)"
    policy = "per_task"

    def __init__(self, buffer_size: int = 500, margin: float = 0.5) -> None:
        check_whole(self, buffer_size=buffer_size)
        check_non_negative(self, margin=margin)
        self.buffer_size, self.margin = buffer_size, margin
        self.tasks_done = 0

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        self.tasks_done = 0

    def memory_gradients(self, params: list[Tensor]) -> Tensor:
        """(t, p): row k is the gradient of the mean loss on task k's memory. Under data-parallel training
        each rank computes the rows on its share of the memory (each sample's loss divided by its task's
        count in the whole memory) and the rows are summed over the ranks: the same G on every rank."""
        m, t = self.stored, self.tasks_done
        counts = F.one_hot(m.t, t).T.sum(1, keepdim=True)  # each task's samples in the whole memory
        mine = each(m, distributed.shard)
        ce = F.cross_entropy(self.stream.mask(self.model(mine.x), mine.t), mine.y, reduction="none")
        weight = F.one_hot(mine.t, t).T.to(ce.dtype)
        losses = (weight / counts.to(ce.dtype).clamp(min=1)) @ ce
        eye = torch.eye(t, dtype=losses.dtype, device=losses.device)
        rows = torch.autograd.grad(losses, params, grad_outputs=eye, is_grads_batched=True, allow_unused=True)
        G = torch.cat([(torch.zeros(t, p.numel(), device=p.device) if r is None else r.reshape(t, -1))
                       for p, r in zip(params, rows)], 1)
        distributed.all_reduce_sum([G])
        return G

    def after_backward(self) -> None:
        if self.tasks_done == 0:
            return
        params: list[Tensor] = [p for p in self.model.parameters() if p.requires_grad]
        g = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in params])
        G = self.memory_gradients(params)
        host = torch.cat([G @ G.T, (G @ g)[:, None]], 1).double().cpu()  # the one read-back per step
        gram, dots = host[:, :-1], host[:, -1]
        if bool((dots >= 0).all()):
            return
        gamma = torch.full_like(dots, self.margin)  # v = u + gamma, u >= 0
        v = nonnegative_qp(gram, dots + gram @ gamma) + gamma
        g = g + G.T @ v.to(G)
        for p, piece in zip(params, g.split([p.numel() for p in params])):
            p.grad = piece.view_as(p)

    def after_task(self, task: Task) -> None:
        self.memory.add_split(task.train, task.id, self.trainer.generator)
        self.stored = self.memory.stored()  # the memory changes only here
        self.tasks_done += 1

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tasks_done": self.tasks_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.tasks_done = int(state.get("tasks_done", 0))
        if self.tasks_done:
            self.stored = self.memory.stored()
