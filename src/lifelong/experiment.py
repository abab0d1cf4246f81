"""A run: configuration -> (strategy, seed) fits -> records, a results directory and a table.

The CLI is a thin front over `RunConfig`, `run` and `write_run_dir`; Python users can call them too.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .data import BENCHMARKS, SCENARIOS, Stream, benchmark
from .errors import ConfigError, LifelongError
from .checkpoint import States
from .files import atomic_write_json, exclusive
from .models import HEADS, MODELS, build, load_backbone, with_head
from .models import info as model_info
from .plots import plot_curves, plot_matrix
from .runlog import write_csv, write_tensorboard
from .strategies import STRATEGIES, Compose, Strategy, hyper_parameters
from .training import Result, Trainer, resolve_device

RESULTS_SCHEMA = "lifelong.results/1"
RUN_FORMAT = "lifelong.run/1"
FREEZE = ("none", "backbone")
SHARED_OPTIONS = ("buffer_size", "replay_batch_size")  # run options that set every strategy having them
OPTIONAL = {"optimizer": str, "lr": float, "buffer_size": int, "replay_batch_size": int}  # None: not given
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
    buffer_size: int | None = None  # the memory of every strategy that has one (its own option wins)
    replay_batch_size: int | None = None  # the same for the replayed samples per step
    model: str = "mlp"
    head: str = "linear"
    hidden: list[int] = field(default_factory=lambda: [400, 400])
    epochs: int = 1
    batch_size: int = 128
    lr: float | None = None  # None: the strategy's own (hat: 0.05), else 1e-3 (`training.default_optimizer`)
    optimizer: str | None = None  # None: the strategy's own (hat: sgd), else adam
    momentum: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    seeds: int = 1
    device: str = "cpu"
    backbone: str | None = None  # a saved model (lifelong pretrain) whose backbone replaces `model`'s
    freeze: str = "none"  # "backbone": train only the head
    checkpoint_every: int = 0  # save the whole state every N steps too (needs --out); 0: after every task only
    validation: float = 0.0  # > 0: hold out this fraction of each task's training data and evaluate on it, not on test

    def check_types(self) -> None:
        """Every value must have its option's type (YAML files and Python callers can pass anything)."""
        default = RunConfig()
        for key, value in self.to_dict().items():
            want = OPTIONAL[key]() if key in OPTIONAL else getattr(default, key)
            if key in ("scenario", "n_tasks", "class_order", *OPTIONAL) and value is None:
                continue
            ok = isinstance(value, type(want)) if want is not None else True
            if isinstance(want, float) and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if isinstance(value, bool) and not isinstance(want, bool):
                ok = False
            if key in ("n_tasks",):
                ok = isinstance(value, int) and not isinstance(value, bool)
            if key == "class_order":
                ok = isinstance(value, list) and all(isinstance(v, int) for v in value)
            if not ok:
                raise ConfigError(f"config value {key}: {value!r} has the wrong type")

    def validate(self) -> None:
        self.check_types()
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
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every must be a whole number of steps >= 0, got {self.checkpoint_every!r}")
        if self.n_tasks is not None and (not isinstance(self.n_tasks, int) or self.n_tasks < 1):
            raise ConfigError(f"--n-tasks must be a whole number >= 1, got {self.n_tasks!r}")
        if self.freeze not in FREEZE:
            raise ConfigError(f"unknown --freeze {self.freeze!r}: choose one of {', '.join(FREEZE)}")
        if self.backbone is not None:
            model_info(self.backbone)  # a missing or foreign file fails before any training
        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ConfigError(f"--hidden takes positive layer sizes like 400,400, got {self.hidden!r}")
        # the Trainer checks these too, but only once a fit starts: an --out folder is touched by then
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size)):
            if value < 1:
                raise ConfigError(f"{flag} must be a whole number >= 1, got {value!r}")
        for key in SHARED_OPTIONS:
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"--{key.replace('_', '-')} must be a whole number >= 1, got {getattr(self, key)!r}")
        if not 0 <= self.validation < 1:
            raise ConfigError(f"--validation is the fraction of training data held out, from 0 to below 1, "
                              f"got {self.validation!r}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"the learning rate (--lr) must be a positive number, got {self.lr!r}")
        resolve_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def shared_options(self) -> dict[str, Any]:
        """The SHARED_OPTIONS given (not None), for `make_strategy`."""
        return {k: getattr(self, k) for k in SHARED_OPTIONS if getattr(self, k) is not None}


def config_keys() -> set[str]:
    return {f.name for f in dataclasses.fields(RunConfig)}


def make_strategy(spec: str, options: dict[str, dict[str, Any]], shared: dict[str, Any] | None = None) -> Strategy:
    """A strategy from its CLI name; `a+b` composes several (hooks run in that order). `shared` options
    (e.g. {"buffer_size": 200}) go to every strategy with that argument whose `options` do not set it."""
    parts = []
    for name in spec.split("+"):
        cls = STRATEGIES.get(name).factory
        opts = options.get(name, {})
        unknown = set(opts) - set(hyper_parameters(cls))
        if unknown:
            raise ConfigError(f"strategy {name!r} has no option {sorted(unknown)[0]!r}")
        parts.append(cls(**{k: v for k, v in (shared or {}).items() if k in hyper_parameters(cls)} | opts))
    return parts[0] if len(parts) == 1 else Compose(*parts)


def make_stream(config: RunConfig, seed: int) -> Stream:
    """The run's stream for `seed`. With `validation` > 0 each task's training data loses that fraction
    (stratified, drawn from the seed), which replaces its test split: a run for choosing
    hyper-parameters, whose accuracies never come from the test data."""
    stream = benchmark(config.benchmark, n_tasks=config.n_tasks, scenario=config.scenario, seed=seed,
                       class_order=config.class_order, valid_fraction=config.validation)
    if config.validation:
        stream.tasks = [dataclasses.replace(t, test=t.valid, valid=None) for t in stream.tasks]
    return stream


def environment() -> dict[str, Any]:
    return {
        "lifelong": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "platform": platform.platform(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def record(config: RunConfig, spec: str, seed: int, strategy: Strategy, result: Result) -> dict[str, Any]:
    """One (strategy, seed) run as a flat, JSON-ready dictionary."""
    m = result.metrics
    return {
        "strategy": spec, "benchmark": config.benchmark, "scenario": result.stream["scenario"], "seed": seed,
        "evaluated_on": "validation" if config.validation else "test",
        **{k: m[k] for k in ("acc", "bwt", "fwt", "forgetting")}, "matrix": result.matrix,
        **{k: m[k] for k in ("train_seconds", "samples_per_second", "peak_rss_mb")},
        "learning_accuracy": m["learning_accuracy"], "strategy_memory_bytes": m["strategy_memory_bytes"],
        "metrics": m, "reference": result.reference, "losses": result.losses,
        "task_seconds": result.task_seconds, "eval_seconds": result.eval_seconds,
        "samples_seen": result.samples_seen, "options": strategy.options(), "stream": result.stream,
    }


def run(config: RunConfig, on_record: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = False, checkpoints: Path | None = None, resume: bool = False) -> list[dict[str, Any]]:
    """Fit every (strategy, seed) of `config` in turn; returns one record per fit. With
    `checkpoints`, each fit keeps its latest checkpoint there as `<strategy>-seed<seed>`, its resumable
    states in `<strategy>-seed<seed>.resume/` and, once finished, its record in
    `<strategy>-seed<seed>.record.json`; `run.json` holds the configuration and version.

    `resume=True` continues the run in `checkpoints`, if one was started there: finished fits are
    not redone, an interrupted one continues from its newest intact state (on the CPU, the records'
    accuracy matrices are identical to those of an uninterrupted run). A run of another configuration
    (`checkpoint_every` aside) or of another lifelong version is refused. Without `resume`, what an
    earlier run left in `checkpoints` is deleted."""
    config.validate()
    if config.checkpoint_every and checkpoints is None:
        raise ConfigError("--checkpoint-every saves the states in the run folder: add --out DIR")
    _preflight(config)
    if checkpoints is not None:
        _begin(checkpoints, config, resume)
    records = []
    for spec in config.strategy:
        for seed in range(config.seed, config.seed + config.seeds):
            name = f"{spec.replace('+', '_')}-seed{seed}"
            done = checkpoints / f"{name}.record.json" if checkpoints else None
            if resume and done is not None and done.exists():
                try:
                    records.append(json.loads(done.read_text()))
                except (OSError, ValueError) as err:
                    raise LifelongError(f"cannot read {done} ({err}): delete it to run that fit again") from None
                if on_record is not None:
                    on_record(records[-1])
                continue
            stream = make_stream(config, seed)
            torch.manual_seed(seed)
            try:
                model = with_head(build(config.model, stream.input_shape, stream.n_outputs, tuple(config.hidden))
                                  if config.backbone is None else
                                  load_backbone(config.backbone, stream.input_shape, stream.n_outputs, config.device),
                                  config.head)
                model.freeze_backbone(config.freeze == "backbone")
            except ValueError as err:
                raise ConfigError(f"model {config.model!r} does not fit {config.benchmark}: {err}") from None
            strategy = make_strategy(spec, config.strategy_options, config.shared_options())
            trainer = Trainer(model, strategy, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                              optimizer=config.optimizer, momentum=config.momentum,
                              weight_decay=config.weight_decay, seed=seed, device=config.device,
                              progress=progress, label=f"{spec} seed {seed}",
                              checkpoint=checkpoints / name if checkpoints else None,
                              checkpoint_every=config.checkpoint_every)
            rec = record(config, spec, seed, strategy, trainer.fit(stream, resume=resume))
            rec |= {"optimizer": trainer.optimizer_name, "lr": trainer.lr}
            if done is not None and trainer.states is not None:
                atomic_write_json(done, rec)
                trainer.states.clear()  # the record replaces them
            records.append(rec)
            if on_record is not None:
                on_record(rec)
    return records


def _preflight(config: RunConfig) -> None:
    """Load the data and check what depends on it before an earlier run's files are touched: bad data
    files, and a memory (`buffer_size` given in the options) larger than the whole stream."""
    stream = make_stream(config, config.seed)
    total = sum(len(t.train) for t in stream)
    for name, options in [("", {"buffer_size": config.buffer_size}), *config.strategy_options.items()]:
        size, flag = options.get("buffer_size"), f"--{name}-buffer-size" if name else "--buffer-size"
        if isinstance(size, int) and size > total:
            raise ConfigError(f"{flag} {size} is larger than the {total} training samples of the whole "
                              "stream (the memory could never fill): lower it, or use --strategy cumulative")


def _begin(checkpoints: Path, config: RunConfig, resume: bool) -> None:
    """Write run.json for a new run (deleting an earlier run's states and records), or, resuming,
    check that the run started in `checkpoints` has this configuration (and warn if PyTorch now uses
    another number of CPU threads, which can change the last bits of the results)."""
    info = _run_file(checkpoints) if resume else None
    if info is not None:
        theirs, ours = _stored(info, checkpoints).to_dict(), json.loads(json.dumps(config.to_dict()))
        for key, value in ours.items():
            if key != "checkpoint_every" and theirs.get(key) != value:
                raise ConfigError(f"{checkpoints.parent} holds a run of another configuration ({key}: "
                                  f"{theirs.get(key)!r} there, {value!r} here): resume it with its own options "
                                  f"(`lifelong run --resume {checkpoints.parent}`), or choose another --out")
        if info.get("threads", torch.get_num_threads()) != torch.get_num_threads():
            warnings.warn(f"{checkpoints.parent} was started with {info['threads']} CPU thread(s) and continues "
                          f"with {torch.get_num_threads()}: sums may round differently from an uninterrupted run; "
                          f"pass --threads {info['threads']} for identical results", stacklevel=2)
        return
    for path in checkpoints.glob("*.record.json"):
        path.unlink()
    for path in checkpoints.glob("*.resume"):
        States(path, path.stem).clear()
    checkpoints.mkdir(parents=True, exist_ok=True)
    atomic_write_json(checkpoints / "run.json", {"format": RUN_FORMAT, "lifelong": __version__,
                                                 "threads": torch.get_num_threads(), "config": config.to_dict()})


def _run_file(checkpoints: Path) -> dict[str, Any] | None:
    """The checked contents of `checkpoints`/run.json (None if there is none); ConfigError if it is
    unreadable or was written by another version of lifelong."""
    path = checkpoints / "run.json"
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        ok = isinstance(info, dict) and info.get("format") == RUN_FORMAT
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {path} ({err}): start the run over with --overwrite") from None
    if not ok:
        raise ConfigError(f"{path} is not a lifelong run file ({RUN_FORMAT}): start the run over with --overwrite")
    if info.get("lifelong") != __version__:
        raise ConfigError(f"{checkpoints.parent} was started by lifelong {info.get('lifelong')} and this is "
                          f"{__version__}: finish it with that version, or start over with --overwrite")
    return info


def _stored(info: dict[str, Any], checkpoints: Path) -> RunConfig:
    try:
        return RunConfig(**info["config"])
    except (TypeError, KeyError) as err:
        raise ConfigError(f"{checkpoints / 'run.json'} holds a configuration this version cannot read ({err}): "
                          "start over with --overwrite") from None


def stored_config(checkpoints: Path) -> RunConfig | None:
    """The configuration of the run started in `checkpoints` (None if none was); ConfigError if its
    run.json is unreadable or was written by another version of lifelong."""
    info = _run_file(checkpoints)
    return None if info is None else _stored(info, checkpoints)


def resumable(out: Path) -> RunConfig:
    """The configuration of the unfinished run in `out` (`lifelong run --resume`); ConfigError if
    there is none to resume."""
    if (out / "results.json").exists():
        raise ConfigError(f"{out} holds a finished run (results.json): there is nothing to resume")
    config = stored_config(out / "checkpoints")
    if config is None:
        raise ConfigError(f"{out} holds no run to resume (no checkpoints/run.json): start one with --out {out}")
    return config


def check_unfinished(out: Path, overwrite: bool) -> None:
    """Refuse to start a new run over an unfinished one in `out`, unless overwriting."""
    if not overwrite and not (out / "results.json").exists() and (out / "checkpoints" / "run.json").exists():
        raise ConfigError(f"--out {out} holds an unfinished run: continue it with `lifelong run --resume {out}`, "
                          "or pass --overwrite to start over")


def check_out_dir(out: Path, overwrite: bool, marker: str = "results.json") -> None:
    """Refuse, before any training, an output folder we could not or should not write."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder: choose another --out")
    if (out / marker).exists() and not overwrite:
        raise ConfigError(f"--out {out} already holds a finished run: pass --overwrite to replace it or "
                          "choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create --out {out}: {err.strerror}") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out} is not writable: choose another --out")


@contextmanager
def claim_out_dir(out: Path | None, overwrite: bool, marker: str = "results.json") -> Iterator[None]:
    """`check_out_dir`, then hold `out` for this process (`files.exclusive`) while the block writes
    there, checking it again under the hold (another process may have finished a run there meanwhile).
    Without `out`, nothing to check or hold."""
    if out is None:
        yield
        return
    check_out_dir(out, overwrite, marker)
    with exclusive(out):
        check_out_dir(out, overwrite, marker)
        yield


def write_run_dir(out: Path, config: RunConfig, records: list[dict[str, Any]], tensorboard: bool = False,
                  plots: bool = True) -> None:
    """config.json, plots, CSV logs (and TensorBoard), then results.json last (its presence marks the
    run as finished). `lifelong report` re-plots any run folder, so suites skip the per-run plots."""
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_strategy.setdefault(rec["strategy"], []).append(rec)
    for spec, recs in by_strategy.items() if plots else ():
        mean = torch.tensor([r["matrix"] for r in recs], dtype=torch.float64).mean(0).tolist()
        label = f"{spec} ({config.benchmark}, {recs[0]['scenario']}, {len(recs)} seed{'s' * (len(recs) > 1)})"
        safe = spec.replace("+", "_")
        plot_matrix(mean, out / f"matrix-{safe}.png", label)
        plot_curves(mean, out / f"curves-{safe}.png", label)
    write_csv(out, records)
    if tensorboard:
        write_tensorboard(out, records)
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

