"""`lifelong transfer`: learning curves of transfer, target test accuracy against the number of
labelled target samples per class, for several methods and seeds.

Per seed: a source model, pretrained on `source` with that seed (or one saved model, `backbone`, for
every seed); the backbone's features of the whole target data set at its transfer layer (`feature_cut`,
default the model's `transfer_cut`: the image CNN's conv trunk), computed once; then for every number
of shots k, `draws` class-balanced samples of k labelled training samples per class (draw d from seed
seed + 1000 d; None: the whole training split, once), and for every method (`TRANSFER_METHODS`) a model trained
on each sample alone, tested on the whole target test split. A record holds the mean accuracy over the
draws (`accs`: each draw's), so that one-shot differences are not one draw's luck. Every fit makes at
least `steps` optimiser steps (whole epochs, at least `epochs`), so that one-shot runs are trained too.
The methods themselves are library code: `transfer.curve`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..configs import check_types, option, whole
from ..data import Dataset, dataset
from ..data.text import Encoder, encoded, encoder_hash
from ..errors import ConfigError
from ..models import MODELS, info, load
from ..plots import plot_learning_curve, save_png
from ..tables import curve_rows
from ..data.stream import per_class
from ..transfer.curve import ON_FEATURES, TRANSFER_METHODS, fit_method, source_mean
from ..transfer.features import cache, fit_head, transfer_cut
from ..transfer.pretrain import pretrain
from .base import Experiment, Record, Unit

SCHEMA = "lifelong.transfer/1"
PRETRAINED = "minilm"  # a source model that comes pretrained: no `source` data set
RECORD_KEYS = ("method", "source", "target", "shots", "seed", "acc", "train_seconds")


@dataclass
class CurveConfig:
    """Everything a `lifelong transfer` needs; field names are the CLI options and YAML config keys."""

    source: str | None = option(None, "data set to pretrain on (default fmnist:0-4); none for a model that comes "
                                "pretrained (minilm)")
    target: str = option("fmnist:5-9", "target data set")
    shots: list[int | None] = option([1, 5, 10, 50, None], "labelled target samples per class; all: the whole "
                                     "training split")
    method: list[str] = option(["scratch", "features", "finetune", "l2sp"],
                               f"comma-separated, from {', '.join(TRANSFER_METHODS)}")
    model: str = option("cnn", "source model (minilm: the pretrained text encoder, for a text target such as bbc-news; "
                        "its scratch baseline is the bag-of-words model bow: docs/text.md)")
    freeze: str | None = option(None, "minilm: the layers that the fine-tuning methods train, top-N (default top-2) "
                                "or all (the encoder frozen); the layers below run once, their states cached")
    hidden: list[int] = option([400, 400], "hidden layer sizes of the mlp")
    backbone: str | None = option(None, "a saved model (`lifelong pretrain`) used for every seed instead of "
                                  "pretraining")
    source_epochs: int = option(2, "pretraining epochs")
    feature_cut: int | None = option(None, "features/probe/ncm: take the features this many backbone modules below "
                                     "the top (default: the model's transfer layer, cnn: 2 = its convolutional "
                                     "trunk; mlp, resnet18: 0 = the head's input)")
    draws: int = option(1, "labelled samples drawn per shots and seed, accuracy averaged")
    epochs: int = option(1, "epochs per target fit, at least")
    steps: int = option(100, "least optimiser steps per target fit")
    batch_size: int = option(128, "mini-batch size")
    lr: float = option(1e-3, "learning rate")
    seed: int = option(0, "first random seed")
    seeds: int = option(1, "number of seeds: seed, seed+1, ...")
    device: str = option("cpu", "cpu or cuda")

    def validate(self) -> None:
        check_types(self)
        for name in self.method:
            if name not in TRANSFER_METHODS:
                raise ConfigError(f"unknown transfer method {name!r}: choose from {', '.join(TRANSFER_METHODS)}",
                                  "method")
        if not self.method or not self.shots:
            raise ConfigError("give at least one `method` and one `shots` value", "method")
        if any(k is not None and (not isinstance(k, int) or k < 1) for k in self.shots):
            raise ConfigError(f"`shots` takes whole numbers >= 1 or 'all', got {self.shots}", "shots")
        whole(self, "feature_cut", least=0)
        whole(self, "source_epochs", "epochs", "steps", "batch_size", "seeds", "draws")
        if self.backbone is None:
            MODELS.get(self.model)
        if self.model == PRETRAINED:
            if self.source is not None or self.backbone is not None:
                raise ConfigError(f"{PRETRAINED} comes pretrained: leave out `source` and `backbone`", "source")
            if self.freeze not in (None, "all") and not re.fullmatch(r"top-[1-6]", self.freeze):
                raise ConfigError(f"`freeze` takes top-N (N 1 to 6) or all, got {self.freeze!r}", "freeze")
            if "ncm" in self.method:
                raise ConfigError(f"ncm centres features with the source data's mean, which {PRETRAINED} does not "
                                  "come with: leave out ncm", "method")
        elif self.freeze is not None:
            raise ConfigError(f"`freeze` chooses the trained layers of {PRETRAINED}: leave it out for {self.model}",
                              "freeze")

    @property
    def source_name(self) -> str:
        """The data set the source model is pretrained on (`source`, by default fmnist:0-4)."""
        return self.source or "fmnist:0-4"


def _source(config: CurveConfig, seed: int, target: Dataset) -> tuple[nn.Module, dict[str, Any]]:
    if config.model == PRETRAINED:  # its scratch baseline: the bag of words on the same token ids
        from ..models.text import MiniLM

        return MiniLM(target.num_classes, freeze=config.freeze or "top-2"), {
            "source": "all-MiniLM-L6-v2", "pretrained": True,
            "architecture": {"model": "bow", "input_shape": list(target.input_shape), "hidden": config.hidden}}
    if config.backbone is not None:
        return load(config.backbone, config.device), info(config.backbone)
    return pretrain(config.source_name, config.model, hidden=config.hidden, seed=seed, epochs=config.source_epochs,
                    lr=config.lr, batch_size=config.batch_size, device=config.device)


def _target(config: CurveConfig) -> Dataset:
    """The target data set, checked against the source model's input shape."""
    target = dataset(config.target)
    if config.model == PRETRAINED:
        if target.train.inputs().is_floating_point() or len(target.input_shape) != 1:
            raise ConfigError(f"{PRETRAINED} reads token ids: choose a text `target` (bbc-news, fortunes)", "target")
        return target
    shape = tuple(info(config.backbone)["architecture"]["input_shape"]) if config.backbone is not None \
        else dataset(config.source_name).input_shape
    if shape != target.input_shape:
        raise ConfigError(f"the source model takes inputs of shape {shape}, {config.target} has {target.input_shape}: "
                          "choose a `source` and `target` of the same shape", "target")
    return target


