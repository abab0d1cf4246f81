"""The experiment model of every command, and `lifelong run`'s experiment.

`Experiment`: a config dataclass (its fields, with their help texts, are the command's options and
config keys: `configs`) -> units of work -> records -> a summary table and a run folder (config.json,
results.json of a versioned schema), resumable per unit. `RunExperiment` is `lifelong run`: `RunConfig`
-> (strategy, seed) fits (`run`, resumable mid-fit) -> records, `write_run_dir`. The other commands'
experiments live beside their methods (`transfer.curve`, `transfer.adaptation.run`, `transfer.pretrain`,
`meta.experiment`); `commands.EXPERIMENTS` lists them all. The CLI is a thin front over these; Python
users can call them too.
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
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from . import __version__
from .data import BENCHMARKS, SCENARIOS, Stream, benchmark
from .errors import ConfigError, LifelongError
from .checkpoint import States
from .configs import check_types, option, whole
from .files import atomic_write_json, exclusive
from .models import HEADS, MODELS, build, load_backbone, with_head
from .models import info as model_info
from .plots import plot_curves, plot_matrix, save_png
from .registry import Registry
from .runlog import write_csv, write_tensorboard
from .tables import COLUMNS, summary_rows
from .strategies import HAT, STRATEGIES, Compose, Strategy, hyper_parameters
from .training import DEFAULT_OPTIMIZER, OPTIMIZERS, Result, Trainer, resolve_device

RESULTS_SCHEMA = "lifelong.results/1"
RUN_FORMAT = "lifelong.run/1"
FREEZE = ("none", "backbone")
SHARED_OPTIONS = ("buffer_size", "replay_batch_size")  # run options that set every strategy having them
RECORD_KEYS = ("strategy", "benchmark", "scenario", "seed", "acc", "bwt", "fwt", "forgetting", "matrix",
               "train_seconds", "samples_per_second", "peak_rss_mb")


@dataclass
class RunConfig:
    """Everything a `lifelong run` needs; field names are the CLI options and YAML config keys."""

    benchmark: str = option("split-fmnist", "named benchmark; see `lifelong list`")
    scenario: str | None = option(None, "class, task or domain (default: the benchmark's)", choices=list(SCENARIOS))
    n_tasks: int | None = option(None, "number of tasks (default: the benchmark's)")
    class_order: list[int] | None = option(None, "class order for split benchmarks, e.g. 0,1,2,... (default: drawn "
                                           "from the seed)")
    strategy: list[str] = option(["naive", "joint"], "strategy name, repeatable or comma-separated; a+b composes")
    strategy_options: dict[str, dict[str, Any]] = option({}, "options per strategy", cli=False)
    buffer_size: int | None = option(None, "memory size of every memory-based strategy in the run (default: each "
                                     "strategy's own); a strategy's own flag, e.g. --der-buffer-size, wins")
    replay_batch_size: int | None = option(None, "replayed samples per step of every strategy that replays "
                                           "(default: each strategy's own); a strategy's own option wins")
    model: str = option("mlp", "model name; see `lifelong list`")
    head: str = option("linear", "output head: linear (default) or growing (a unit gives logits only once its task "
                       "has arrived: the classifier grows with the classes)", choices=list(HEADS))
    hidden: list[int] = option([400, 400], "hidden layer sizes of the mlp")
    backbone: str | None = option(None, "a saved model (`lifelong pretrain --out DIR`): start from its backbone with "
                                  "a fresh head instead of --model")
    freeze: str = option("none", "backbone: train only the head", choices=list(FREEZE))
    epochs: int = option(1, "epochs per task")
    batch_size: int = option(128, "mini-batch size")
    lr: float | None = option(None, f"learning rate (default: the strategy's, hat {HAT.default_optimizer[1]}, else "
                              f"{DEFAULT_OPTIMIZER[1]})")
    optimizer: str | None = option(None, f"optimiser (default: the strategy's, hat sgd, else {DEFAULT_OPTIMIZER[0]}; "
                                   "adam-fused: Adam in one fused kernel, faster on small models)", choices=OPTIMIZERS)
    momentum: float = option(0.0, "SGD momentum")
    weight_decay: float = option(0.0, "L2 weight decay")
    seed: int = option(0, "first random seed")
    seeds: int = option(1, "number of seeds: seed, seed+1, ...")
    device: str = option("cpu", "cpu or cuda")
    checkpoint_every: int = option(0, "with --out, also save the whole state every N training steps (default 0: "
                                   "after every task)", metavar="N")
    validation: float = option(0.0, "hold out this fraction of each task's training data and report accuracies on "
                               "it instead of the test split: for choosing hyper-parameters (default 0: evaluate on "
                               "test)", metavar="F")

    def check_types(self) -> None:
        """Every value must have its option's type (YAML files and Python callers can pass anything)."""
        check_types(self)

    def validate(self) -> None:
        self.check_types()
        BENCHMARKS.get(self.benchmark)
        MODELS.get(self.model)
        if self.head not in HEADS:
            raise ConfigError(f"unknown head {self.head!r}: choose one of {', '.join(HEADS)}", "head")
        if self.scenario is not None and self.scenario not in SCENARIOS:
            raise ConfigError(f"unknown scenario {self.scenario!r}: choose one of {', '.join(SCENARIOS)}", "scenario")
        if not self.strategy:
            raise ConfigError("no strategy given: set `strategy` to a name (see `lifelong list`)", "strategy")
        for spec in self.strategy:
            for name in spec.split("+"):
                STRATEGIES.get(name)
        # the Trainer checks epochs and batch_size too, but only once a fit starts: an --out folder is touched by then
        whole(self, "seeds", "n_tasks", "epochs", "batch_size", *SHARED_OPTIONS)
        whole(self, "checkpoint_every", least=0)
        if self.freeze not in FREEZE:
            raise ConfigError(f"unknown `freeze` {self.freeze!r}: choose one of {', '.join(FREEZE)}", "freeze")
        if self.backbone is not None:
            model_info(self.backbone)  # a missing or foreign file fails before any training
        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ConfigError(f"`hidden` takes positive layer sizes like 400,400, got {self.hidden!r}", "hidden")
        if not 0 <= self.validation < 1:
            raise ConfigError(f"`validation` is the fraction of training data held out, from 0 to below 1, "
                              f"got {self.validation!r}", "validation")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"the learning rate (`lr`) must be a positive number, got {self.lr!r}", "lr")
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
            raise ConfigError(f"strategy {name!r} has no option {sorted(unknown)[0]!r}", f"{name}.{sorted(unknown)[0]}")
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
        raise ConfigError("`checkpoint_every` saves the states in the run folder: give it one (`out`)",
                          "checkpoint_every")
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
        size = options.get("buffer_size")
        if isinstance(size, int) and size > total:
            raise ConfigError(f"`buffer_size` {size} is larger than the {total} training samples of the whole "
                              "stream (the memory could never fill): lower it, or use the cumulative strategy",
                              f"{name}.buffer_size" if name else "buffer_size")


