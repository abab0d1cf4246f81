"""DANN: domain-adversarial training with a gradient reversal layer (Ganin, Ustinova, Ajakan, Germain,
Larochelle, Laviolette, Marchand & Lempitsky 2016, "Domain-Adversarial Training of Neural Networks",
JMLR 17).

A domain classifier G_d reads the features f = G_f(x) and learns to tell source (d = 1) from target
(d = 0) by minimising the logistic loss L_d; the feature extractor maximises it. Both happen in one
backward pass through the gradient reversal layer R_λ: R_λ(f) = f forward,
dR_λ/df = −λ I backward, so the features take −λ ∂L_d/∂f while G_d takes +∂L_d/∂θ_d:

    E = CE(G_y(G_f(x_s)), y_s) + L_d(G_d(R_λ(G_f(x_s))), 1) + L_d(G_d(R_λ(G_f(x_t))), 0).

λ follows the paper's schedule λ_p = 2 / (1 + exp(−10 p)) − 1, scaled by `lam`, which defaults to 0.3,
chosen without target labels (BENCHMARKS.md, "Domain adaptation", 2026-12-07): of the grid 0.1, 0.3,
1, 3, the weight of best mean rank under deep embedded validation (`selection.dev`) over fmnist-rot30,
fmnist-scale75 and mnist1d-noisy, seed 0 (a tie with 1, broken towards the smaller). G_d is an
MLP with `hidden` ReLU layers (default one of 100 units, as for the paper's digit experiments; its Office
experiments use 1024-1024) trained by its own optimiser of the Trainer's kind and learning rate, stepped
with the model's. The paper's learning-rate annealing is not applied: every method here uses the
Trainer's fixed learning rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import distributed
from ...checkpoint import strip_prefix
from ...errors import ConfigError
from ...models import mlp
from .base import Adaptation

if TYPE_CHECKING:
    from ...data import Stream, Task
    from ...training import Trainer


class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by −coeff backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.coeff * grad, None


def grad_reverse(x: Tensor, coeff: float = 1.0) -> Tensor:
    """R_λ(x) with λ = coeff."""
    return GradientReversal.apply(x, coeff)


class DomainAdversarialLoss(nn.Module):
    """L_d through a gradient reversal layer: `loss(source_features, target_features, coeff)`."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (100,)) -> None:
        super().__init__()
        self.in_features = in_features
        self.discriminator = mlp(in_features, 1, hidden)

    def forward(self, source: Tensor, target: Tensor, coeff: float = 1.0) -> Tensor:
        logits = self.discriminator(grad_reverse(torch.cat([source, target]), coeff)).squeeze(1)
        domain = torch.cat([logits.new_ones(len(source)), logits.new_zeros(len(target))])
        return F.binary_cross_entropy_with_logits(logits, domain)


class DANN(Adaptation):
    """Domain-adversarial training: the features learn to fool a source/target classifier."""

    name = "dann"
    summary = "DANN: gradient reversal against a domain classifier (Ganin et al. 2016)"
    shardable = True  # L_d is a mean over the rows: each rank's share, the gradients averaged

    def __init__(self, lam: float = 0.3, progressive: bool = True, hidden: Sequence[int] = (100,),
                 layer: str | None = None) -> None:
        super().__init__(lam, progressive, layer)
        if any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ConfigError(f"dann's hidden layer sizes must be positive whole numbers, got {hidden!r}")
        self.hidden = list(hidden)
        self.adversary: DomainAdversarialLoss | None = None

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        if self.adversary is None:
            self._build(self.feature_width())

    def _build(self, in_features: int) -> None:
        device = self.trainer.device if hasattr(self, "trainer") else None
        self.adversary = DomainAdversarialLoss(in_features, self.hidden).to(device)

    def before_task(self, task: Task) -> None:
        super().before_task(task)
        assert self.adversary is not None
        self.optimizer = self.trainer.optimizer_for(self.adversary.parameters(), weight_decay=0.0)

    def term(self, fs: Tensor, ft: Tensor, weight: float) -> Tensor:
        assert self.adversary is not None
        return self.adversary(fs, ft, weight)

    def after_step(self) -> None:
        super().after_step()
        assert self.adversary is not None
        distributed.average_gradients(list(self.adversary.parameters()), self.n_source)  # as the Trainer's
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.adversary is None:
            return state
        state |= {"in_features": self.adversary.in_features,
                  **{f"adversary.{k}": v for k, v in self.adversary.state_dict().items()}}
        if hasattr(self, "optimizer"):  # the discriminator's optimiser (Adam's moments), for a resumed fit
            for i, values in self.optimizer.state_dict()["state"].items():
                state |= {f"optimizer.{i}.{k}": v for k, v in values.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore in place: the optimiser `before_task` made keeps stepping these very parameters."""
        super().load_state_dict(state)
        if "in_features" not in state:
            return
        if self.adversary is None or self.adversary.in_features != int(state["in_features"]):
            self._build(int(state["in_features"]))
        assert self.adversary is not None
        self.adversary.load_state_dict(strip_prefix(state, "adversary."))
        moments: dict[int, dict[str, Any]] = {}
        for key, v in strip_prefix(state, "optimizer.").items():
            i, name = key.split(".", 1)
            moments.setdefault(int(i), {})[name] = v
        if moments and hasattr(self, "optimizer"):
            self.optimizer.load_state_dict({**self.optimizer.state_dict(), "state": moments})
