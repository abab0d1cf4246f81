"""Learning without Forgetting (Li & Hoiem 2017, eq. 3 / Algorithm 1).

Before task t the current model is frozen as a teacher; while task t is learnt, the loss on each
batch becomes

    L = L_new(y, ŷ) + α · sum_g  −(1/B) sum_n sum_{c∈g} y'_nc log ŷ'_nc,
    y' = softmax(teacher/T), ŷ' = softmax(student/T)

where g runs over the old outputs: each earlier task's head (task-incremental), the units of all
earlier classes (class-incremental), or all outputs (domain-incremental: old and new tasks share them).
No data is stored. As in the paper's Algorithm 1 (Y_o ← CNN(X_n, θ_s, θ_o) before training), the
teacher's outputs on the task's training inputs are recorded once, in large no-grad batches, and looked
up by sample index at every step (a fixed teacher in eval mode gives each input the same outputs in
every epoch); rows a `batch` hook appends (replayed samples) go through the teacher at the step. Under
data-parallel training each rank records its share of the outputs and the shares are gathered
(`gathered_outputs`); the distillation term is a mean over each rank's rows, so the Trainer's averaged
gradient is the whole batch's.

Warm-up (Section 3, "we first freeze θ_s and θ_o and train θ_n to convergence"), off by default: with
`warmup=E`, each task after the first begins with E epochs that train only the new task's output units
(rows of the output layer) with L_new, the body and the old units frozen (BatchNorm statistics too),
then joint training as above. The default, 0, keeps the joint training alone (the setting every
figure before issue 18 was measured in); its effect is measured in BENCHMARKS.md.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from ..checkpoint import strip_prefix
from ..data import Split, Task
from ..configs import non_negative
from ..errors import ConfigError
from ..losses import soft_cross_entropy
from ..models.heads import grow_heads, output_layer
from .base import Strategy, gathered_outputs


class LwF(Strategy):
    """LwF. alpha: the distillation weight λ_o (default 1.0, the paper's); temperature: T (default 2.0,
    the paper's); warmup: epochs training the new task's head alone before joint training (default 0: none)."""

    name = "lwf"
    summary = "Learning without Forgetting (Li & Hoiem 2017): distil the previous model's old outputs"

    def __init__(self, alpha: float = 1.0, temperature: float = 2.0, warmup: int = 0) -> None:
        non_negative({"alpha": alpha}, "lwf")
        non_negative({"temperature": temperature}, "lwf", positive=True)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ConfigError(f"`warmup` takes a whole number of epochs >= 0, got {warmup!r}", "lwf.warmup")
        self.alpha, self.temperature, self.warmup = alpha, temperature, warmup
        self.teacher: nn.Module | None = None
        self.groups: list[Tensor | None] = []  # None: all outputs (no gather)
        self._recorded: tuple[Split, Tensor] | None = None  # (training split, teacher outputs on it)

    def before_task(self, task: Task) -> None:
        old = self.stream.tasks[: task.id]
        if not old:
            self.groups = []
        elif self.stream.scenario == "task":
            self.groups = [torch.tensor(k.units) for k in old]
        elif self.stream.scenario == "class":
            self.groups = [torch.tensor(sorted({u for k in old for u in k.units}))]
        else:
            self.groups = [None]
        self.groups = [None if g is None else g.to(self.trainer.device) for g in self.groups]
        if self.warmup and self.teacher is not None:
            self.warm_up(task)

    def warm_up(self, task: Task) -> None:
        """`warmup` epochs of L_new on `task` that change only the output layer's rows of its units."""
        head = output_layer(self.model)
        if head is None:
            raise ConfigError(f"`warmup` trains the new task's rows of the output layer and "
                              f"{type(self.model).__name__} has none: use a model with a linear head (mlp, cnn)",
                              "lwf.warmup")
        trainable = {p: p.requires_grad for p in self.model.parameters()}
        new = torch.zeros(head.out_features, dtype=torch.bool, device=head.weight.device)
        new[list(task.units)] = True
        keep_rows = [p.register_hook(lambda g: g * new.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))
                     for p in head.parameters()]
        self.model.requires_grad_(False).eval()
        head.requires_grad_(True)
        groups, self.groups = self.groups, []  # no distillation: the frozen old outputs cannot change
        grow_heads(self.model, task.units)
        try:
            self.trainer.train(task.train, torch.full_like(task.train.y, task.id), self.warmup, "warm-up")
        finally:
            for p, flag in trainable.items():
                p.requires_grad_(flag)
            for hook in keep_rows:
                hook.remove()
            self.model.train()
            self.groups = groups

    def loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor | None:
        if self.teacher is None or not self.groups:
            return None
        old = self.teacher_outputs(x)
        new = self.trainer.logits
        terms = [soft_cross_entropy(new, old, self.temperature) if g is None else
                 soft_cross_entropy(new[:, g], old[:, g], self.temperature) for g in self.groups]
        return self.alpha * sum(terms[1:], terms[0])

    @torch.no_grad()
    def teacher_outputs(self, x: Tensor) -> Tensor:
        """The teacher's outputs on the batch `x`: recorded ones for its first rows (those the Trainer
        drew from the split it trains on, `trainer.batch_index`), computed ones for appended rows.
        Outside the Trainer's loop, the teacher's forward pass on `x`."""
        assert self.teacher is not None
        trainer = self.trainer
        data, idx = trainer.train_data, trainer.batch_index
        if data is None:
            return self.teacher(x)
        if self._recorded is None or self._recorded[0] is not data:
            self._recorded = (data, gathered_outputs(self.teacher, data, trainer.device, trainer.eval_batch_size))
        old = self._recorded[1][idx.to(self._recorded[1].device)]
        return old if len(x) == len(idx) else torch.cat([old, self.teacher(x[len(idx):])])

    def after_task(self, task: Task) -> None:
        self.teacher = copy.deepcopy(self.model).eval().requires_grad_(False)
        self._recorded = None

    def state_dict(self) -> dict[str, Any]:
        if self.teacher is None:
            return {}
        return {f"teacher.{k}": v for k, v in self.teacher.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self.teacher = None
            return
        self.teacher = copy.deepcopy(self.model).eval().requires_grad_(False)
        self._recorded = None
        self.teacher.load_state_dict(strip_prefix(state, "teacher."))