def _begin(checkpoints: Path, config: Any, resume: bool, command: str = "run",
           neutral: tuple[str, ...] = ("checkpoint_every",)) -> None:
    """Write run.json for a new run (deleting an earlier run's states and records), or, resuming,
    check that the `command` run started in `checkpoints` has this configuration (the `neutral` keys,
    which change no result, aside) and warn if PyTorch now uses another number of CPU threads, which
    can change the last bits of the results."""
    info = _run_file(checkpoints) if resume else None
    if info is not None:
        theirs = dataclasses.asdict(_stored(info, checkpoints, type(config), command))
        for key, value in json.loads(json.dumps(dataclasses.asdict(config))).items():
            if key not in neutral and json.loads(json.dumps(theirs.get(key))) != value:
                raise ConfigError(f"{checkpoints.parent} holds a run of another configuration ({key}: "
                                  f"{theirs.get(key)!r} there, {value!r} here): resume it with its own options "
                                  f"(`lifelong {command} --resume {checkpoints.parent}`), or choose another `out`",
                                  "out")
        if info.get("threads", torch.get_num_threads()) != torch.get_num_threads():
            warnings.warn(f"{checkpoints.parent} was started with {info['threads']} CPU thread(s) and continues "
                          f"with {torch.get_num_threads()}: sums may round differently from an uninterrupted run; "
                          f"pass --threads {info['threads']} for identical results", stacklevel=2)
        return
    for pattern in ("*.record.json", "*.records.json"):
        for path in checkpoints.glob(pattern):
            path.unlink()
    for path in checkpoints.glob("*.resume"):
        States(path, path.stem).clear()
    checkpoints.mkdir(parents=True, exist_ok=True)
    atomic_write_json(checkpoints / "run.json", {"format": RUN_FORMAT, "lifelong": __version__, "command": command,
                                                 "threads": torch.get_num_threads(),
                                                 "config": dataclasses.asdict(config)})


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
        raise ConfigError(f"cannot read {path} ({err}): start the run over with `overwrite`", "overwrite") from None
    if not ok:
        raise ConfigError(f"{path} is not a lifelong run file ({RUN_FORMAT}): start the run over with `overwrite`",
                          "overwrite")
    if info.get("lifelong") != __version__:
        raise ConfigError(f"{checkpoints.parent} was started by lifelong {info.get('lifelong')} and this is "
                          f"{__version__}: finish it with that version, or start over with `overwrite`", "overwrite")
    return info


