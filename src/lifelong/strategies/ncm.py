"""Nearest class mean on frozen features.

Mensink, Verbeek, Perronnin & Csurka 2013, "Distance-Based Image Classification: Generalizing to New
Classes at Near-Zero Cost" (TPAMI), the NCM classifier: p(c | x) proportional to
exp(-1/2 ||f(x) - mu_c||^2), with mu_c the mean feature of class c, so the logits are
-1/2 ||f(x) - mu_c||^2, with f the model's pre-logits (`models.pre_logits`, the classifier's input). The
backbone is never trained: use a pretrained one (`lifelong run --backbone PATH`).
Each task's training samples pass once through it (features computed once) and update the running
sums and counts of their classes; a class not yet seen is never predicted. In a task-free stream each
incoming batch updates them as it arrives (`observe`). No hyper-parameters.
Data-parallel training: each rank computes the features of its share of the task's samples, the shares
are gathered in order (`gathered_outputs`) and every rank makes the same update, so the statistics
are the same on every rank and equal to one process's (SLDA's recursion depends on the order).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import check_contract, pre_logits
from ..data.stream import TASK_FREE
from .base import TASK_BASED, Strategy, gathered_outputs
from .importance import eval_mode

if TYPE_CHECKING:
    from ..data import Stream, Task
    from ..training import Trainer


class NCM(Strategy):
    """Class means of frozen features, updated once per task; predicts the nearest mean."""

    name = "ncm"
    summary = "nearest class mean on frozen features, no gradient training (Mensink et al. 2013)"
    scenarios = TASK_BASED | {TASK_FREE}

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        check_contract(trainer.model, self.name)
        super().attach(trainer, stream)
        self.counts = torch.zeros(stream.n_outputs, device=trainer.device)
        self.sums: Tensor | None = None  # (classes, feature width), allocated with the first features

    def training_tasks(self, task: Task, stream: Stream) -> list[Task]:
        return []  # no gradient training: after_task reads the task's data once

    def after_task(self, task: Task) -> None:
        model, dev, size = self.model, self.trainer.device, self.trainer.eval_batch_size
        with eval_mode(model):
            z = gathered_outputs(functools.partial(pre_logits, model), task.train, dev, 256)  # `extract`'s batches
        y = task.train.y.to(dev)
        for i in range(0, len(y), size):  # the samples in the task's order, as a stream
            self.update(z[i : i + size], y[i : i + size])

    def observe(self, x: Tensor, y: Tensor) -> None:
        with eval_mode(self.model), torch.no_grad():
            z = pre_logits(self.model, x)
        self.update(z, y)

    def update(self, z: Tensor, y: Tensor) -> None:
        """Add the features `z` of samples of classes `y` to the running sums and counts."""
        onehot = F.one_hot(y, len(self.counts)).to(z.dtype)
        if self.sums is None:
            self.sums = torch.zeros(len(self.counts), z.shape[1], dtype=z.dtype, device=z.device)
        self.sums += onehot.T @ z
        self.counts += onehot.sum(0)

    @property
    def means(self) -> Tensor:
        assert self.sums is not None
        return self.sums / self.counts.clamp(min=1)[:, None]

    def scores(self, z: Tensor) -> Tensor:
        """-1/2 squared distance of each feature vector to each class mean."""
        return -0.5 * torch.cdist(z, self.means).pow(2)

    def predict(self, x: Tensor, t: Tensor) -> Tensor:
        if self.sums is None:  # nothing seen yet
            return torch.zeros(len(x), len(self.counts), device=x.device)
        out = self.scores(pre_logits(self.model, x))
        return out.masked_fill(self.counts == 0, torch.finfo(out.dtype).min)

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.counts} if self.sums is None else {"counts": self.counts, "sums": self.sums}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts, self.sums = state["counts"], state.get("sums")
