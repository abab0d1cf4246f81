"""ANIL: almost no inner loop.

Raghu, Raghu, Bengio & Vinyals 2020, "Rapid Learning or Feature Reuse? Towards Understanding the
Effectiveness of MAML" (ICLR), Section 4: MAML (Eqs. 1-2 of Finn et al. 2017) whose inner loop adapts
only the network's head (the last linear layer); the body is still meta-learned by the outer loop,
through the head's inner updates (second order unless `first_order`).

Hyper-parameters as MAML's (`inner_lr`, `inner_steps`, `meta_lr`, `meta_batch`, `first_order`); the
paper uses MAML's settings unchanged. The model must have a `head` (lifelong's `Net`, ResNet18).
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..models import HasClassifier, classifier_name, no_classifier
from .base import Params
from .maml import MAML
from .tasks import TaskSet


def head_name(model: nn.Module) -> str:
    """The dotted module name of the model's linear classifier (`get_classifier()`: "head", "fc", "model.fc")."""
    if not isinstance(model, HasClassifier):
        raise no_classifier(model)
    if not isinstance(model.get_classifier(), nn.Linear):
        raise ConfigError(f"{type(model).__name__}'s classifier is not a linear layer: use an mlp or cnn model",
                          "model")
    return classifier_name(model)


class ANIL(MAML):
    """MAML whose inner loop changes the head only."""

    name = "anil"
    summary = "MAML adapting only the head in the inner loop (Raghu et al. 2020)"

    def __init__(self, model: nn.Module, tasks: TaskSet, inner_lr: float = 0.01, inner_steps: int = 1,
                 meta_lr: float = 1e-3, meta_batch: int = 25, first_order: bool = False) -> None:
        self.head = head_name(model) + "."
        super().__init__(model, tasks, inner_lr, inner_steps, meta_lr, meta_batch, first_order)

    def adapted(self) -> Params:
        return {k: v for k, v in self.params().items() if k.startswith(self.head)}
