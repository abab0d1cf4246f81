"""Knowledge distillation, teacher to student (Hinton, Vinyals & Dean 2015).

The student minimises  CE(y, student(x)) + α · T² · H(softmax(teacher(x)/T), softmax(student(x)/T)),
the mechanism LwF uses against forgetting, here used to compress a large teacher into a small
student. The T² factor keeps the soft term's gradients on the scale of the hard one (Hinton et al.,
section 2). Training runs through the library's one loop (`Trainer`) on a single-task stream.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data import Dataset, Split, from_tasks
from ..configs import non_negative
from ..losses import soft_cross_entropy
from ..strategies import Strategy
from ..training import Result, Trainer


class Distill(Strategy):
    """Adds α · T² · soft cross-entropy against a frozen teacher's outputs to the student's loss."""

    name = "distill"

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 1.0) -> None:
        non_negative({"alpha": alpha}, "distill")
        non_negative({"temperature": temperature}, "distill", positive=True)
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature, self.alpha = temperature, alpha

    def loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        with torch.no_grad():
            soft = self.teacher(x)
        return self.alpha * self.temperature**2 * soft_cross_entropy(self.trainer.logits, soft, self.temperature)

    def options(self) -> dict[str, float]:
        return {"temperature": self.temperature, "alpha": self.alpha}


def distill(teacher: nn.Module, student: nn.Module, data: Dataset | tuple[Split, Split], *,
            temperature: float = 4.0, alpha: float = 1.0, **trainer_options: object) -> Result:
    """Train `student` (in place) on `data` with soft targets from `teacher`; returns the Result
    (its matrix is the student's test accuracy). `trainer_options` go to `Trainer` (epochs, lr, ...)."""
    teacher = teacher.to(torch.device(str(trainer_options.get("device", "cpu"))))
    stream = from_tasks([data], scenario="class", name="distill")
    trainer = Trainer(student, Distill(teacher, temperature, alpha), **trainer_options)  # type: ignore[arg-type]
    return trainer.fit(stream)
