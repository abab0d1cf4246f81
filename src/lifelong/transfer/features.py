"""Feature extraction: a frozen pretrained backbone, its features computed once and cached, and a new
head trained on them.

Yosinski, Clune, Bengio & Lipson 2014, "How transferable are features in deep neural networks?"
(NeurIPS): the layers of a network trained on a source task, kept frozen, are features for a target
task, on which only a new classifier is trained. Heads:
- "linear": a linear (softmax) layer, or an MLP with `hidden` layers, trained with the Trainer
  (Adam by default) on the cached features, so an epoch costs a pass over (N, D) vectors instead of
  a pass through the backbone;
- "logistic": the linear probe, multinomial logistic regression with an L2 penalty of inverse
  strength `C` (default 1.0), solved to convergence by scikit-learn's L-BFGS.
The trained head replaces the model's head and the backbone is left frozen (`freeze_backbone`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Dataset, Split, from_tasks
from ..errors import ConfigError
from ..models import extract, mlp
from ..training import Trainer

HEADS = ("linear", "logistic")


@dataclass
class Probe:
    """A head trained on cached features: test accuracy and the time of each part."""

    head: nn.Module
    acc: float
    extract_seconds: float
    train_seconds: float


def cache(model: nn.Module, data: Dataset, batch_size: int = 256, cut: int = 0) -> tuple[Split, Split, float]:
    """The backbone's features of `data`'s train and test splits (`cut` modules below its top, see
    `models.extract`), computed once; and the seconds taken."""
    t0 = time.perf_counter()
    train, test = extract(model, data.train, batch_size, cut), extract(model, data.test, batch_size, cut)
    return train, test, time.perf_counter() - t0


def fit_head(train: Split, test: Split, num_classes: int, *, head: str = "linear", hidden: Sequence[int] = (),
             C: float = 1.0, **trainer_options: Any) -> tuple[nn.Module, float, float]:
    """Train a head on cached features; returns (head, test accuracy, training seconds)."""
    if head not in HEADS:
        raise ConfigError(f"unknown head {head!r}: choose one of {', '.join(HEADS)}")
    width = train.x.shape[1]
    if head == "linear":
        torch.manual_seed(int(trainer_options.get("seed", 0)))  # type: ignore[call-overload]
        net = mlp(width, num_classes, hidden)
        result = Trainer(net, **trainer_options).fit(from_tasks([(train, test)], name="features"))
        module: nn.Module = net if hidden else net.head
        return module, result.matrix[0][0], result.train_seconds
    if not C > 0:
        raise ConfigError(f"the logistic probe needs C > 0, got {C}")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    x, y = train.x.cpu().double().numpy(), train.y.cpu().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            fit = LogisticRegression(C=C, max_iter=5000).fit(x, y)
        except ConvergenceWarning:
            raise ConfigError(f"the logistic probe did not converge in 5000 L-BFGS steps: lower C (now {C})") from None
    linear = nn.Linear(width, num_classes).to(train.x.device)
    weight, bias = np.zeros((num_classes, width)), np.zeros(num_classes)
    rows = fit.classes_ if fit.coef_.shape[0] > 1 else fit.classes_[1:]  # binary: logits (0, w.x + b)
    weight[rows], bias[rows] = fit.coef_, fit.intercept_
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
        acc = (linear(test.x).argmax(1) == test.y).float().mean().item()
    return linear, acc, time.perf_counter() - t0


def feature_extraction(model: nn.Module, data: Dataset, *, head: str = "linear", hidden: Sequence[int] = (),
                       C: float = 1.0, **trainer_options: Any) -> Probe:
    """Freeze `model`'s backbone, cache its features of `data`, train a new head on them and put it in
    the model (so `model` classifies `data`'s classes). `trainer_options` go to `Trainer`."""
    model.freeze_backbone()
    train, test, extract_seconds = cache(model, data)
    module, acc, seconds = fit_head(train, test, data.num_classes, head=head, hidden=hidden, C=C, **trainer_options)
    model.set_head(module)
    return Probe(module, acc, extract_seconds, seconds)
