"""Pretraining a source model on a named data set, and saving it for transfer (`lifelong pretrain`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import dataset, from_tasks
from ..data.catalog import normalisation
from ..models import build, save
from ..training import Trainer


def pretrain(source: str, model: str = "cnn", *, hidden: Sequence[int] = (400, 400), seed: int = 0,
             **trainer_options: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Train a `model` (registry name) on the data set `source` (e.g. "fmnist:0-4"); returns it and a
    record (architecture, classes, normalisation, source, seed, test accuracy, training seconds) that
    `save_pretrained` stores with it. `trainer_options` go to `Trainer` (epochs, lr, batch_size...)."""
    data = dataset(source)
    torch.manual_seed(seed)
    net = build(model, data.input_shape, data.num_classes, tuple(hidden))
    result = Trainer(net, seed=seed, **trainer_options).fit(from_tasks([data], name=source))
    return net, {
        "architecture": {"model": model, "input_shape": list(data.input_shape), "num_classes": data.num_classes,
                         "hidden": list(hidden)},
        "classes": data.class_names, "normalisation": normalisation(source), "source": source, "seed": seed,
        "acc": result.matrix[0][0], "train_seconds": result.train_seconds,
        "trainer": {k: v for k, v in trainer_options.items() if k in ("epochs", "lr", "batch_size", "optimizer")},
    }


def save_pretrained(path: str | Path, model: nn.Module, record: dict[str, Any]) -> Path:
    """Save a model from `pretrain` with its record; returns the checkpoint stem (see `models.save`)."""
    meta = {k: v for k, v in record.items() if k not in ("architecture", "classes", "normalisation")}
    return save(path, model, architecture=record["architecture"], classes=record["classes"],
                normalisation=record["normalisation"], meta=meta)
