"""Baselines beside the meta-learners: two kinds of pretraining, and training from scratch.

Both pretrained baselines first train ordinarily on the meta-training data, with no notion of tasks:
- Regression: one network regresses every meta-training task's points at once (it learns the
  mean function, ~0), Adam with `meta_lr`, `meta_batch` tasks per step.
- Classification: a classifier over all meta-train classes (with rotations, over their 4 turns each),
  mini-batches of `batch_size` samples, Adam with `meta_lr`. At meta-test the head is replaced by a
  zero-initialised N-way head (regression: `baseline` only, a zero head; `finetune` keeps its own).
Then, on each meta-test support set, `steps` steps of gradient descent (learning rate `inner_lr`):

`finetune` (Finn et al. 2017, Section 5.1's "pretrained" baseline): on all parameters.
`baseline` (Chen, Liu, Kira, Wang & Huang 2019, "A Closer Look at Few-shot Classification", ICLR,
Section 3.1, Baseline): on the new linear head only, the pretrained backbone frozen as a feature
extractor (the paper trains the head with SGD for 100 epochs of batches of 4; here the same full-batch
steps as every other method, so that all meet the same adaptation budget).

`scratch`: no meta-training; each meta-test task is learned from the same random initialisation
on its support set alone (`steps` steps, learning rate `inner_lr`): the floor every method must beat.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import distributed
from ..data.episodes import Episodes, rotate
from ..errors import ConfigError
from .anil import head_name
from .base import MetaLearner, Params, adapt_and_predict, check_positive
from .tasks import TaskSet


class Finetune(MetaLearner):
    """Supervised pretraining on the meta-training data, fine-tuning every weight at meta-test."""

    name = "finetune"
    summary = "baseline: supervised pretraining on meta-train data, all weights fine-tuned on the support set"
    classification_defaults: ClassVar[dict[str, Any]] = {"inner_lr": 0.1}

    def __init__(self, model: nn.Module, tasks: TaskSet, inner_lr: float = 0.01, meta_lr: float = 1e-3,
                 meta_batch: int = 25, batch_size: int = 128) -> None:
        check_positive(self.name, ("meta_batch", "batch_size"), inner_lr=inner_lr, meta_lr=meta_lr,
                       meta_batch=meta_batch, batch_size=batch_size)
        super().__init__(model, tasks)
        self.inner_lr, self.meta_lr, self.meta_batch, self.batch_size = inner_lr, meta_lr, meta_batch, batch_size
        if tasks.kind == "classification":
            reset_head = getattr(model, "reset_head", None)
            if tasks.pool is None or reset_head is None:
                raise ConfigError(f"{self.name} needs the meta-train class samples and a model with a head (mlp, cnn)")
            self.classes = int(tasks.pool.y.max()) + 1
            reset_head(self.classes * tasks.rotations)
            self.generator = torch.Generator().manual_seed(int(torch.randint(2**31, ())))
        self.optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)

    def draw(self) -> Any:
        if self.tasks.kind == "regression":
            ep = super().draw()
            return torch.cat([ep.xs, ep.xq], 1).flatten(0, 1), torch.cat([ep.ys, ep.yq], 1).flatten(0, 1)
        pool = self.tasks.pool
        assert pool is not None  # __init__ checked it for classification
        idx = torch.randint(len(pool), (self.batch_size,), generator=self.generator)
        x, y = pool.batch(idx)
        if self.tasks.rotations > 1:  # a turned class is a class of its own, as in the episodes
            turns = torch.randint(self.tasks.rotations, (self.batch_size,), generator=self.generator)
            x, y = rotate(x, turns), y + self.classes * turns
        device = next(self.model.parameters()).device
        return x.to(device), y.to(device)

    def meta_step(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = (distributed.shard(t) for t in batch)  # this rank's share of the samples every rank drew
        return self.descend(lambda xy: self.loss(self.model(xy[0]), xy[1]), (x, y), len(y), len(batch[1]))

    def new_head(self) -> Params:
        """A zero head with one output per way (regression: one), by parameter name."""
        head = head_name(self.model)
        w = self.params()[f"{head}.weight"]
        return {f"{head}.weight": w.new_zeros(self.tasks.n_outputs, w.shape[1]),
                f"{head}.bias": w.new_zeros(self.tasks.n_outputs)}

    def predict(self, episodes: Episodes, steps: int) -> Tensor:
        params = self.params()
        if self.tasks.kind == "classification":  # a new, zero N-way head on the pretrained body
            params |= self.new_head()
        return adapt_and_predict(self, params, episodes, steps, self.inner_lr)


class Baseline(Finetune):
    """Chen et al. 2019's Baseline: a new linear head trained on the frozen pretrained features."""

    name = "baseline"
    summary = "baseline: supervised pretraining, then a new linear head on the frozen backbone (Chen et al. 2019)"

    def predict(self, episodes: Episodes, steps: int) -> Tensor:
        return adapt_and_predict(self, self.new_head(), episodes, steps, self.inner_lr)  # only the head adapts


class Scratch(MetaLearner):
    """No meta-training: every meta-test task learned from the same random initialisation."""

    name = "scratch"
    summary = "baseline: train from a random initialisation on the support set alone"
    classification_defaults: ClassVar[dict[str, Any]] = {"inner_lr": 0.1}

    def __init__(self, model: nn.Module, tasks: TaskSet, inner_lr: float = 0.01) -> None:
        check_positive(self.name, inner_lr=inner_lr)
        super().__init__(model, tasks)
        self.inner_lr = inner_lr

    def meta_train(self, iterations: int, progress: bool = False, label: str = "", valid: Episodes | None = None,
                   every: int = 100, steps: int = 10) -> list[float]:
        return []

    def predict(self, episodes: Episodes, steps: int) -> Tensor:
        return adapt_and_predict(self, self.params(), episodes, steps, self.inner_lr)
