"""L2-SP: fine-tuning with the pretrained weights as the starting point of an L2 penalty.

Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias for Transfer Learning with Convolutional
Networks" (ICML), section 3, the L2-SP penalty:

    Omega(w) = alpha / 2 * ||w_S - w_S^0||^2 + beta / 2 * ||w_Sbar||^2

with w_S the parameters the target model shares with the pretrained one (the backbone; w_S^0 their
pretrained values, taken when training starts) and w_Sbar the new ones (the head), which get plain
weight decay. The paper picks alpha and beta on a grid of powers of ten by cross-validation; the
defaults here are alpha = 0.1, beta = 0.01.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..configs import non_negative
from ..models import HasClassifier, no_classifier
from ..strategies import Strategy

if TYPE_CHECKING:
    from ..data import Stream
    from ..training import Trainer


class L2SP(Strategy):
    """Adds alpha/2 ||w_S - w_S^0||^2 over the backbone and beta/2 ||w_Sbar||^2 over the head."""

    name = "l2sp"
    summary = "L2 penalty towards the pretrained weights (Li et al. 2018)"

    def __init__(self, alpha: float = 0.1, beta: float = 0.01) -> None:
        non_negative({"alpha": alpha, "beta": beta}, "l2sp")
        self.alpha, self.beta = alpha, beta

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        if not isinstance(trainer.model, HasClassifier):
            raise no_classifier(trainer.model)
        super().attach(trainer, stream)
        self.new = list(trainer.model.get_classifier().parameters())
        head = {id(p) for p in self.new}
        self.shared = [p for p in self.model.parameters() if id(p) not in head]
        if not getattr(self, "start", None):  # a restored checkpoint keeps its starting point
            self.start = [p.detach().clone() for p in self.shared]

    def loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        zero = torch.zeros((), device=out.device)
        pull = sum(((p - p0).pow(2).sum() for p, p0 in zip(self.shared, self.start)), zero)
        decay = sum((p.pow(2).sum() for p in self.new), zero)
        return self.alpha / 2 * pull + self.beta / 2 * decay

    def state_dict(self) -> dict[str, Any]:
        return {f"start.{i}": p for i, p in enumerate(getattr(self, "start", []))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.start = [state[f"start.{i}"] for i in range(len(state))]
