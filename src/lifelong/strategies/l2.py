"""L2 regularisation towards the previous task's parameters: the ablation baseline for EWC/SI/MAS
(every parameter equally important):  L(θ) = L_t(θ) + (λ/2) · sum_i (θ_i − θ*_i)^2, θ* = the
parameters after the previous task (Kirkpatrick et al. 2017 use it as their "L2" baseline)."""

from __future__ import annotations

import torch

from ..data import Task
from ..configs import non_negative
from .penalty import QuadraticPenalty


class L2(QuadraticPenalty):
    """L2 pull to the last task's weights. lam: λ (default 0.01, the best of 0.01-10 in the sweep in
    BENCHMARKS.md, scored on validation data held out of training: docs/defaults.md); step: as for EWC."""

    name = "l2"
    summary = "plain L2 pull to the previous task's parameters (ablation baseline)"
    option_names = {"lam": "lambda"}

    def __init__(self, lam: float = 0.01, step: str = "explicit") -> None:
        super().__init__(step)
        non_negative({"lam": lam}, "l2")
        self.lam = lam

    @property
    def scale(self) -> float:
        return self.lam / 2

    def after_task(self, task: Task) -> None:
        anchor = self.parameters_now()
        self.consolidate({n: torch.ones_like(p) for n, p in anchor.items()}, anchor, keep_old_anchors=False, decay=0.0)
