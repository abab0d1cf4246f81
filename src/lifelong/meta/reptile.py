"""Reptile.

Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms" (arXiv:1803.02999),
Algorithm 2 (batched version): for each of n tasks, W_i = the parameters after k steps of SGD on the
task's data starting from phi; then

    phi <- phi + epsilon * (1/n) sum_i (W_i - phi),

with the outer step size epsilon annealed linearly to 0 over meta-training (as in the paper's
experiments). No second derivatives, no support/query split: the inner steps use all of a
meta-training task's samples (support and query); at meta-test, adaptation uses the support set
only, like every other method.

Hyper-parameters (paper, sinusoid / few-shot): `inner_lr` 0.02 / 1e-3 (Adam there; plain SGD here),
`inner_steps` k = 32 / 5-10, `meta_lr` epsilon = 1.0 (annealed), `meta_batch` n = 1 / 5.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from .. import distributed
from ..data.episodes import Episodes
from .base import MetaLearner, adapt_and_predict, check_positive, global_mean, inner_loop, shard
from .tasks import TaskSet


class Reptile(MetaLearner):
    """Move the initialisation towards the mean of the task-adapted parameters."""

    name = "reptile"
    summary = "first-order meta-learning: step towards task-adapted weights (Nichol et al. 2018)"
    classification_defaults: ClassVar[dict[str, Any]] = {"inner_lr": 0.1, "inner_steps": 5}

    def __init__(self, model: nn.Module, tasks: TaskSet, inner_lr: float = 0.02, inner_steps: int = 10,
                 meta_lr: float = 1.0, meta_batch: int = 5) -> None:
        check_positive(self.name, ("inner_steps", "meta_batch"), inner_lr=inner_lr, inner_steps=inner_steps,
                       meta_lr=meta_lr, meta_batch=meta_batch)
        super().__init__(model, tasks)
        self.inner_lr, self.inner_steps, self.meta_lr, self.meta_batch = inner_lr, inner_steps, meta_lr, meta_batch

    def meta_step(self, episodes: Episodes) -> Tensor:
        """Under data-parallel training each rank adapts to its share of the episodes and the mean moves
        (W_i - phi) are averaged over the ranks, weighted by their episodes (they travel as the gradients)."""
        model, loss, mine = self.model, self.loss, shard(episodes)
        x, y = torch.cat([mine.xs, mine.xq], 1), torch.cat([mine.ys, mine.yq], 1)
        phi = {k: v.detach() for k, v in self.params().items()}

        def one(xt: Tensor, yt: Tensor) -> tuple[dict[str, Tensor], Tensor]:
            w = inner_loop(model, phi, xt, yt, loss, self.inner_steps, self.inner_lr, True)
            return w, loss(functional_call(model, w, (xt,)), yt)

        params = self.params()
        mean_loss = torch.zeros((), device=x.device)
        for p in params.values():
            p.grad = None
        if len(x):  # a rank's share of a meta-batch smaller than the world is empty
            w, task_losses = vmap(one)(x, y)
            mean_loss = task_losses.mean().detach()
            with torch.no_grad():
                for k, p in params.items():
                    p.grad = w[k].mean(0) - p
        distributed.average_gradients(list(model.parameters()), len(x))
        epsilon = self.meta_lr * (1.0 - self.progress)
        with torch.no_grad():
            for p in params.values():
                if p.grad is not None:
                    p.add_(p.grad, alpha=epsilon)
                p.grad = None
        return global_mean(mean_loss, len(x), len(episodes.yq))

    def predict(self, episodes: Episodes, steps: int) -> Tensor:
        return adapt_and_predict(self, self.params(), episodes, steps, self.inner_lr)
