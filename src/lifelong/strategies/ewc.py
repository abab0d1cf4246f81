"""Elastic Weight Consolidation (Kirkpatrick et al. 2017, PNAS, eq. 3).

After training task k, the diagonal Fisher information F_k of that task is estimated at the trained
parameters θ*_k and stored with them; while later tasks are learnt, the loss becomes

    L(θ) = L_t(θ) + (λ/2) · sum_{k<t} sum_i F_k,i (θ_i − θ*_k,i)^2

(the penalty is added to the loss, never to the model's output). F_k is the mean over the task's
samples of the per-sample squared gradient of log p(y | x) (see `importance.fisher_diagonal`),
computed with the model in eval mode after training, not from batch gradients before it. Under
data-parallel training each rank sums over its share of the samples and the sums are all-reduced
(`QuadraticPenalty.task_mean`), so every rank holds the same F and θ*.
"""

from __future__ import annotations

from ..data import Task
from ..configs import non_negative
from ..errors import ConfigError
from .importance import fisher_sums
from .penalty import QuadraticPenalty


class EWC(QuadraticPenalty):
    """EWC with one (Fisher, anchor) term per task, merged exactly.

    lam: λ, the penalty weight. Default 100, the best of 10-10000 in the sweep in BENCHMARKS.md
        (Permuted Fashion-MNIST, Adam lr 1e-3, scored on validation data held out of training, never
        on test: docs/defaults.md); the paper tunes λ per experiment.
    fisher: "empirical" (true labels) or "expected" (exact expectation over the model's predictions).
    samples: how many of the task's training samples estimate the Fisher (0 = all).
    method: "auto", "layers" (per-layer identity) or "vmap" (torch.func), see `importance`.
    step: "explicit" (default: the penalty's gradient is added to the task's) or "implicit" (its
        proximal step after the optimiser's, stable at any λ), see the `penalty` module doc.
    """

    name = "ewc"
    summary = "Elastic Weight Consolidation (Kirkpatrick et al. 2017): Fisher-weighted pull to old tasks' weights"
    option_names = {"lam": "lambda"}

    def __init__(self, lam: float = 100.0, fisher: str = "empirical", samples: int = 0, method: str = "auto",
                 step: str = "explicit") -> None:
        super().__init__(step)
        non_negative({"lam": lam}, self.name)
        if fisher not in ("empirical", "expected"):
            raise ConfigError(f"`fisher` must be 'empirical' or 'expected', got {fisher!r}", f"{self.name}.fisher")
        if samples < 0:
            raise ConfigError(f"`samples` must be >= 0 (0 = all), got {samples}", f"{self.name}.samples")
        if method not in ("auto", "layers", "vmap"):
            raise ConfigError(f"`method` must be auto, layers or vmap, got {method!r}", f"{self.name}.method")
        self.lam, self.fisher, self.samples, self.method = lam, fisher, samples, method

    @property
    def scale(self) -> float:
        return self.lam / 2

    def estimate(self, task: Task) -> dict:
        return self.task_mean(task, self.samples, lambda x, y, t: fisher_sums(
            self.model, x, y, t, self.stream.mask, self.fisher, self.method))

    def after_task(self, task: Task) -> None:
        self.consolidate(self.estimate(task), self.parameters_now(), keep_old_anchors=True)