def _stored(info: dict[str, Any], checkpoints: Path, cls: type = RunConfig, command: str = "run") -> Any:
    theirs = info.get("command", "run")  # run.json files written before other commands had them are runs
    if theirs != command:
        raise ConfigError(f"{checkpoints.parent} holds a `lifelong {theirs}` run: continue it with "
                          f"`lifelong {theirs} --resume {checkpoints.parent}`", "resume")
    try:
        return cls(**info["config"])
    except (TypeError, KeyError) as err:
        raise ConfigError(f"{checkpoints / 'run.json'} holds a configuration this version cannot read ({err}): "
                          "start over with `overwrite`", "overwrite") from None


def stored_config(checkpoints: Path, cls: type = RunConfig, command: str = "run") -> Any:
    """The configuration of the `command` run started in `checkpoints` (None if none was); ConfigError
    if its run.json is unreadable or was written by another version of lifelong or another command."""
    info = _run_file(checkpoints)
    return None if info is None else _stored(info, checkpoints, cls, command)


def resumable(out: Path, cls: type = RunConfig, command: str = "run") -> Any:
    """The configuration of the unfinished `command` run in `out` (`lifelong COMMAND --resume`);
    ConfigError if there is none to resume."""
    if (out / "results.json").exists():
        raise ConfigError(f"{out} holds a finished run (results.json): there is nothing to resume", "resume")
    config = stored_config(out / "checkpoints", cls, command)
    if config is None:
        raise ConfigError(f"{out} holds no run to resume (no checkpoints/run.json): start one with `out` {out}",
                          "out")
    return config


def check_unfinished(out: Path, overwrite: bool, command: str = "run") -> None:
    """Refuse to start a new run over an unfinished one in `out`, unless overwriting."""
    if not overwrite and not (out / "results.json").exists() and (out / "checkpoints" / "run.json").exists():
        raise ConfigError(f"`out` {out} holds an unfinished run: continue it with `lifelong {command} --resume "
                          f"{out}`, or pass `overwrite` to start over", "out")


def check_out_dir(out: Path, overwrite: bool, marker: str = "results.json") -> None:
    """Refuse, before any training, an output folder we could not or should not write."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"`out` {out} is a file, not a folder: choose another `out`", "out")
    if (out / marker).exists() and not overwrite:
        raise ConfigError(f"`out` {out} already holds a finished run: pass `overwrite` to replace it or "
                          "choose another `out`", "out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create `out` {out}: {err.strerror}", "out") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"`out` {out} is not writable: choose another `out`", "out")


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


Record = dict[str, Any]
Unit = tuple[str, Callable[[], Iterator[Record]]]


class Experiment:
    """One command's experiment: a config dataclass (its fields are the command's options and config
    keys) -> units of work (a seed, a (method, seed), ...) -> records -> a table and a run folder.

    A run folder holds config.json and results.json (`schema`, `config`, `environment`, and the
    records under `records_key`), written last, plus the experiment's plots. While it runs, each
    finished unit's records are kept in `checkpoints/<unit>.records.json`, so that `resume=True`
    continues an interrupted run at record granularity: finished units are read back, the others run
    again (`run` goes further: an interrupted fit continues from its newest checkpoint).
    Subclasses set the class variables and define `units`, `title` and `table`."""

    command: ClassVar[str]
    help: ClassVar[str]
    config_class: ClassVar[type]
    schema: ClassVar[str]
    record_keys: ClassVar[tuple[str, ...]]  # what --json prints of each record
    records_key: ClassVar[str] = "records"
    marker: ClassVar[str] = "results.json"  # its presence marks a finished run
    neutral: ClassVar[tuple[str, ...]] = ()  # config keys that change no result (a resumed run may change them)
    options_field: ClassVar[str | None] = None  # the {name: {argument: value}} field of per-method options
    options_registry: ClassVar[Registry | None] = None  # ... whose classes' hyper-parameters are CLI options

    def __init__(self, config: Any) -> None:
        self.config = config

    def units(self, out: Path | None, progress: bool) -> Iterator[Unit]:
        """(key, make) per unit of work, in order; `make()` yields the unit's records."""
        raise NotImplementedError

    def title(self, records: list[Record]) -> str:
        """The line above the summary table."""
        raise NotImplementedError

    def table(self, records: list[Record]) -> tuple[list[str], list[list[str]]]:
        """The summary table: (header, rows)."""
        raise NotImplementedError

    def headline(self, records: list[Record]) -> str:
        """A few words on the first record for one line of `lifelong bench`: "ACC 93.10%" (or "mse 0.0123")."""
        first = records[0]
        metric = first.get("metric", "acc")
        return f"{metric.upper()} {first[metric] * 100:.2f}%" if metric == "acc" else f"{metric} {first[metric]:.4f}"

    def json_record(self, rec: Record) -> Record:
        return {k: rec[k] for k in self.record_keys}

    def preflight(self) -> None:
        """Checks that need the data, before an earlier run's files are touched (default: none)."""

    def plots(self, out: Path, records: list[Record]) -> None:
        """The run folder's figures (default: none)."""

    def execute(self, out: Path | None = None, resume: bool = False, on_record: Callable[[Record], None] | None = None,
                progress: bool = False) -> list[Record]:
        """Every unit's records, in order; with `out`, finished units are kept under `out`/checkpoints and,
        with `resume`, read back instead of run again."""
        self.config.validate()
        self.preflight()
        store = out / "checkpoints" if out is not None else None
        if store is not None:
            _begin(store, self.config, resume, self.command, self.neutral)
        emit = on_record or (lambda rec: None)
        records: list[Record] = []
        for key, make in self.units(out, progress):
            path = store / f"{key}.records.json" if store is not None else None
            if resume and path is not None and path.exists():
                try:
                    done = json.loads(path.read_text())
                except (OSError, ValueError) as err:
                    raise LifelongError(f"cannot read {path} ({err}): delete it to run that part again") from None
                for rec in done:
                    emit(rec)
            else:
                done = []
                for rec in make():
                    done.append(rec)
                    emit(rec)
                if path is not None:
                    atomic_write_json(path, done)
            records += done
        return records

    def write(self, out: Path, records: list[Record], plots: bool = True) -> None:
        """The plots, config.json, then results.json last (its presence marks the run as finished)."""
        if plots:
            self.plots(out, records)
        self.write_results(out, records)

    def write_results(self, out: Path, records: list[Record]) -> None:
        """config.json, then results.json (atomic writes)."""
        config = dataclasses.asdict(self.config)
        atomic_write_json(out / "config.json", config)
        atomic_write_json(out / "results.json", {
            "schema": self.schema,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "command": sys.argv,
            "config": config,
            "environment": environment(),
            self.records_key: records,
        })


