"""iCaRL: incremental classifier and representation learning.

Rebuffi, Kolesnikov, Sperl & Lampert 2017, "iCaRL: Incremental Classifier and Representation
Learning" (CVPR), Algorithms 1-5, with phi(x) the L2-normalised pre-logits (`models.pre_logits`, the
classifier's input) and g_y(x) = sigmoid of logit y:

- Representation (Alg. 3): train on the new task's data joined with all exemplars, minimising the
  binary cross-entropy over the classes seen so far, with one-hot targets for the new classes and
  the previous network's outputs q_i^y = g_y^old(x_i) for the old classes (distillation):

      l = - sum_i [ sum_{y new} d(y = y_i) log g_y(x_i) + d(y != y_i) log(1 - g_y(x_i))
                    + sum_{y old} q_i^y log g_y(x_i) + (1 - q_i^y) log(1 - g_y(x_i)) ]

  (summed over classes, averaged over the batch): iCaRL's `task_loss`, in place of the Trainer's
  criterion.
- Exemplars (Alg. 4-5): m = ceil(K / classes seen) per class. A new class's exemplars are chosen by
  herding, p_k = argmin_x |mu - (phi(x) + sum_{j<k} phi(p_j)) / k| with mu the class's mean feature;
  reducing a set keeps its first m (the memory's class-balanced policy drops the last stored).
- Classification (Alg. 1): nearest mean of exemplars, y* = argmin_y |phi(x) - mu_y|, with mu_y the
  (re-normalised) mean feature of class y's exemplars, computed after each task.

Scenarios: class-incremental (as in the paper) and task-incremental (the nearest mean is taken among
the task's classes). Domain-incremental streams share labels across tasks, so there are no "new" and
"old" classes to distil between: the Trainer refuses them (`scenarios`). Hyper-parameter: `buffer_size` K
(2000 in the paper's CIFAR-100 experiments; 500 here, this project's benchmark).

Data-parallel training: each rank computes the features of its share of the task's samples and the
shares are gathered (`gathered_outputs`), so every rank herds the same exemplars into the same memory;
the class means come from that memory, the same on every rank.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import strip_prefix
from ..data import Split, Stream, Task
from ..models import check_contract, pre_logits
from .base import gathered_outputs
from .replay import Rehearsal, check_whole

if TYPE_CHECKING:
    from ..training import Trainer


def herding(features: Tensor, labels: Tensor, classes: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """Up to `m` exemplars per class of `classes`, in herding order: (C, k) indices into `features`
    and a (C, k) mask of which are real (a class with fewer than m samples gives them all)."""
    members = labels[None] == classes[:, None]
    n = members.sum(1)
    width = int(n.max())
    order = members.float().argsort(dim=1, descending=True, stable=True)[:, :width]  # each class's samples first
    real = torch.arange(width, device=n.device) < n[:, None]
    phi = features[order] * real[..., None]
    mu = phi.sum(1) / n[:, None]
    norms, rows = phi.pow(2).sum(2), torch.arange(len(classes), device=n.device)
    total, taken, picks = torch.zeros_like(mu), ~real, []
    for k in range(1, min(m, width) + 1):
        w = mu - total / k  # |mu - (S + phi)/k|^2 = |w|^2 - 2 w.phi / k + |phi|^2 / k^2
        cost = norms / k**2 - 2 / k * torch.bmm(w[:, None], phi.mT).squeeze(1)  # a row times phi^T: ~2x a column
        pick = cost.masked_fill(taken, torch.inf).argmin(1)
        picks.append(pick)
        taken[rows, pick] = True
        total += phi[rows, pick]
    return order.gather(1, torch.stack(picks, 1)), torch.arange(len(picks), device=n.device) < n[:, None]


class ICaRL(Rehearsal):
    """Herded exemplars, distillation through sigmoid outputs, nearest-mean-of-exemplars prediction."""

    name = "icarl"
    summary = "herding exemplars, distillation, nearest-mean classifier (Rebuffi et al. 2017)"
    policy = "class_balanced"
    scenarios = frozenset({"task", "class"})  # it needs classes that are new in each task

    def __init__(self, buffer_size: int = 500) -> None:
        check_whole(self, buffer_size=buffer_size)
        self.buffer_size = buffer_size

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        check_contract(trainer.model, "icarl (it classifies the pre-logits by nearest mean)")
        super().attach(trainer, stream)
        self.seen = torch.zeros(stream.n_outputs, dtype=torch.bool, device=trainer.device)
        self.old_units = self.seen.clone()
        self.old: nn.Module | None = None  # the network as it was before the current task
        self.means: Tensor | None = None

    def features(self, x: Tensor) -> Tensor:
        return F.normalize(pre_logits(self.model, x), dim=1)

    def before_task(self, task: Task) -> None:
        if self.memory.filled:
            self.old = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.old_units = self.seen.clone()
        self.seen |= self.unit_masks[task.id]

    def training_tasks(self, task: Task, stream: Stream) -> list[Task]:
        if not self.memory.filled:
            return [task]
        m = self.memory.stored()
        return [task] + [dataclasses.replace(stream[k], train=Split(m.x[m.t == k], m.y[m.t == k]))
                         for k in m.t.unique().tolist()]

    def task_loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor,
                  criterion: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        task_il = self.stream.scenario == "task"  # task-IL: out is masked outside each sample's task
        valid = self.seen & self.unit_masks[t] if task_il else self.seen.expand(len(t), -1)
        target = F.one_hot(y, out.shape[1]).to(out.dtype)
        if self.old is not None:
            with torch.no_grad():
                target = torch.where(self.old_units, torch.sigmoid(self.old(x)), target)
        bce = F.binary_cross_entropy_with_logits(out.masked_fill(~valid, 0.0), target, reduction="none")
        return (bce * valid).sum(1).mean()

    @torch.no_grad()
    def after_task(self, task: Task) -> None:
        self.model.eval()
        train, step = task.train, self.trainer.eval_batch_size
        phi = gathered_outputs(self.features, train, self.device, step)  # each rank its share, gathered
        y = train.y.to(self.device)
        idx, real = herding(phi, y, y.unique(), -(-self.buffer_size // int(self.seen.sum())))
        x, labels = train.batch(idx[real].to(train.y.device))  # class by class, each in herding order
        labels = labels.to(self.device)
        self.memory.add(x.to(self.device), labels, torch.full_like(labels, task.id))
        m = self.memory.stored()
        f = torch.cat([self.features(x) for x in m.x.split(step)])
        sums = torch.zeros(len(self.seen), f.shape[1], device=f.device).index_add_(0, m.y, f)
        self.means = F.normalize(sums, dim=1)
        self.model.train()

    def predict(self, x: Tensor, t: Tensor) -> Tensor:
        if self.means is None:
            return self.model(x)
        score = -torch.cdist(self.features(x), self.means)
        return score.masked_fill(~self.seen, torch.finfo(score.dtype).min)

    def state_dict(self) -> dict[str, Any]:
        if self.buffer is None:
            return {}
        state = {**super().state_dict(), "seen": self.seen, "old_units": self.old_units}
        state |= {f"old.{k}": v for k, v in self.old.state_dict().items()} if self.old is not None else {}
        return state | ({"means": self.means} if self.means is not None else {})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        dev = self.device
        self.seen, self.old_units = state["seen"].to(dev), state["old_units"].to(dev)
        old = {k: v.to(dev) for k, v in strip_prefix(state, "old.").items()}
        self.old = None
        if old:
            self.old = copy.deepcopy(self.model).eval().requires_grad_(False)
            self.old.load_state_dict(old)
        self.means = state["means"].to(dev) if "means" in state else None
