"""`lifelong tune SPEC.yaml`: a hyper-parameter search over `lifelong run` options with Ray Tune.

Every trial is a `lifelong run` of one strategy and one seed that holds out `validation` of each task's
training data and reports, after each task, accuracies on that held-out data (never on the test split):
`acc`, the mean over the tasks learnt so far (after the last task: the run's ACC), and
`learning_accuracy`, the mean of each task's accuracy right after it was learnt. ASHA stops the trials
that fall behind after task 1, 2, 4, ... The best finished trial's configuration is written as a
`lifelong run --config` file, without the validation hold-out, for the final run on the test split.

A SPEC file is YAML (`configs.read_yaml`: no aliases, no key twice, at most 1 MB):

    base:                         # `lifelong run` options of every trial; `validation` > 0 is required
      benchmark: split-fmnist
      strategy: ewc
      epochs: 1
      validation: 0.1
    search:                       # option: {kind: values}; a strategy's option as STRATEGY.OPTION
      lr: {loguniform: [1.0e-4, 1.0e-2]}
      ewc.lam: {grid: [10, 100, 1000]}
      batch_size: {choice: [32, 64, 128]}
      hidden: {choice: [[100], [400, 400]]}
    samples: 4                    # trials drawn (with grids: per grid combination); default 1
    searcher: random              # random (default; grids are swept), or optuna (pip install optuna; no grids)
    metric: acc                   # acc (default) or learning_accuracy
    scheduler: asha               # asha (default) or none
    concurrent: 2                 # at most this many trials at once (default: as many as the CPUs allow)
    out: runs/tune-ewc            # best.yaml, trials.json, trials.md (and Ray Tune's own files in ray/)

Kinds: `grid: [v, ...]` (every value, each `samples` times), `choice: [v, ...]` (one drawn per trial),
`uniform: [lo, hi]`, `loguniform: [lo, hi]` (lo > 0) and `randint: [lo, hi]` (whole numbers, hi included).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from ..checkpointing import Callback
from ..configs import build, read_yaml
from ..errors import ConfigError, LifelongError
from ..extras import MissingExtra
from ..files import atomic_write_bytes, atomic_write_json
from ..metrics import average_accuracy, learning_accuracy
from ..strategies import STRATEGIES, hyper_parameters
from ..tables import markdown_table
from .cluster import gpu_request, ray_session
from .continual import RunConfig, run

if TYPE_CHECKING:
    from ..data import Task
    from ..training import Trainer

SPEC_KEYS = ("base", "search", "samples", "searcher", "metric", "scheduler", "concurrent", "out")
KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
METRICS = ("acc", "learning_accuracy")
SEARCHERS = ("random", "optuna")
SCHEDULERS = ("asha", "none")
NOT_SEARCHED = ("validation", "seeds", "strategy_options")  # fixed by tune, or searched as STRATEGY.OPTION


@dataclass
class Spec:
    """A parsed, validated SPEC file (see the module's docstring)."""

    base: dict[str, Any]
    search: dict[str, tuple[str, list[Any]]]  # option -> (kind, values)
    samples: int = 1
    searcher: str = "random"
    metric: str = "acc"
    scheduler: str = "asha"
    concurrent: int = 0  # 0: as many as the resources allow
    out: Path = Path("runs/tune")


@dataclass
class Trial:
    """One trial: its searched values, the tasks it learnt (fewer than the stream's when ASHA stopped it),
    its metrics after the last of them, and its status (`done`, `stopped` or `error: ...`)."""

    params: dict[str, Any]
    tasks: int
    n_tasks: int
    metrics: dict[str, float]
    status: str


def trial_config(base: dict[str, Any], params: dict[str, Any]) -> RunConfig:
    """The RunConfig of a trial: `base`'s options with the searched `params` on top (`ewc.lam` into
    `strategy_options`)."""
    config = build(RunConfig, base | {k: v for k, v in params.items() if "." not in k})  # types checked first
    options = {name: dict(o) for name, o in config.strategy_options.items()}
    for key, value in params.items():
        name, _, arg = key.rpartition(".")
        if name:
            options.setdefault(name, {})[arg] = value
    return dataclasses.replace(config, strategy_options=options)


def _option_key(key: str, name: str) -> str:
    """A search key as the trials use it: a run option (dashes allowed), or STRATEGY.OPTION with the option
    by its argument name (`ewc.lambda` -> `ewc.lam`)."""
    strategy, _, arg = key.replace("-", "_").rpartition(".")
    if not strategy:
        if arg in NOT_SEARCHED:
            raise ConfigError(f"tune spec {name}: `{arg}` cannot be searched (set it in `base`; a strategy's "
                              "options are searched as STRATEGY.OPTION, e.g. ewc.lam)", f"search.{key}")
        if arg not in {f.name for f in dataclasses.fields(RunConfig)}:
            raise ConfigError(f"tune spec {name}: search key {key!r} is not a `lifelong run` option "
                              "(a strategy's option is STRATEGY.OPTION, e.g. ewc.lam)", f"search.{key}")
        return arg
    cls = STRATEGIES.get(strategy).factory
    alias = {getattr(cls, "option_names", {}).get(a, a).replace("-", "_"): a for a in hyper_parameters(cls)}
    if arg not in alias and arg not in hyper_parameters(cls):
        raise ConfigError(f"tune spec {name}: strategy {strategy!r} has no option {arg!r}", f"search.{key}")
    return f"{strategy}.{alias.get(arg, arg)}"


def _values(key: str, entry: Any, name: str) -> tuple[str, list[Any]]:
    """A search entry {kind: values} -> (kind, values), checked."""
    where = f"search.{key}"
    if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in KINDS:
        raise ConfigError(f"tune spec {name}: search {key} must be one of {{{': [...]}, {'.join(KINDS)}: [...]}}, "
                          f"got {entry!r}", where)
    (kind, values), = entry.items()
    if not isinstance(values, list) or not values:
        raise ConfigError(f"tune spec {name}: search {key}: {kind} takes a non-empty list, got {values!r}", where)
    if kind in ("grid", "choice"):
        return kind, values
    numbers = len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                       for v in values)
    if not numbers or values[0] > values[1] or (kind != "randint" and values[0] == values[1]):
        raise ConfigError(f"tune spec {name}: search {key}: {kind} takes [low, high] with low < high, got {values!r}",
                          where)
    if kind == "loguniform" and values[0] <= 0:
        raise ConfigError(f"tune spec {name}: search {key}: loguniform needs low > 0, got {values!r}", where)
    if kind == "randint" and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"tune spec {name}: search {key}: randint takes whole numbers, got {values!r}", where)
    return kind, values


