"""`lifelong adapt`: unsupervised domain adaptation runs, labelled source, unlabelled target, target
labels for testing only.

`run_adaptation` runs every (method, seed) of an `AdaptConfig` and returns one record per run, the
records `lifelong adapt --json` prints. With `select` (a scorer of `selection.SCORERS`), each deep
method's weight λ is picked from its grid (`selection.GRIDS`) by `grid_scores`: one model per weight,
trained on the source minus a held-out validation split, scored without any target label; the record is
the best-scoring model's. The methods and their training are library code: `transfer.adaptation`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..configs import check_arguments, check_types, option, whole
from ..data import Dataset, stratified_split
from ..errors import ConfigError
from ..metrics import mean_std
from ..models import MODELS, build
from ..strategies import Strategy, hyper_parameters
from ..training import OPTIMIZERS
from ..transfer.adaptation.base import Adaptation
from ..transfer.adaptation.domains import DOMAINS, domain_pair
from ..transfer.adaptation.selection import GRIDS, SCORERS, VALID_FRACTION, SelectionData, ranked
from ..transfer.adaptation.tca import TCA
from ..transfer.adaptation.train import ADAPTATIONS, adapt, tca_accuracy, tensor_inputs
from .base import Experiment, Record, Unit

RECORD_KEYS = ("method", "source", "target", "shots", "seed", "acc", "source_acc", "train_seconds")


@dataclass
class AdaptConfig:
    """Everything a `lifelong adapt` needs; field names are the CLI options and YAML config keys."""

    source: str = option("fmnist", "source domain; see `lifelong list`")
    target: str = option("fmnist-rot30", f"target domain: {', '.join(DOMAINS.names())}")
    method: list[str] = option(ADAPTATIONS.names(), f"comma-separated, from {', '.join(ADAPTATIONS.names())} "
                               "(default: all)")
    method_options: dict[str, dict[str, Any]] = option({}, "options per method", cli=False)
    model: str = option("mlp", "model name; see `lifelong list`")
    hidden: list[int] = option([400, 400], "hidden layer sizes of the mlp")
    layer: str | None = option(None, "the module whose output the deep methods align, e.g. features.1 (the mlp's "
                               "first hidden layer) or layer3 (a resnet's) (default: the head's input); a method's "
                               "own option, e.g. --dann-layer, wins", metavar="NAME")
    epochs: int = option(2, "epochs over the source")
    batch_size: int = option(128, "source (and target) batch size")
    lr: float = option(1e-3, "learning rate")
    optimizer: str = option("adam", "optimiser", choices=OPTIMIZERS)
    seed: int = option(0, "first random seed")
    seeds: int = option(1, "number of seeds: seed, seed+1, ...")
    device: str = option("cpu", "cpu or cuda")
    select: str = option("", "pick each deep method's weight from its grid ("
                         + "; ".join(f"{m} " + ",".join(f"{v:g}" for v in g) for m, g in GRIDS.items())
                         + f") with a scorer that uses no target label: {', '.join(SCORERS.names())} (default: none)",
                         metavar="SCORER")

    def validate(self) -> None:
        check_types(self)
        if self.select:
            SCORERS.get(self.select)
        DOMAINS.get(self.source)
        DOMAINS.get(self.target)
        MODELS.get(self.model)
        if not self.method:
            raise ConfigError("no method given: set `method` to a name (see `lifelong adapt --help`)", "method")
        for name in self.method:
            ADAPTATIONS.get(name)
        for name, opts in self.method_options.items():
            unknown = set(opts) - set(hyper_parameters(ADAPTATIONS.get(name).factory))
            if unknown:
                first = sorted(unknown)[0]
                raise ConfigError(f"method {name!r} has no option {first!r}", f"{name}.{first}")
            check_arguments(ADAPTATIONS.get(name).factory, opts, name)
            make_method(self, name)  # bad values fail here, before any data is loaded
        whole(self, "seeds", "epochs", "batch_size")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class AdaptExperiment(Experiment):
    """`lifelong adapt`: every (method, seed) of an `AdaptConfig`, one unit of records per seed."""

    command = "adapt"
    help = "unsupervised domain adaptation: labelled source, unlabelled target (target labels only to test)"
    config_class = AdaptConfig
    schema = "lifelong.adapt/1"
    record_keys = RECORD_KEYS
    options_field = "method_options"
    options_registry = ADAPTATIONS

    def preflight(self) -> None:
        self.domains = domain_pair(self.config.source, self.config.target)

    def units(self, out: Path | None, progress: bool) -> Iterator[Unit]:
        for seed in range(self.config.seed, self.config.seed + self.config.seeds):
            yield f"seed{seed}", functools.partial(seed_adaptation, self.config, *self.domains, seed)

    def title(self, records: list[Record]) -> str:
        c = self.config
        chosen = ", ".join(f"{r['method']} {r['options']['lam']:g} (seed {r['seed']})" for r in records
                           if c.select and r["method"] in GRIDS)
        return (f"{c.source} -> {c.target}: unsupervised, target labels only to test; model {c.model}, {c.epochs} "
                f"epoch(s), seeds {c.seed}..{c.seed + c.seeds - 1}"
                + (f"; λ chosen by {c.select}: {chosen}" if chosen else ""))

    def table(self, records: list[Record]) -> tuple[list[str], list[list[str]]]:
        return summary(records)


def make_method(config: AdaptConfig, name: str, **overrides: Any) -> Strategy | TCA:
    """Method `name` of `ADAPTATIONS`: a deep method (an `Adaptation`) aligns `config.layer`, then come its
    `method_options` (its own `layer` wins), then `overrides` (a grid's λ)."""
    cls = ADAPTATIONS.get(name).factory
    shared = {"layer": config.layer} if issubclass(cls, Adaptation) else {}
    return cls(**shared | config.method_options.get(name, {}) | overrides)


def run_adaptation(config: AdaptConfig, on_record: Callable[[dict[str, Any]], None] | None = None
                   ) -> list[dict[str, Any]]:
    """Every (method, seed) of `config`; one record per run. TCA reuses the seed's source-only model
    (trained once when both are asked for) and its train_seconds include that model's training."""
    return AdaptExperiment(config).execute(on_record=on_record)


def seed_adaptation(config: AdaptConfig, source: Dataset, target: Dataset, seed: int) -> Iterator[dict[str, Any]]:
    """The records of one seed, one per method."""
    opts = dict(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, optimizer=config.optimizer,
                device=config.device)
    baseline: tuple[nn.Module, float, float, float] | None = None
    for name in config.method:
        method = make_method(config, name)
        if name in ("source-only", "tca") and baseline is None:
            model = _model(config, source, seed)
            baseline = (model, *adapt(model, source, target, None, seed=seed, **opts))
        if isinstance(method, TCA):
            assert baseline is not None
            acc, seconds = tca_accuracy(baseline[0], source, target, method, seed=seed)
            source_acc, seconds = None, baseline[3] + seconds
        elif isinstance(method, Adaptation) and config.select:
            grid = grid_scores(config, name, source, target, seed, [config.select])
            best = ranked(grid, lambda g: g["scores"][config.select])[0]
            acc, source_acc, seconds = best["acc"], best["source_acc"], sum(g["train_seconds"] for g in grid)
            method = make_method(config, name, lam=best["lam"])
        elif isinstance(method, Adaptation):
            acc, source_acc, seconds = adapt(_model(config, source, seed), source, target, method, seed=seed, **opts)
        else:
            assert baseline is not None
            acc, source_acc, seconds = baseline[1:]
        yield {"method": name, "source": config.source, "target": config.target, "shots": 0, "seed": seed,
               "acc": acc, "source_acc": source_acc, "train_seconds": seconds,
               "options": method.options() if isinstance(method, (Strategy, TCA)) else {}}


def grid_scores(config: AdaptConfig, name: str, source: Dataset, target: Dataset, seed: int, scorers: list[str],
                *, n_fit: int = 2000) -> list[dict[str, Any]]:
    """Method `name` (its other options from `config`) trained with each weight λ of GRIDS[name] on the
    source training set minus a stratified VALID_FRACTION held out for selection; one entry per λ:
    {"lam", "scores": {scorer: value}, "acc", "source_acc", "train_seconds"}. The scorers see the held-out
    source split, `n_fit` source training inputs and `n_fit` unlabelled target training inputs; "acc",
    the target test accuracy, is for reporting only and chooses nothing."""
    train, valid = stratified_split(source.train, VALID_FRACTION, seed=seed)
    g = torch.Generator().manual_seed(seed)
    data = SelectionData(valid, tensor_inputs(train)[torch.randperm(len(train), generator=g)[:n_fit]],
                         tensor_inputs(target.train)[torch.randperm(len(target.train), generator=g)[:n_fit]])
    opts = dict(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, optimizer=config.optimizer,
                device=config.device, seed=seed)
    out = []
    for lam in GRIDS[name]:
        model, method = _model(config, source, seed), make_method(config, name, lam=lam)
        assert isinstance(method, Adaptation)  # GRIDS holds deep methods only
        acc, source_acc, seconds = adapt(model, dataclasses.replace(source, train=train), target, method, **opts)
        scores = {s: SCORERS.get(s).factory(model, data) for s in scorers}
        out.append({"lam": lam, "scores": scores, "acc": acc, "source_acc": source_acc, "train_seconds": seconds})
    return out


def _model(config: AdaptConfig, source: Dataset, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    try:
        return build(config.model, source.input_shape, source.num_classes, tuple(config.hidden))
    except ValueError as err:
        raise ConfigError(f"model {config.model!r} does not fit {config.source}: {err}") from None


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean, std = mean_std(values)
    return f"{mean:.2f} ± {std:.2f}" if len(values) > 1 else f"{mean:.2f}"


def summary(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per method, mean ± std over seeds of the target and source test accuracy
    (%), the mean gain over source-only (when it ran) and the mean training time."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_method.setdefault(r["method"], []).append(r)
    base = [r["acc"] * 100 for r in by_method.get("source-only", [])]
    rows = []
    for method, recs in by_method.items():
        acc = [r["acc"] * 100 for r in recs]
        source = [r["source_acc"] * 100 for r in recs if r["source_acc"] is not None]
        gain = f"{mean_std(acc)[0] - mean_std(base)[0]:+.2f}" if base else "-"
        seconds = mean_std([r["train_seconds"] for r in recs])[0]
        rows.append([method, str(len(recs)), _cell(acc), _cell(source), gain, f"{seconds:.1f}"])
    return ["Method", "Seeds", "Target acc %", "Source acc %", "vs source-only", "Train (s)"], rows
