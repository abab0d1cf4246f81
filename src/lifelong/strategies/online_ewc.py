"""Online EWC (Schwarz et al. 2018, "Progress & Compress", eq. 8).

One running Fisher and one anchor instead of one term per task: after task k,

    F* ← γ F* + F_k,      θ* ← θ_k,      L(θ) = L_t(θ) + (λ/2) · sum_i F*_i (θ_i − θ*_i)^2

γ < 1 lets old importance fade; memory stays constant in the number of tasks.
"""

from __future__ import annotations

from ..data import Task
from ..errors import ConfigError
from .ewc import EWC


class OnlineEWC(EWC):
    """Online EWC. lam: λ (default 100, the best of 30-10000 in the validation sweep in BENCHMARKS.md); gamma: γ,
    the decay of the running Fisher (default 1.0, as in van de Ven et al. 2022's comparison; the paper
    uses γ < 1 for long streams); fisher, samples, method, step: as for EWC."""

    name = "online-ewc"
    summary = "online EWC (Schwarz et al. 2018): one running Fisher with decay gamma, one anchor"

    def __init__(self, lam: float = 100.0, gamma: float = 1.0, fisher: str = "empirical", samples: int = 0,
                 method: str = "auto", step: str = "explicit") -> None:
        super().__init__(lam, fisher, samples, method, step)
        if not 0 <= gamma <= 1:
            raise ConfigError(f"`gamma` must be in [0, 1], got {gamma}", "online-ewc.gamma")
        self.gamma = gamma

    def after_task(self, task: Task) -> None:
        self.consolidate(self.estimate(task), self.parameters_now(), keep_old_anchors=False, decay=self.gamma)
