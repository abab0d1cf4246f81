"""A run: configuration -> (strategy, seed) fits -> records, a results directory and a table.

The CLI is a thin front over `RunConfig`, `run` and `write_run_dir`; Python users can call them too.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .data import BENCHMARKS, SCENARIOS, benchmark
from .errors import ConfigError, LifelongError
from .files import atomic_write_json
from .models import HEADS, MODELS, build, with_head
from .report import plot_curves, plot_matrix
from .strategies import STRATEGIES, Compose, Strategy, hyper_parameters
from .training import Result, Trainer

RESULTS_SCHEMA = "lifelong.results/1"
RECORD_KEYS = ("strategy", "benchmark", "scenario", "seed", "acc", "bwt", "fwt", "forgetting", "matrix",
               "train_seconds", "samples_per_second", "peak_rss_mb")


@dataclass
class RunConfig:
    """Everything a `lifelong run` needs; field names are the CLI options and YAML config keys."""

    benchmark: str = "split-fmnist"
    scenario: str | None = None  # the benchmark's own default when None
    n_tasks: int | None = None
    class_order: list[int] | None = None
    strategy: list[str] = field(default_factory=lambda: ["naive", "joint"])
    strategy_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    model: str = "mlp"
    head: str = "linear"
    hidden: list[int] = field(default_factory=lambda: [400, 400])
    epochs: int = 1
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    seeds: int = 1
    device: str = "cpu"

    def validate(self) -> None:
        BENCHMARKS.get(self.benchmark)
        MODELS.get(self.model)
        if self.head not in HEADS:
            raise ConfigError(f"unknown head {self.head!r}: choose one of {', '.join(HEADS)}")
        if self.scenario is not None and self.scenario not in SCENARIOS:
            raise ConfigError(f"unknown scenario {self.scenario!r}: choose one of {', '.join(SCENARIOS)}")
        if not self.strategy:
            raise ConfigError("no strategy given: pass --strategy NAME (see `lifelong list`)")
        for spec in self.strategy:
            for name in spec.split("+"):
                STRATEGIES.get(name)
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"--seeds must be a whole number >= 1, got {self.seeds!r}")
        if self.n_tasks is not None and (not isinstance(self.n_tasks, int) or self.n_tasks < 1):
            raise ConfigError(f"--n-tasks must be a whole number >= 1, got {self.n_tasks!r}")
        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ConfigError(f"--hidden takes positive layer sizes like 400,400, got {self.hidden!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_keys() -> set[str]:
    return {f.name for f in dataclasses.fields(RunConfig)}


def make_strategy(spec: str, options: dict[str, dict[str, Any]]) -> Strategy:
    """A strategy from its CLI name; `a+b` composes several (hooks run in that order)."""
    parts = []
    for name in spec.split("+"):
        cls = STRATEGIES.get(name).factory
        opts = options.get(name, {})
        unknown = set(opts) - set(hyper_parameters(cls))
        if unknown:
            raise ConfigError(f"strategy {name!r} has no option {sorted(unknown)[0]!r}")
        parts.append(cls(**opts))
    return parts[0] if len(parts) == 1 else Compose(*parts)


def environment() -> dict[str, Any]:
    return {
        "lifelong": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "platform": platform.platform(), "cpus": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def record(config: RunConfig, spec: str, seed: int, strategy: Strategy, result: Result) -> dict[str, Any]:
    """One (strategy, seed) run as a flat, JSON-ready dictionary."""
    m = result.metrics
    return {
        "strategy": spec, "benchmark": config.benchmark, "scenario": result.stream["scenario"], "seed": seed,
        **{k: m[k] for k in ("acc", "bwt", "fwt", "forgetting")}, "matrix": result.matrix,
        **{k: m[k] for k in ("train_seconds", "samples_per_second", "peak_rss_mb")},
        "learning_accuracy": m["learning_accuracy"], "strategy_memory_bytes": m["strategy_memory_bytes"],
        "metrics": m, "reference": result.reference, "losses": result.losses,
        "task_seconds": result.task_seconds, "eval_seconds": result.eval_seconds,
        "samples_seen": result.samples_seen, "options": strategy.options(), "stream": result.stream,
    }


def run(config: RunConfig, on_record: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = False, checkpoints: Path | None = None) -> list[dict[str, Any]]:
    """Fit every (strategy, seed) of `config` in turn; returns one record per fit. With
    `checkpoints`, each fit keeps its latest checkpoint there as `<strategy>-seed<seed>`."""
    config.validate()
    records = []
    for spec in config.strategy:
        for seed in range(config.seed, config.seed + config.seeds):
            stream = benchmark(config.benchmark, n_tasks=config.n_tasks, scenario=config.scenario, seed=seed,
                               class_order=config.class_order)
            torch.manual_seed(seed)
            try:
                model = with_head(build(config.model, stream.input_shape, stream.n_outputs, tuple(config.hidden)),
                                  config.head)
            except ValueError as err:
                raise ConfigError(f"model {config.model!r} does not fit {config.benchmark}: {err}") from None
            strategy = make_strategy(spec, config.strategy_options)
            trainer = Trainer(model, strategy, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                              optimizer=config.optimizer, momentum=config.momentum,
                              weight_decay=config.weight_decay, seed=seed, device=config.device,
                              progress=progress, label=f"{spec} seed {seed}",
                              checkpoint=checkpoints / f"{spec.replace('+', '_')}-seed{seed}" if checkpoints else None)
            rec = record(config, spec, seed, strategy, trainer.fit(stream))
            records.append(rec)
            if on_record is not None:
                on_record(rec)
    return records


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse, before any training, an output folder we could not or should not write."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder: choose another --out")
    if (out / "results.json").exists() and not overwrite:
        raise ConfigError(f"--out {out} already holds a finished run: pass --overwrite to replace it or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create --out {out}: {err.strerror}") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out} is not writable: choose another --out")


def write_run_dir(out: Path, config: RunConfig, records: list[dict[str, Any]]) -> None:
    """config.json, plots, then results.json last (its presence marks the run as finished)."""
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_strategy.setdefault(rec["strategy"], []).append(rec)
    for spec, recs in by_strategy.items():
        mean = torch.tensor([r["matrix"] for r in recs], dtype=torch.float64).mean(0).tolist()
        label = f"{spec} ({config.benchmark}, {recs[0]['scenario']}, {len(recs)} seed{'s' * (len(recs) > 1)})"
        safe = spec.replace("+", "_")
        plot_matrix(mean, out / f"matrix-{safe}.png", label)
        plot_curves(mean, out / f"curves-{safe}.png", label)
    atomic_write_json(out / "config.json", config.to_dict())
    atomic_write_json(out / "results.json", {
        "schema": RESULTS_SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "config": config.to_dict(),
        "environment": environment(),
        "runs": records,
    })


def load_results(path: Path) -> dict[str, Any]:
    """Read a results.json written by `write_run_dir`, checking its schema."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LifelongError(f"cannot read results file {path}: {err}") from None
    if data.get("schema") != RESULTS_SCHEMA:
        raise LifelongError(f"{path} is not a lifelong results file of schema {RESULTS_SCHEMA}")
    return data