class RunExperiment(Experiment):
    """`lifelong run`: every (strategy, seed) fit of a `RunConfig` (see `run`)."""

    command = "run"
    help = "train strategies on a continual-learning benchmark and report metrics"
    config_class = RunConfig
    schema = RESULTS_SCHEMA
    record_keys = RECORD_KEYS
    records_key = "runs"
    neutral = ("checkpoint_every",)
    options_field = "strategy_options"
    options_registry = STRATEGIES

    def execute(self, out: Path | None = None, resume: bool = False, on_record: Callable[[Record], None] | None = None,
                progress: bool = False) -> list[Record]:
        return run(self.config, on_record=on_record, progress=progress,
                   checkpoints=out / "checkpoints" if out is not None else None, resume=resume)

    def title(self, records: list[Record]) -> str:
        c, first = self.config, records[0]
        used = {r["strategy"]: f"{r['optimizer']} lr {r['lr']}" for r in records}  # "adam lr 0.001", or per strategy
        optimizers = (used.popitem()[1] if len(set(used.values())) == 1
                      else ", ".join(f"{k}: {v}" for k, v in used.items()))
        return (f"{c.benchmark}: {first['scenario']}-incremental, {first['stream']['n_tasks']} tasks, model {c.model}, "
                f"{c.epochs} epoch(s), {optimizers}, seeds {c.seed}..{c.seed + c.seeds - 1}; accuracies in %"
                + (f" on {c.validation:g} of the training data held out (not the test split)" if c.validation else ""))

    def table(self, records: list[Record]) -> tuple[list[str], list[list[str]]]:
        return ["Strategy", "Seeds"] + [title for _, title, _, _ in COLUMNS], summary_rows(records)

    def write(self, out: Path, records: list[Record], plots: bool = True, tensorboard: bool = False) -> None:
        write_run_dir(out, self.config, records, tensorboard=tensorboard, plots=plots)


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
        save_png(plot_matrix(mean, label), out / f"matrix-{safe}.png")
        save_png(plot_curves(mean, label), out / f"curves-{safe}.png")
    write_csv(out, records)
    if tensorboard:
        write_tensorboard(out, records)
    RunExperiment(config).write_results(out, records)


def load_results(path: Path, schemas: Collection[str] = (RESULTS_SCHEMA,)) -> dict[str, Any]:
    """Read a results.json written by `write_run_dir` (or, with other `schemas`, by another command's
    `Experiment.write`), checking its schema."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LifelongError(f"cannot read results file {path}: {err}") from None
    if not isinstance(data, dict) or data.get("schema") not in schemas:
        raise LifelongError(f"{path} is not a lifelong results file of schema {' or '.join(schemas)}")
    return data

