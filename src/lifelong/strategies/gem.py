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

The t memory gradients come from one forward and one backward pass over the whole memory, not from t
passes. When every trainable parameter is in a Linear/Conv1d/Conv2d layer (`importance.identity_layers`)
and no BatchNorm mixes the samples, the per-layer identity is used: the backward pass of sum_n ce_n / N_k(n)
goes only to the layers' outputs, and task k's gradient of a layer's weight is g_k' a_k, its output
gradients times its inputs over task k's samples (and their positions, for convolutions), from the memory
sorted by task once when it changes: the matrix products cover the memory once in all. Otherwise (other
trainable layers, BatchNorm on batch statistics, a layer run twice) a batched backward pass of the t
per-task losses (`is_grads_batched`: a vmap over them) gives G, at about t backward passes' cost.
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
from torch import Tensor, nn

from .. import distributed
from ..data import Task
from .importance import Layer, identity_layers, layer_grads, positions
from .replay import Rehearsal, check_non_negative, check_whole, each

if TYPE_CHECKING:
    from ..data import Stream
    from ..training import Trainer


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


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
        count in the whole memory) and the rows are summed over the ranks: the same G on every rank.
        The per-layer identity where the model allows it (see the module's docstring), else `batched`."""
        layers = identity_layers(self.model)
        mixing = any(isinstance(m, BATCH_NORMS) and (m.training or not m.track_running_stats)
                     for m in self.model.modules())  # batch statistics: a sample's loss depends on the others
        G = None if layers is None or mixing else self.layer_rows(layers, params)
        G = self.batched(params) if G is None else G
        distributed.all_reduce_sum([G])
        return G

    def layer_rows(self, layers: list[Layer], params: list[Tensor]) -> Tensor | None:
        """This rank's share of G by the per-layer identity: one backward pass to the layers' outputs, then
        per task its samples' output gradients times inputs (None if a layer does not run once)."""
        mine, sizes, counts = self.sorted

        def loss(logits: Tensor) -> Tensor:
            return (F.cross_entropy(self.stream.mask(logits, mine.t), mine.y, reduction="none") / counts).sum()

        captured = layer_grads(self.model, layers, mine.x, loss)
        if captured is None:
            return None
        G = torch.zeros(len(sizes), sum(p.numel() for p in params), dtype=params[0].dtype, device=params[0].device)
        columns = dict(zip(map(id, params), G.split([p.numel() for p in params], 1)))  # each parameter's, in G
        for m, (a, g) in zip(layers, captured):
            a, g = positions(m, a, g)
            for k, (ak, gk) in enumerate(zip(a.split(sizes), g.split(sizes))):  # written in place: no copies
                gk = gk.flatten(0, 1)
                torch.mm(gk.T, ak.flatten(0, 1), out=columns[id(m.weight)][k].view(len(m.weight), -1))
                if m.bias is not None and id(m.bias) in columns:
                    torch.sum(gk, 0, out=columns[id(m.bias)][k])
        return G

    def batched(self, params: list[Tensor]) -> Tensor:
        """This rank's share of G by a batched backward pass of the t per-task losses (any model)."""
        (mine, _, counts), t = self.sorted, self.tasks_done
        ce = F.cross_entropy(self.stream.mask(self.model(mine.x), mine.t), mine.y, reduction="none")
        losses = (F.one_hot(mine.t, t).T.to(ce.dtype) / counts) @ ce
        eye = torch.eye(t, dtype=losses.dtype, device=losses.device)
        rows = torch.autograd.grad(losses, params, grad_outputs=eye, is_grads_batched=True, allow_unused=True)
        return torch.cat([(torch.zeros(t, p.numel(), device=p.device) if r is None else r.reshape(t, -1))
                          for p, r in zip(params, rows)], 1)

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
        self.tasks_done += 1
        self.index_memory()  # the memory changes only here

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tasks_done": self.tasks_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.tasks_done = int(state.get("tasks_done", 0))
        if self.tasks_done:
            self.index_memory()

    def index_memory(self) -> None:
        """This rank's share of the memory sorted by task: its samples, each task's number of them, and each
        sample's task's count in the whole memory (its loss is divided by it)."""
        stored = self.memory.stored()
        counts = torch.bincount(stored.t, minlength=self.tasks_done)  # each task's, in the whole memory
        mine = each(stored, distributed.shard)
        order = torch.argsort(mine.t, stable=True)
        mine = each(mine, lambda v: v[order])
        sizes = torch.bincount(mine.t, minlength=self.tasks_done).tolist()
        self.sorted = (mine, sizes, counts.clamp(min=1)[mine.t])