def learning_curve(config: CurveConfig, on_record: Callable[[dict[str, Any]], None] | None = None
                   ) -> list[dict[str, Any]]:
    """One record per (method, shots, seed), in that order within each seed (see the module docstring)."""
    return TransferExperiment(config).execute(on_record=on_record)


def seed_curve(config: CurveConfig, target: Dataset, seed: int) -> Iterator[dict[str, Any]]:
    """The records of one seed: a source model (pretrained with `seed`, or the saved backbone), then
    every (shots, method)."""
    source, meta = _source(config, seed, target)
    ids = target  # scratch reads token ids; the others the states below the encoder's trained layers, cached
    if meta.get("pretrained"):
        encoder: Any = source  # a models.text.MiniLM
        target = encoded(target, Encoder(encoder.encode_below, {"encoder": encoder_hash(),
                                                                "states": f"below {encoder.cut}"}))
    cut = transfer_cut(source, config.feature_cut)
    cached = cache(source, target, cut=cut) if set(ON_FEATURES) & set(config.method) else None
    centre = source_mean(source, meta, cut, seed) if "ncm" in config.method else None
    for shots in config.shots:
        draws = [per_class(target.train, shots, seed + 1000 * d) for d in range(config.draws if shots else 1)]
        n = len(draws[0])
        epochs = max(config.epochs, math.ceil(config.steps / math.ceil(n / config.batch_size)))
        train: dict[str, Any] = dict(epochs=epochs, lr=config.lr, batch_size=config.batch_size, seed=seed,
                                     device=config.device)
        for method in config.method:
            rec: dict[str, Any] = {
                "method": method, "source": meta.get("source", config.backbone), "target": config.target,
                "shots": shots if shots is not None else "all", "seed": seed, "n_train": n,
                "n_classes": target.num_classes, "epochs": epochs, "feature_cut": cut, "draws": len(draws),
                "source_acc": meta.get("acc"), "extract_seconds": 0.0}
            fits = []
            for idx in draws:
                if method in ON_FEATURES:
                    assert cached is not None
                    f_train, f_test, rec["extract_seconds"] = cached
                    _, acc, seconds = fit_head(f_train.subset(idx), f_test, target.num_classes,
                                               head=ON_FEATURES[method], centre=centre, **train)
                    fits.append((acc, seconds))
                else:
                    fits.append(fit_method(method, source, meta, ids if method == "scratch" else target, idx, train))
            rec["accs"] = [acc for acc, _ in fits]
            rec["acc"] = sum(rec["accs"]) / len(fits)
            rec["train_seconds"] = sum(seconds for _, seconds in fits) / len(fits)
            yield rec


class TransferExperiment(Experiment):
    """`lifelong transfer`: learning curves of a `CurveConfig`, one unit of records per seed."""

    command = "transfer"
    help = "learning curves: target accuracy against labelled target samples per class"
    config_class = CurveConfig
    schema = SCHEMA
    record_keys = RECORD_KEYS

    def preflight(self) -> None:
        self.target = _target(self.config)

    def units(self, out: Path | None, progress: bool) -> Iterator[Unit]:
        target = self.target
        for seed in range(self.config.seed, self.config.seed + self.config.seeds):
            yield f"seed{seed}", functools.partial(seed_curve, self.config, target, seed)

    def title(self, records: list[Record]) -> str:
        c = self.config
        return (f"{records[0]['source']} -> {c.target}: target test accuracy (%) by labelled samples per class, "
                f"seeds {c.seed}..{c.seed + c.seeds - 1}")

    def table(self, records: list[Record]) -> tuple[list[str], list[list[str]]]:
        return curve_rows(records)

    def plots(self, out: Path, records: list[Record]) -> None:
        save_png(plot_learning_curve(records, f"{records[0]['source']} -> {self.config.target}"), out / "curve.png")


def write_curve_dir(out: Path, config: CurveConfig, records: list[dict[str, Any]]) -> None:
    """curve.png, config.json, then results.json (schema `lifelong.transfer/1`: config and records), written last."""
    TransferExperiment(config).write(out, records)
