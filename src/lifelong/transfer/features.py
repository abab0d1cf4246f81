"""Feature extraction: a frozen pretrained backbone, its features computed once and cached, and a new
head trained on them.

Yosinski, Clune, Bengio & Lipson 2014, "How transferable are features in deep neural networks?"
(NeurIPS): the layers of a network trained on a source task, kept frozen, are features for a target
task, on which only a new classifier is trained. Heads:
- "linear": a linear (softmax) layer, or an MLP with `hidden` layers, trained with the Trainer
  (Adam by default) on the cached features, so an epoch costs a pass over (N, D) vectors instead of
  a pass through the backbone;
- "logistic": the linear probe, multinomial logistic regression with an L2 penalty of inverse
  strength `C` (default 1.0), solved to convergence by scikit-learn's L-BFGS (the extra `sklearn`);
- "l2n": the same probe on L2-normalised features, f / ||f||_2 (Tian, Wang, Krishnan, Tenenbaum & Isola
  2020, "Rethinking Few-Shot Image Classification: a Good Embedding Is All You Need?", ECCV, section
  3.1), for one or a few samples per class; default C = 100, chosen on held-out transfer tasks (from the
  Fashion-MNIST 0-4 CNN to 28x28 digits, `benchmarks/transfer.py select`; Tian et al. use C = 1 on their
  pooled 640-d embeddings). The head is `CL2N` then the linear layer, so it takes raw features;
- "ncm": SimpleShot's nearest class mean of centred, L2-normalised features (`transfer.simpleshot`),
  no training, for one or a few samples per class.
The features are the model's pre-logits (the classifier's input, timm's `forward_head(...,
pre_logits=True)`: any model of that contract works, timm's included), or its transfer layer
(`transfer_cut` modules below the top of its backbone: for the image CNN its convolutional trunk; see
`models.extract`) unless `cut` says otherwise. The trained head replaces the model's classifier (on
that layer) and the backbone is left frozen (`freeze_backbone`).

Under data-parallel training (`lifelong.distributed`) each rank extracts the features of its share of the
samples and every rank gathers all of them (`extract_sharded`); the heads are then fitted identically on
every rank: "linear" through the Trainer (which shards its batches), the probes and "ncm" on the whole
cached features, the same arithmetic on every rank.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import distributed
from ..data import Dataset, Features, Split, from_tasks
from ..errors import ConfigError
from ..extras import need
from ..models import CL2N, Net, as_backbone, extract, mlp
from ..training import Trainer
from .simpleshot import nearest_mean_head

PROBES = ("linear", "logistic", "l2n", "ncm")
DEFAULT_C = {"logistic": 1.0, "l2n": 100.0}


@dataclass
class Probe:
    """A head trained on cached features: test accuracy and the time of each part."""

    head: nn.Module
    acc: float
    extract_seconds: float
    train_seconds: float


def transfer_cut(model: nn.Module, cut: int | None = None) -> int:
    """`cut`, or the model's own transfer layer (`transfer_cut`, 0 for models without one)."""
    return int(getattr(model, "transfer_cut", 0)) if cut is None else cut


def extract_sharded(model: nn.Module, split: Split, batch_size: int = 256, cut: int = 0) -> Features:
    """`models.extract`; under data-parallel training each rank extracts its share of the rows of `split`
    and the features of all of them are gathered on every rank."""
    if not distributed.active():
        return extract(model, split, batch_size, cut)
    part = extract(model, split.subset(distributed.shard(torch.arange(len(split)))), batch_size, cut)
    return Features(distributed.all_gather_rows(part.x), split.y.to(part.x.device))


def cache(model: nn.Module, data: Dataset, batch_size: int = 256, cut: int | None = None
          ) -> tuple[Features, Features, float]:
    """The backbone's features of `data`'s train and test splits (`cut` modules below its top, see
    `models.extract`; None: the model's transfer layer), computed once; and the seconds taken."""
    cut = transfer_cut(model, cut)
    t0 = time.perf_counter()
    train, test = (extract_sharded(model, split, batch_size, cut) for split in (data.train, data.test))
    return train, test, time.perf_counter() - t0


