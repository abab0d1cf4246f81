"""The methods of transfer learning curves (`TRANSFER_METHODS`): draw a few labelled target samples per
class (`data.stream.per_class`), fit one method on them from a pretrained source model (`fit_method`; the methods on
cached features are `features.fit_head`'s heads, `ON_FEATURES`), and SimpleShot's centre
(`source_mean`). `lifelong transfer` runs them over shots and seeds: `lifelong.experiment.transfer`.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from ..data import Dataset, dataset
from ..errors import ConfigError
from ..models import build, extract
from .features import extract_sharded
from .finetune import finetune
from .l2sp import L2SP
from .lpft import lp_ft
from .simpleshot import nearest_mean_head

TRANSFER_METHODS = {
    "scratch": "a randomly initialised model of the same architecture trained on the target samples",
    "features": "frozen pretrained backbone, features cached once, a new linear head (Adam)",
    "probe": "frozen pretrained backbone, features cached once, logistic regression (L-BFGS)",
    "probe-l2n": "the probe on L2-normalised features, C = 100 (Tian et al. 2020): for one or a few shots",
    "ncm": "frozen features, centred with the source mean and L2-normalised, nearest class mean (SimpleShot)",
    "finetune": "pretrained model, new head, every layer trained at one learning rate",
    "imprint": "fine-tuning from a head imprinted with the support's class means (Qi et al. 2018)",
    "lpft": "logistic probe on the frozen transfer layer, then every layer fine-tuned at 0.03 lr (Kumar et al. 2022)",
    "lpft-l2n": "LP-FT from the l2n probe (probe-l2n's head), then every layer fine-tuned at lr / 10",
    "layerwise": "fine-tuning with discriminative learning rates lr / 2.6^depth (Howard & Ruder 2018)",
    "unfreeze": "fine-tuning with gradual unfreezing, one layer group more per epoch (Howard & Ruder 2018)",
    "l2sp": "fine-tuning pulled towards the pretrained weights, alpha 0.1, beta 0.01 (Li et al. 2018)",
}
# methods on cached features: their head
ON_FEATURES = {"features": "linear", "probe": "logistic", "probe-l2n": "l2n", "ncm": "ncm"}


def source_mean(model: nn.Module, meta: dict[str, Any], cut: int, seed: int, n: int = 5000) -> Tensor:
    """The mean feature (`cut`, see `models.extract`) of `n` training samples of the model's source data
    set drawn from `seed`: SimpleShot's centre."""
    if not meta.get("source"):
        raise ConfigError("the backbone records no source data set, which the ncm method centres with: "
                          "save it with `lifelong pretrain` or leave out ncm")
    train = dataset(meta["source"]).train
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return extract_sharded(model, train.subset(idx), cut=cut).x.mean(0)


def fit_method(method: str, source: nn.Module, meta: dict[str, Any], target: Dataset, idx: Tensor,
               train: dict[str, Any]) -> tuple[float, float]:
    """One fit of a method that trains a network (not one on cached features) on the target samples `idx`,
    from the pretrained `source` (`meta`: its record): (target test accuracy, training seconds)."""
    data = dataclasses.replace(target, train=target.train.subset(idx))
    train = {**train, "reference": False}  # only the accuracy after training is kept: no test pass before it
    if method == "scratch":
        arch = meta["architecture"]
        torch.manual_seed(train["seed"])
        model = build(arch["model"], tuple(arch["input_shape"]), target.num_classes, tuple(arch["hidden"]))
    else:
        model = copy.deepcopy(source)
    per_method: dict[str, dict[str, Any]] = {"layerwise": {"lr_decay": 2.6}, "unfreeze": {"gradual": True}}
    options = per_method.get(method, {})
    if method == "l2sp":
        options = {"strategy": L2SP()}
    if method == "imprint":
        options = {"head": nearest_mean_head(extract(model, data.train), target.num_classes)}
    if method in ("lpft", "lpft-l2n"):
        result = lp_ft(model, data, probe="l2n" if method == "lpft-l2n" else "logistic", **train)
    else:
        result = finetune(model, data, **options, **train)
    return result.matrix[0][0], result.train_seconds


