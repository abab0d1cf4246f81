"""Pretraining a source model on a named data set, and saving it for transfer (`lifelong pretrain`)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..configs import check_types, option, whole
from ..data import dataset, from_tasks
from ..data.catalog import normalisation
from ..errors import ConfigError
from ..experiment import Experiment, Record, Unit
from ..models import MODELS, build, save
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



@dataclass
class PretrainConfig:
    """Everything a `lifelong pretrain` needs; field names are the CLI options and YAML config keys."""

    benchmark: str = option("fmnist:0-4", "data set, whole or some classes: fmnist, digits, mnist1d, e.g. fmnist:0-4")
    model: str = option("cnn", "model name; see `lifelong list`")
    hidden: list[int] = option([400, 400], "hidden layer sizes of the mlp")
    epochs: int = option(1, "epochs")
    lr: float = option(1e-3, "learning rate")
    batch_size: int = option(128, "mini-batch size")
    seed: int = option(0, "random seed")
    device: str = option("cpu", "cpu or cuda")

    def validate(self) -> None:
        check_types(self)
        dataset(self.benchmark), MODELS.get(self.model)  # bad names fail before an output folder is touched
        whole(self, "epochs", "batch_size")
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"`hidden` takes positive layer sizes like 400,400, got {self.hidden!r}", "hidden")


class PretrainExperiment(Experiment):
    """`lifelong pretrain`: one model, trained and saved in the run folder (model.safetensors, model.json)."""

    command = "pretrain"
    help = "train a source model on a data set and save it for transfer"
    config_class = PretrainConfig
    schema = "lifelong.pretrain/1"
    record_keys = ("benchmark", "model", "seed", "acc", "train_seconds", "saved")
    marker = "model.json"  # also the mark of a model saved before run folders had results.json

    def units(self, out: Path | None, progress: bool) -> Iterator[Unit]:
        if out is None:
            raise ConfigError("pretrain saves its model in a folder: give one (`out`)", "out")
        yield "model", functools.partial(self._train, out, progress)

    def _train(self, out: Path, progress: bool) -> Iterator[Record]:
        c = self.config
        model, rec = pretrain(c.benchmark, c.model, hidden=c.hidden, seed=c.seed, epochs=c.epochs, lr=c.lr,
                              batch_size=c.batch_size, device=c.device, progress=progress)
        yield {"benchmark": c.benchmark, "model": c.model, **rec, "saved": str(save_pretrained(out, model, rec))}

    def title(self, records: list[Record]) -> str:
        r, c = records[0], self.config
        return (f"{c.benchmark}: {c.model}, {c.epochs} epoch(s), test accuracy {r['acc'] * 100:.2f}%, "
                f"{r['train_seconds']:.1f} s; saved to {r['saved']}.safetensors and {r['saved']}.json")

    def table(self, records: list[Record]) -> tuple[list[str], list[list[str]]]:
        return [], []  # the title line says it all