def _check_trial(base: dict[str, Any], params: dict[str, Any], where: str, name: str) -> RunConfig:
    """The trial's config, validated like a `lifelong run` (its strategy options too); a one-line error
    naming `where` (the SPEC key) otherwise."""
    try:
        config = trial_config(base, params)
        config.validate()  # builds each strategy with its options
    except ConfigError as err:
        raise ConfigError(f"tune spec {name}: {where}: {err}", where) from None
    return config


def _choice(data: dict[str, Any], key: str, choices: tuple[str, ...], name: str) -> str:
    value = data.get(key, choices[0])
    if value not in choices:
        raise ConfigError(f"tune spec {name}: `{key}` must be one of {', '.join(choices)}, got {value!r}", key)
    return value


MAX_TRIALS = 10_000  # samples (and concurrent trials) of one search: a typo of a few digits is not a search


def _count(data: dict[str, Any], key: str, default: int, least: int, name: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_TRIALS:
        raise ConfigError(f"tune spec {name}: `{key}` must be a whole number from {least} to {MAX_TRIALS}, got "
                          f"{value!r:.60}", key)
    return value


def parse_spec(data: Any, name: str = "spec", out: Path | None = None) -> Spec:
    """A Spec from a SPEC file's mapping; every searched value is checked as a `lifelong run` option
    would be before any trial starts. Refused: no `validation` hold-out (selection must not see the
    test split), several strategies or seeds in one trial, grids with the optuna searcher."""
    if not isinstance(data, dict):
        raise ConfigError(f"tune spec {name} must be a mapping with keys {', '.join(SPEC_KEYS)}")
    unknown = sorted(set(map(str, data)) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"tune spec {name}: unknown key {unknown[0]!r}: valid keys are {', '.join(SPEC_KEYS)}",
                          unknown[0])
    if not isinstance(data.get("base"), dict) or not isinstance(data.get("search"), dict) or not data["search"]:
        key = "base" if not isinstance(data.get("base"), dict) else "search"
        raise ConfigError(f"tune spec {name}: `{key}` must be a mapping of `lifelong run` option: "
                          f"{'value' if key == 'base' else '{kind: values}'}", key)
    base = {str(k).replace("-", "_"): v for k, v in data["base"].items()}
    config = _check_trial(base, {}, "base", name)
    if not config.validation > 0:
        raise ConfigError(f"tune spec {name}: base `validation` must be > 0 (e.g. 0.2): trials are compared on "
                          "that share of the training data held out, never on the test split", "base.validation")
    if config.seeds != 1 or len(config.strategy) != 1:
        key = "seeds" if config.seeds != 1 else "strategy"
        raise ConfigError(f"tune spec {name}: a trial runs one strategy with one seed: set base `{key}` to one "
                          "(search over `seed` or `strategy` to compare several)", f"base.{key}")
    search = {}
    for key, entry in data["search"].items():
        option = _option_key(str(key), name)
        kind, values = _values(str(key), entry, name)
        for value in values:  # grid and choice values, or a range's ends
            _check_trial(base, {option: value}, f"search.{key}", name)
        search[option] = (kind, values)
    searcher = _choice(data, "searcher", SEARCHERS, name)
    if searcher == "optuna" and any(kind == "grid" for kind, _ in search.values()):
        raise ConfigError(f"tune spec {name}: the optuna searcher draws every value: use `choice` instead of "
                          "`grid`", "searcher")
    return Spec(base, search, samples=_count(data, "samples", 1, 1, name), searcher=searcher,
                metric=_choice(data, "metric", METRICS, name), scheduler=_choice(data, "scheduler", SCHEDULERS, name),
                concurrent=_count(data, "concurrent", 0, 0, name),
                out=out if out is not None else Path(str(data.get("out", f"runs/tune-{Path(name).stem}"))))


def load_spec(path: str | Path, out: Path | None = None) -> Spec:
    """Read and validate a SPEC file."""
    return parse_spec(read_yaml(path, "tune spec"), str(path), out)


def task_metrics(matrix: list[list[float]]) -> dict[str, float]:
    """What a trial reports after its k-th task: `tasks` (k), `acc` (mean accuracy over the k tasks
    learnt) and `learning_accuracy` (mean of their accuracies right after each was learnt)."""
    k = len(matrix)
    square = [row[:k] for row in matrix]
    return {"tasks": k, "acc": average_accuracy(square), "learning_accuracy": learning_accuracy(square)}


class Report(Callback):
    """Hands `task_metrics` of the fit so far, and the stream's length, to `report` after each task."""

    def __init__(self, report: Callable[[dict[str, Any]], None]) -> None:
        self.report = report

    def on_task_end(self, trainer: Trainer, task: Task) -> None:
        self.report(task_metrics(trainer.progress.matrix) | {"n_tasks": len(trainer.stream)})


def _trial(params: dict[str, Any], base: dict[str, Any], threads: int) -> None:
    """A Ray Tune trial: one `lifelong run` reporting after each task."""
    from ray import tune  # in the trial's worker; ray is there since the trial runs on it

    torch.set_num_threads(threads)
    run(trial_config(base, params), callbacks=[Report(tune.report)])


def _space(tune: Any, spec: Spec) -> dict[str, Any]:
    """Ray Tune's parameter space of the search."""
    make = {"grid": tune.grid_search, "choice": tune.choice, "uniform": lambda v: tune.uniform(*v),
            "loguniform": lambda v: tune.loguniform(*v), "randint": lambda v: tune.randint(v[0], v[1] + 1)}
    return {key: make[kind](values) for key, (kind, values) in spec.search.items()}


def _searcher(spec: Spec) -> Any:
    if spec.searcher != "optuna":
        return None
    if importlib.util.find_spec("optuna") is None:
        raise MissingExtra("optuna is not installed (needed for `searcher: optuna`): pip install optuna", name="optuna")
    from ray.tune.search.optuna import OptunaSearch
    return OptunaSearch()


def tune(spec: Spec, address: str | None = None, threads: int = 1, gpu_share: float = 1.0) -> list[Trial]:
    """Run the search of `spec` on a local Ray (or the cluster at `address`), each trial with `threads`
    CPU threads (and `gpu_share` of a GPU on cuda); write `spec.out`/best.yaml (the best finished trial's
    configuration, a `lifelong run --config` file that evaluates on the test split), trials.json and
    trials.md. Returns the trials, in Ray Tune's order."""
    searcher = _searcher(spec)  # a missing optuna fails before Ray starts
    base = dict(spec.base)
    if base.get("backbone"):  # trials may run in another folder
        base["backbone"] = str(Path(base["backbone"]).resolve())
    out = spec.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Ray Tune's own progress tables: off, with verbose=0
    with ray_session(address) as ray:
        from ray import tune as ray_tune
        from ray.tune.schedulers import ASHAScheduler

        resources = {"cpu": threads, "gpu": gpu_request(base.get("device", "cpu"), gpu_share).get("num_gpus", 0)}
        trainable = ray_tune.with_resources(ray_tune.with_parameters(_trial, base=base, threads=threads), resources)
        tuner = ray_tune.Tuner(trainable, param_space=_space(ray_tune, spec), tune_config=ray_tune.TuneConfig(
            metric=spec.metric, mode="max", num_samples=spec.samples, search_alg=searcher,
            scheduler=ASHAScheduler(time_attr="tasks", grace_period=1, reduction_factor=2, max_t=1024)  # task 1, 2, 4..
            if spec.scheduler == "asha" else None,
            max_concurrent_trials=spec.concurrent or None),
            run_config=ray_tune.RunConfig(storage_path=str(out), name="ray", verbose=0))
        results = tuner.fit()
        trials = [_trial_of(ray, results[i], list(spec.search)) for i in range(len(results))]
    write_results(spec, trials)
    return trials


def _trial_of(ray: Any, result: Any, keys: list[str]) -> Trial:
    metrics = result.metrics or {}
    tasks, n_tasks = int(metrics.get("tasks", 0)), int(metrics.get("n_tasks", 0))
    if result.error is not None:
        err = result.error
        cause = getattr(err, "cause", err) if isinstance(err, ray.exceptions.RayTaskError) else err
        status = f"error: {(str(cause).strip() or type(cause).__name__).splitlines()[0]}"
    else:
        status = "done" if tasks and tasks == n_tasks else "stopped"
    return Trial({k: result.config[k] for k in keys}, tasks, n_tasks,
                 {m: float(metrics[m]) for m in METRICS if m in metrics}, status)


def best_trial(trials: list[Trial], metric: str) -> Trial:
    """The finished trial with the highest `metric` (the first of equals); LifelongError if none finished."""
    done = [t for t in trials if t.status == "done"]
    if not done:
        errors = [t.status for t in trials if t.status.startswith("error")]
        raise LifelongError("no trial finished" + (f" (first {errors[0]})" if errors else "") +
                            ": check the SPEC's options with one `lifelong run --config`")
    return max(done, key=lambda t: t.metrics[metric])


def table(spec: Spec, trials: list[Trial]) -> tuple[list[str], list[list[str]]]:
    """The trials table: searched values, tasks learnt, the metric in % (on validation), status; best first."""
    best = best_trial(trials, spec.metric)
    order = [best] + [t for t in trials if t is not best]
    header = ["Trial", *spec.search, "Tasks", f"{spec.metric} %", "Status"]
    rows = [[f"{'*' if t is best else ''}{trials.index(t)}", *(_shown(t.params[k]) for k in spec.search),
             f"{t.tasks}/{t.n_tasks}", f"{t.metrics[spec.metric] * 100:.2f}" if spec.metric in t.metrics else "-",
             t.status] for t in order]
    return header, rows


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_results(spec: Spec, trials: list[Trial]) -> None:
    """best.yaml (the best trial's `lifelong run --config` file, `validation` 0), trials.json, trials.md."""
    best = best_trial(trials, spec.metric)
    config = dataclasses.asdict(trial_config(spec.base, best.params))
    held_out = config["validation"]
    config["validation"] = 0.0
    head = (f"# lifelong tune: the best of {len(trials)} trials, {spec.metric} "
            f"{best.metrics[spec.metric] * 100:.2f}% on {held_out:g} of the training data held out.\n"
            f"# Searched: {', '.join(f'{k} = {_shown(v)}' for k, v in best.params.items())}.\n"
            "# The final run, on the whole training data and the test split: lifelong run --config best.yaml\n")
    atomic_write_bytes(spec.out / "best.yaml", (head + yaml.safe_dump(config, sort_keys=False)).encode())
    atomic_write_json(spec.out / "trials.json", {"metric": spec.metric, "evaluated_on": "validation",
                                                 "trials": [dataclasses.asdict(t) for t in trials]})
    atomic_write_bytes(spec.out / "trials.md", (markdown_table(*table(spec, trials)) + "\n").encode())
