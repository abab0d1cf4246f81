"""Memory Aware Synapses (Aljundi et al. 2018, eqs. 2-4).

Importance is the sensitivity of the learnt function's output, not of the loss, so it needs no
labels: Ω_ij = (1/N) sum_n |∂ ‖F(x_n; θ)‖²₂ / ∂θ_ij|, the mean of per-sample absolute gradients of
the squared L2 norm of the output. The output F is the whole output of the classes seen so far: in a
class- or domain-incremental stream every unit of the tasks up to the current one, in a task-incremental
stream the task's own head (its units only, as the paper's multi-head experiments). After each task Ω
accumulates and the anchor moves:  L(θ) = L_t(θ) + λ · sum_ij Ω_ij (θ_ij − θ*_ij)^2.
"""

from __future__ import annotations

from torch import Tensor

from ..data import Task
from ..configs import non_negative
from ..errors import ConfigError
from .importance import grad_stats
from .penalty import QuadraticPenalty


class MAS(QuadraticPenalty):
    """MAS. lam: λ (default 0.01, the best of 0.01-10 in the validation sweep in BENCHMARKS.md; the paper uses 1
    with SGD and its own output scale); samples: how many of the
    task's samples estimate Ω (0 = all); method, step: as for EWC."""

    name = "mas"
    summary = "Memory Aware Synapses (Aljundi et al. 2018): output-sensitivity importance, no labels"
    option_names = {"lam": "lambda"}

    def __init__(self, lam: float = 0.01, samples: int = 0, method: str = "auto", step: str = "explicit") -> None:
        super().__init__(step)
        non_negative({"lam": lam}, "mas")
        if samples < 0:
            raise ConfigError(f"`samples` must be >= 0 (0 = all), got {samples}", "mas.samples")
        self.lam, self.samples, self.method = lam, samples, method

    @property
    def scale(self) -> float:
        return self.lam

    def _squared_norm(self, logits: Tensor, y: Tensor, t: Tensor) -> Tensor:
        """‖F(x)‖²₂ over the outputs a sample of task t is judged on (see the module doc)."""
        masks = self.stream.masks.to(logits.device)
        seen = masks if self.stream.scenario == "task" else masks.cumsum(0) > 0  # row t: units of tasks <= t
        return (logits * seen[t]).pow(2).sum(1)

    def after_task(self, task: Task) -> None:
        omega = self.task_mean(task, self.samples, lambda x, y, t: grad_stats(
            self.model, x, y, t, self._squared_norm, "abs", method=self.method))
        self.consolidate(omega, self.parameters_now(), keep_old_anchors=False)
