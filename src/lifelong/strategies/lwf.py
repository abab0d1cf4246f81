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
every epoch); rows a `batch` hook appends (replayed samples) go through the teacher at the step.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from ..data import Split, Task
from ..errors import ConfigError
from ..losses import soft_cross_entropy
from ..models import forward_all
from .base import Strategy


class LwF(Strategy):
    """LwF. alpha: the distillation weight λ_o (default 1.0, the paper's); temperature: T (default 2.0,
    the paper's)."""

    name = "lwf"
    summary = "Learning without Forgetting (Li & Hoiem 2017): distil the previous model's old outputs"

    def __init__(self, alpha: float = 1.0, temperature: float = 2.0) -> None:
        if alpha < 0 or temperature <= 0:
            raise ConfigError(f"--lwf-alpha must be >= 0 and --lwf-temperature > 0, got {alpha}, {temperature}")
        self.alpha, self.temperature = alpha, temperature
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

    def loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor | None:
        if self.teacher is None or not self.groups:
            return None
        old = self.teacher_outputs(x)
        new = self.trainer.logits
        total = sum(soft_cross_entropy(new, old, self.temperature) if g is None else
                    soft_cross_entropy(new[:, g], old[:, g], self.temperature) for g in self.groups)
        return self.alpha * total

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
            self._recorded = (data, forward_all(self.teacher, data, trainer.device, trainer.eval_batch_size))
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
        self.teacher.load_state_dict({k[len("teacher."):]: v for k, v in state.items()})