def fit_head(train: Features, test: Features, num_classes: int, *, head: str = "linear", hidden: Sequence[int] = (),
             C: float | None = None, centre: Tensor | None = None, **trainer_options: Any
             ) -> tuple[nn.Module, float, float]:
    """Train a head on cached features; returns (head, test accuracy, training seconds). `C`: the probes'
    inverse penalty (None: the head's default, `DEFAULT_C`); `centre`: the "ncm" head's source feature
    mean (None: no centring)."""
    if head not in PROBES:
        raise ConfigError(f"unknown `head` {head!r}: choose one of {', '.join(PROBES)}", "head")
    width = train.x.shape[1]
    if head == "ncm":
        t0 = time.perf_counter()
        module = nearest_mean_head(train, num_classes, centre)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            acc = (module(test.x).argmax(1) == test.y).float().mean().item()
        return module, acc, seconds
    if head == "linear":
        torch.manual_seed(int(trainer_options.get("seed", 0)))
        net = mlp(width, num_classes, hidden)
        result = Trainer(net, **trainer_options).fit(from_tasks([(train, test)], name="features"))
        trained: nn.Module = net if hidden else net.head
        return trained, result.matrix[0][0], result.train_seconds
    C = DEFAULT_C[head] if C is None else C
    if not C > 0:
        raise ConfigError(f"the logistic probe's `C` must be > 0, got {C}", "C")
    exceptions, linear_model = need("sklearn.exceptions", "sklearn"), need("sklearn.linear_model", "sklearn")
    t0 = time.perf_counter()
    norm = CL2N(None) if head == "l2n" else nn.Identity()
    x, y = norm(train.x).cpu().double().numpy(), train.y.cpu().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", exceptions.ConvergenceWarning)
        try:
            fit = linear_model.LogisticRegression(C=C, max_iter=5000).fit(x, y)
        except exceptions.ConvergenceWarning:
            raise ConfigError(f"the logistic probe did not converge in 5000 L-BFGS steps: lower `C` (now {C})",
                              "C") from None
    linear = nn.Linear(width, num_classes).to(train.x.device)
    weight, bias = np.zeros((num_classes, width)), np.zeros(num_classes)
    rows = fit.classes_ if fit.coef_.shape[0] > 1 else fit.classes_[1:]  # binary: logits (0, w.x + b)
    weight[rows], bias[rows] = fit.coef_, fit.intercept_
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
        probe = nn.Sequential(norm, linear) if head == "l2n" else linear
        acc = (probe(test.x).argmax(1) == test.y).float().mean().item()
    return probe, acc, time.perf_counter() - t0


def feature_extraction(model: nn.Module, data: Dataset, *, head: str = "linear", hidden: Sequence[int] = (),
                       C: float | None = None, cut: int | None = None, centre: Tensor | None = None,
                       **trainer_options: Any) -> Probe:
    """Freeze `model`'s backbone, cache its features of `data` (at its transfer layer, or `cut`), train a new
    head on them and put it in the model (so `model` classifies `data`'s classes): the `cut` backbone modules
    above the features are dropped. `trainer_options` go to `Trainer`."""
    model, cut = as_backbone(model, "feature extraction"), transfer_cut(model, cut)
    train, test, extract_seconds = cache(model, data, cut=cut)
    model.freeze_backbone()
    module, acc, seconds = fit_head(train, test, data.num_classes, head=head, hidden=hidden, C=C, centre=centre,
                                    **trainer_options)
    if cut:
        if not isinstance(model, Net):
            raise ConfigError(f"`cut` needs an mlp or cnn, not a {type(model).__name__}", "cut")
        model.truncate(cut, train.x.shape[1])
    model.set_head(module)
    return Probe(module, acc, extract_seconds, seconds)
