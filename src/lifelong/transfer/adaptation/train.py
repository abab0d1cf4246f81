"""Training with a domain-adaptation method: labelled source, unlabelled target, target labels for testing only.

`ADAPTATIONS` names the methods (source-only, DAN, CORAL, DANN, JAN, TCA). `adapt` trains a model on the
source with a deep adaptation strategy (DAN, CORAL, DANN, JAN) through the library's one training loop;
`tca_accuracy` fits TCA on the (cached) features of a source-trained model. `lifelong adapt` runs them
over methods and seeds: `lifelong.experiment.adapt`.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from ...data import Dataset, Features, Split, Stream, from_tasks
from ...errors import ConfigError
from ...evaluation import accuracy
from ...registry import Registry
from ...strategies import Naive
from ...training import Trainer
from ..features import extract_sharded, fit_head
from .base import Adaptation
from .coral import CORAL
from .dann import DANN
from .jan import JAN
from .mmd import DAN
from .tca import TCA

ADAPTATIONS = Registry("adaptation method")
ADAPTATIONS.register("source-only", "no adaptation: train on the labelled source only (the baseline)")(Naive)
for _cls in (DAN, CORAL, DANN, JAN, TCA):
    ADAPTATIONS.register(_cls.name, _cls.summary)(_cls)


def _stream(source: Dataset, target: Dataset) -> Stream:
    """One task: train on the labelled source, test on the target (so Result.matrix = [[target acc]])."""
    return from_tasks([(source.train, target.test)], scenario="class", name=f"{source.name}->{target.name}")


def adapt(model: nn.Module, source: Dataset, target: Dataset, method: Adaptation | None = None,
          **trainer_options: Any) -> tuple[float, float, float]:
    """Train `model` (in place) on `source` with `method` aligning it to the unlabelled `target.train`
    inputs (no method: source only). Returns (target test accuracy, source test accuracy, train seconds).
    `trainer_options` go to `Trainer` (epochs, batch_size, lr, optimizer, seed, device, ...)."""
    if method is not None:
        method.set_target(tensor_inputs(target.train))
    trainer = Trainer(model, method if method is not None else Naive(), **trainer_options)
    stream = _stream(source, target)
    result = trainer.fit(stream)
    model.eval()
    source_acc = accuracy(lambda x, t: model(x), source.test, 0, stream, trainer.device, trainer.eval_batch_size)
    return result.matrix[0][0], source_acc, result.train_seconds


def tensor_inputs(split: Split) -> Tensor:
    """The inputs of `split` as one tensor (what an adaptation method aligns with)."""
    if not isinstance(split.x, Tensor):
        raise ConfigError("domain adaptation needs in-memory inputs (tensors), not a lazily loaded image folder")
    return split.inputs()


def tca_accuracy(model: nn.Module, source: Dataset, target: Dataset, tca: TCA, *, n_fit: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """TCA on the features of a source-trained `model`: fit on `n_fit` random source and target training
    samples, embed every source training sample and the target test set, and test on the target a
    logistic regression (the linear probe of `transfer.features`) trained on the standardised source
    embedding. Returns (target test accuracy, seconds)."""
    start = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    fs = extract_sharded(model, source.train).x.cpu()
    ft = extract_sharded(model, target.train.subset(torch.randperm(len(target.train), generator=g)[:n_fit])).x.cpu()
    tca.fit(fs[torch.randperm(len(fs), generator=g)[:n_fit]], ft)
    zs, zt = tca.transform(fs), tca.transform(extract_sharded(model, target.test).x.cpu())
    mean, std = zs.mean(0), zs.std(0).clamp_min(1e-12)
    _, acc, _ = fit_head(Features((zs - mean) / std, source.train.y),
                         Features((zt - mean) / std, target.test.y.cpu()), source.num_classes, head="logistic")
    return acc, time.perf_counter() - start
