"""Fine-tuning a pretrained model on a target task: full, discriminative (layer-wise) learning rates,
gradual unfreezing.

Howard & Ruder 2018, "Universal Language Model Fine-tuning for Text Classification" (ACL), section 3.2:
- Discriminative fine-tuning (section 3.2): each layer group l (`models.param_groups`: the model's own
  groups, or its top-level modules for any model of timm's contract; input to output, the classifier
  last) has its own learning rate, eta^(l-1) = eta^l / `lr_decay`: the head learns at `lr`, the group
  d steps below it at lr / lr_decay^d. The paper uses lr_decay = 2.6; lr_decay = 1 (the default here)
  is full fine-tuning at one learning rate. Each group also carries its factor 1 / lr_decay^d as
  "lr_scale" (timm's name for it): with an optimiser factory (`optimizer=callable`), the rate the factory
  gives a group is multiplied by it, so lr_decay works with any optimiser.
- Gradual unfreezing (section 3.3): the first epoch trains only the last group, every further epoch
  unfreezes the next lower group, until all train together for the remaining epochs. One optimiser
  serves the whole `train`: each group joins it as a new parameter group when it unfreezes
  (`add_param_group`), so the groups already training keep their Adam moments and step counts (a fresh
  optimiser per stage would make each stage's first steps sign-SGD). The paper's slanted triangular
  learning-rate schedule is not implemented.
L2-SP (pulling the weights towards the pretrained ones) is a strategy, `transfer.L2SP`, usable here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..data import Dataset, Split, from_tasks
from ..errors import ConfigError
from ..models import as_backbone, param_groups
from ..strategies import Strategy
from ..training import Result, Trainer


class FineTuner(Trainer):
    """A Trainer with per-group learning rates lr / lr_decay^depth and, with `gradual`, ULMFiT's
    gradual unfreezing. The model follows timm's contract (`get_classifier()`) or has its own `param_groups()`."""

    def __init__(self, model: nn.Module, strategy: Strategy | None = None, *, lr_decay: float = 1.0,
                 gradual: bool = False, **options: Any) -> None:
        if not (callable(getattr(model, "param_groups", None)) or callable(getattr(model, "get_classifier", None))):
            raise ConfigError(f"{type(model).__name__} has neither param_groups() nor get_classifier(): fine-tune a "
                              "model of timm's contract (mlp, cnn, resnet18, timm's)")
        if not lr_decay >= 1:
            raise ConfigError(f"`lr_decay` must be >= 1 (lower layers learn slower), got {lr_decay}", "lr_decay")
        super().__init__(model, strategy, **options)
        self.lr_decay, self.gradual = lr_decay, gradual
        self.unfreezing = False  # inside a gradual `train`: `make_optimizer` grows the optimiser it has

    def parameter_groups(self) -> list[dict[str, Any]]:
        """One group per layer group, input to output, with its "lr_scale" 1 / lr_decay^depth and, for a
        named optimiser, its "lr" (an optimiser factory's rate is scaled in `make_optimizer`)."""
        groups = list(param_groups(self.model).values())
        depth = len(groups) - 1
        out: list[dict[str, Any]] = []
        for i, params in enumerate(groups):
            group = {"params": [p for p in params if p.requires_grad], "lr_scale": 1 / self.lr_decay ** (depth - i)}
            if self.lr is not None:
                group["lr"] = self.lr / self.lr_decay ** (depth - i)
            out.append(group)
        return out

    def make_optimizer(self) -> torch.optim.Optimizer:
        """A fresh optimiser; while unfreezing gradually, the current one with the groups that unfroze since
        it was built (or last grown) added, the others' state kept. With an optimiser factory, each new
        group's rate (the factory's) is multiplied by its "lr_scale"."""
        if not self.unfreezing or self.optimizer is None:
            optimizer = super().make_optimizer()
            self._scale(optimizer.param_groups)
            return optimizer
        held = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        for group in self.parameter_groups():
            if group["params"] and id(group["params"][0]) not in held:
                self.optimizer.add_param_group(group)
                self._scale(self.optimizer.param_groups[-1:])
        return self.optimizer

    def _scale(self, groups: list[dict[str, Any]]) -> None:
        """Multiply the factory-given rate of `groups` by their "lr_scale" (a named optimiser's groups have
        their rates already)."""
        if self.lr is None:
            for group in groups:
                group["lr"] = group["lr"] * group.get("lr_scale", 1.0)  # not in place: the rate may be a tensor

    def train(self, data: Split, task_ids: Tensor, epochs: int, what: str = "", main: bool = False) -> list[float]:
        if not self.gradual:
            return super().train(data, task_ids, epochs, what, main)
        groups = list(param_groups(self.model).values())
        trainable = {p: p.requires_grad for p in self.model.parameters()}
        losses: list[float] = []
        self.optimizer, self.unfreezing = None, True
        try:
            for epoch in range(epochs):
                for i, params in enumerate(groups):
                    for p in params:
                        p.requires_grad_(trainable[p] and i >= len(groups) - 1 - epoch)
                losses += super().train(data, task_ids, 1, what, main)
        finally:
            self.unfreezing = False
            for p, flag in trainable.items():
                p.requires_grad_(flag)
        return losses


def finetune(model: nn.Module, data: Dataset | tuple[Split, Split], *, lr_decay: float = 1.0, gradual: bool = False,
             strategy: Strategy | None = None, head: nn.Module | None = None, **trainer_options: Any) -> Result:
    """Fine-tune `model` (in place) on `data`: a fresh head for its classes (or `head`, e.g. one imprinted
    with the class means, `simpleshot.nearest_mean_head`), then every layer trained (see the module
    docstring). `trainer_options` go to `Trainer` (epochs, lr, batch_size, seed...); the Result's matrix
    holds the test accuracy."""
    stream = from_tasks([data], scenario="class", name="finetune")
    torch.manual_seed(int(trainer_options.get("seed", 0)))
    model = as_backbone(model, "finetune")
    if head is None:
        model.reset_classifier(stream.n_outputs)
    else:
        model.set_head(head)
    return FineTuner(model, strategy, lr_decay=lr_decay, gradual=gradual, **trainer_options).fit(stream)
