"""Suites: a grid of benchmarks x scenarios x strategies (with hyper-parameters) x seeds, one run
folder per point, run one after another. A finished folder (it holds results.json) is skipped, so
re-running a suite only does what is left; an unfinished one continues from its newest checkpoint
(`experiment.run(..., resume=True)`; settings may set `checkpoint_every`).

A suite file is YAML (`configs.read_yaml`: no aliases, no key twice, at most 1 MB):

    out: runs/smoke                     # where the run folders go (`lifelong bench --out` wins)
    settings: {epochs: 1, hidden: [64]} # any `lifelong run` option except the grid's own keys
    benchmarks: [split-digits]
    scenarios: [class, task]            # optional: each benchmark's own scenario
    strategies:
      - naive
      - ewc: {lam: [10, 100]}           # hyper-parameters; a list is swept
      - ewc+replay: {ewc: {lam: 100}, replay: {buffer_size: 200}}
    seeds: 3                            # 0, 1, 2; or a list such as [0, 5]

Each point's folder is `OUT/<benchmark>/<scenario>/<strategy label>/seed<seed>/`, written by
`experiment.write_run_dir` like `lifelong run --out` but without plots (`lifelong report` draws them).

A grid may instead hold points of another command (`pretrain`, `transfer`, `meta`, `adapt`): its
`command`, its `settings` (that command's options; the top-level `settings` are for `run` grids), an
optional `sweep` (option: [values], every combination) and `seeds`:

    grids:
      - benchmarks: [split-digits]
        strategies: [naive]
      - command: transfer
        settings: {source: "digits:0-4", target: "digits:5-9", model: mlp, shots: [1, all], steps: 5}
        sweep: {method: [[scratch], [features]]}
        seeds: 2

Such a point's folder is `OUT/<command>/<sweep label, or default>/seed<seed>/`, the command's own run
folder (`Experiment.write`); an unfinished one continues at record granularity.
Several `lifelong bench` processes on one machine may run the same suite at once: each holds the point
it runs (`files.exclusive`) and passes over the points the others hold, so together they share the
work (on a network file system, where folders cannot be locked, run one bench per suite folder).

`run_suite_ray` (`lifelong bench SUITE --ray [ADDRESS]`) runs the points as Ray tasks instead, on a local Ray
or a cluster, into the same folders: a point whose worker dies is run again and resumes from its checkpoint.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import sys
import time
import typing
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .configs import build, read_yaml
from .data import BENCHMARKS
from .errors import ConfigError, FolderBusy, LifelongError
from .experiment import EXPERIMENTS, RunConfig, check_out_dir, config_keys
from .experiment.cluster import gpu_request, ray_session
from .extras import need
from .files import exclusive
from .results import run_label
from .strategies import STRATEGIES, hyper_parameters

GRID_KEYS = {"benchmark", "scenario", "strategy", "strategy_options", "seed", "seeds"}
GRID_BLOCK_KEYS = {"settings", "benchmarks", "scenarios", "strategies", "seeds"}
COMMAND_BLOCK_KEYS = {"command", "settings", "sweep", "seeds"}  # a grid of another command's points
SUITE_KEYS = GRID_BLOCK_KEYS | {"out", "grids"}
MAX_POINTS = 10_000  # runs in one suite, counted before any is made: a few lines of YAML can ask for billions


@dataclass
class Point:
    """One run of a suite: its configuration (of `command`'s config class) and its folder."""

    config: Any
    label: str
    path: Path
    command: str = "run"


@dataclass
class Suite:
    """A parsed suite file: every point of the grid, validated."""

    name: str
    out: Path
    points: list[Point]


def _at_most(sizes: list[int], what: str, name: str) -> None:
    """Refuse a grid of more than MAX_POINTS combinations (`sizes`: the length of each axis)."""
    if math.prod(sizes) > MAX_POINTS:
        raise ConfigError(f"suite {name}: {what} make {math.prod(sizes)} runs, more than a suite runs ({MAX_POINTS}): "
                          "split it into several suites")


def _list(value: Any, key: str, kind: type) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"suite key {key!r} must be a {kind.__name__} or a non-empty list of them, got {value!r}")
    return values


def _option_grid(name: str, options: Any, suite: str) -> list[dict[str, Any]]:
    """{arg: value or [values]} of one strategy -> every combination, with CLI aliases resolved."""
    if options is None:
        return [{}]
    if not isinstance(options, dict):
        raise ConfigError(f"suite strategy {name!r}: options must be a mapping of option: value, got {options!r}")
    cls = STRATEGIES.get(name).factory
    alias = {cls.option_names.get(a, a).replace("-", "_"): a for a in hyper_parameters(cls)}
    args = {alias.get(str(k).replace("-", "_"), str(k)): v if isinstance(v, list) else [v] for k, v in options.items()}
    if any(not v for v in args.values()):
        raise ConfigError(f"suite strategy {name!r}: an option has an empty list of values")
    _at_most([len(v) for v in args.values()], f"the option values of strategy {name!r}", suite)
    return [dict(zip(args, combo)) for combo in itertools.product(*args.values())]


def _strategy_variants(entry: Any, suite: str) -> list[tuple[str, dict[str, dict[str, Any]]]]:
    """A `strategies:` entry -> [(spec, {name: options})], one per hyper-parameter combination."""
    if isinstance(entry, str):
        return [(entry, {})]
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ConfigError(f"suite strategies: each entry is a name or {{name: {{option: value}}}}, got {entry!r}")
    (spec, options), = entry.items()
    names = str(spec).split("+")
    if len(names) == 1:
        return [(spec, {spec: o} if o else {}) for o in _option_grid(spec, options, suite)]
    if options is not None and (not isinstance(options, dict) or set(options) - set(names)):
        raise ConfigError(f"suite strategy {spec!r}: give options per part, as {{{names[0]}: {{option: value}}}}")
    per_part = [[(n, o) for o in _option_grid(n, (options or {}).get(n), suite)] for n in names]
    _at_most([len(p) for p in per_part], f"the option values of strategy {spec!r}", suite)
    return [(spec, {n: o for n, o in combo if o}) for combo in itertools.product(*per_part)]


def _settings(value: Any, name: str, command: str = "run") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"suite {name}: 'settings' must be a mapping of `lifelong {command}` option: value")
    settings = {str(k).replace("-", "_"): v for k, v in value.items()}
    keys = config_keys() if command == "run" else set(typing.get_type_hints(EXPERIMENTS[command].config_class))
    grid = GRID_KEYS if command == "run" else {"seed", "seeds"}
    bad = set(settings) - (keys - grid)
    if bad:
        key = sorted(bad)[0]
        where = "a grid key of the suite" if key in grid else f"not a `lifelong {command}` option"
        raise ConfigError(f"suite {name}: settings key {key!r} is {where}")
    return settings


def _seeds(value: Any, name: str) -> list[int]:
    """`seeds: 3` -> [0, 1, 2]; a list is taken as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError(f"suite {name}: 'seeds' must be >= 1 or a list of seeds, got {value}")
        _at_most([value], "the seeds", name)
        return list(range(value))
    return _list(value, "seeds", int)


def _command_grid(block: dict[str, Any], root: Path, name: str) -> list[Point]:
    """The points of a grid of another command: its settings x its sweep x seeds, each validated."""
    command = block["command"]
    if not isinstance(command, str) or command not in EXPERIMENTS:
        raise ConfigError(f"suite {name}: unknown command {command!r}: choose one of {', '.join(EXPERIMENTS)}")
    unknown = set(block) - COMMAND_BLOCK_KEYS
    if unknown:
        raise ConfigError(f"suite {name}: unknown key {sorted(unknown)[0]!r} in a `{command}` grid: valid keys "
                          f"are {', '.join(sorted(COMMAND_BLOCK_KEYS))}")
    cls = EXPERIMENTS[command].config_class
    keys = typing.get_type_hints(cls)
    settings = _settings(block.get("settings"), name, command)
    sweep = _settings(block.get("sweep"), name, command)
    values = {k: _list(v, f"sweep {k}", object) for k, v in sweep.items()}
    seeds = _seeds(block.get("seeds", 1), name)
    _at_most([*map(len, values.values()), len(seeds)], f"the `{command}` sweep and seeds", name)
    points = []
    for combo in itertools.product(*values.values()):
        swept = dict(zip(values, combo))
        label = re.sub(r"[^A-Za-z0-9._=,-]", "_", "-".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in swept.items())) or "default"
        for seed in seeds:
            fields = {**settings, **swept, "seed": seed} | ({"seeds": 1} if "seeds" in keys else {})
            config = build(cls, fields)
            config.validate()
            points.append(Point(config, label, root / command / label / f"seed{seed}", command))
    return points


def _grid(block: dict[str, Any], settings: dict[str, Any], root: Path, name: str) -> list[Point]:
    """The points of one grid (benchmarks x scenarios x strategies x seeds), each validated."""
    if block.get("command", "run") != "run":
        return _command_grid(block, root, name)
    block = {k: v for k, v in block.items() if k != "command"}
    unknown = set(block) - GRID_BLOCK_KEYS
    if unknown:
        raise ConfigError(f"suite {name}: unknown key {sorted(unknown)[0]!r}: valid keys are "
                          f"{', '.join(sorted(SUITE_KEYS))}")
    for key in ("benchmarks", "strategies"):
        if key not in block:
            raise ConfigError(f"suite {name} has no {key!r}: list at least one")
    settings = {**settings, **_settings(block.get("settings"), name)}
    benchmarks = _list(block["benchmarks"], "benchmarks", str)
    scenarios = _list(block["scenarios"], "scenarios", str) if block.get("scenarios") is not None else [None]
    seeds = _seeds(block.get("seeds", 1), name)
    strategies = [v for entry in _list(block["strategies"], "strategies", object)
                  for v in _strategy_variants(entry, name)]
    _at_most([len(benchmarks), len(scenarios), len(strategies), len(seeds)], "benchmarks x scenarios x strategies x "
             "seeds", name)
    points = []
    for bench, scenario, (spec, options), seed in itertools.product(benchmarks, scenarios, strategies, seeds):
        config = RunConfig(**settings, benchmark=bench, scenario=scenario, strategy=[spec],
                           strategy_options=options, seed=seed, seeds=1)
        config.validate()  # builds the strategy too: unknown options fail now, not hours into the suite
        label = run_label(spec, options)
        sc = scenario or BENCHMARKS.get(bench).factory.scenario
        points.append(Point(config, label, root / bench / sc / label / f"seed{seed}"))
    return points


def parse(data: Any, name: str = "suite", out: Path | None = None) -> Suite:
    """A suite from its YAML mapping; every point is validated before anything runs. Instead of
    one grid, `grids:` may list several (each with its own benchmarks, scenarios, strategies, seeds
    and extra settings), for strategies that fit only some scenarios."""
    if not isinstance(data, dict):
        raise ConfigError(f"suite {name} must be a mapping with keys {', '.join(sorted(SUITE_KEYS))}")
    root = out if out is not None else Path(str(data.get("out", f"runs/{Path(name).stem}")))
    settings = _settings(data.get("settings"), name)
    top = {k: v for k, v in data.items() if k not in ("out", "settings", "grids")}  # settings: for `run` grids
    if "grids" in data:
        grids = _list(data["grids"], "grids", dict)
        blocks = [{**top, **g} for g in grids]
    else:
        blocks = [top]
    points = [p for block in blocks for p in _grid(block, settings, root, name)]
    paths = [p.path for p in points]
    if len(set(paths)) != len(paths):
        raise ConfigError(f"suite {name} lists the same run twice: remove the duplicate entry")
    return Suite(name, root, points)


def load(path: str | Path, out: Path | None = None) -> Suite:
    """Read and validate a suite YAML file."""
    return parse(read_yaml(path, "suite file"), str(path), out)


def finished(point: Point) -> bool:
    """Whether the point's folder holds a finished run of this very configuration (else an error)."""
    results = point.path / "results.json"
    if not results.exists():
        return False
    try:
        done = json.loads((point.path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        done = None
    neutral = EXPERIMENTS[point.command].neutral
    result_keys = lambda c: {k: v for k, v in c.items() if k not in neutral}  # noqa: E731 (no result changes)
    if isinstance(done, dict):  # an option added by a later version is at its default in an earlier run
        done = json.loads(json.dumps(asdict(type(point.config)()))) | done
    if not isinstance(done, dict) or result_keys(done) != result_keys(json.loads(json.dumps(asdict(point.config)))):
        raise ConfigError(f"{point.path} holds a finished run of another configuration: "
                          "move it away or pass --out to write this suite elsewhere")
    return True


@dataclass
class Outcome:
    """What happened to one point: `ran`, `skipped` (finished earlier) or `busy` (another process is
    running it), with its first record's accuracy (when it has one), a headline ("ACC 93.10%") and wall
    time when it ran."""

    point: Point
    status: str
    acc: float | None = None
    seconds: float = 0.0
    headline: str = ""


def _run_point(point: Point, tensorboard: bool) -> Outcome:
    """Run one point while holding its folder; `busy` if another process holds it, `skipped` if that
    process finished it meanwhile."""
    start = time.perf_counter()
    try:
        with exclusive(point.path):
            if finished(point):
                return Outcome(point, "skipped")
            experiment = EXPERIMENTS[point.command](point.config)
            records = experiment.execute(out=point.path, resume=True)
            experiment.write(point.path, records, plots=False,
                             **({"tensorboard": tensorboard} if point.command == "run" else {}))
    except FolderBusy:
        return Outcome(point, "busy")
    return Outcome(point, "ran", records[0].get("acc"), time.perf_counter() - start, experiment.headline(records))


@contextlib.contextmanager
def _todo(suite: Suite) -> Iterator[dict[int, bool]]:
    """Whether each point (by id) is still to run; config clashes and folders that cannot be written fail
    here, before any training. The folders made for the points are removed again, where they are left
    empty and no other process holds them, if the suite stops on an error (a point refused, Ctrl-C)."""
    todo = {id(p): not finished(p) for p in suite.points}
    for p in suite.points:
        if todo[id(p)]:  # a file in the way, no permission; not "finished": another bench may finish it now
            check_out_dir(p.path, overwrite=True)
    try:
        yield todo
    except BaseException:
        for p in suite.points:
            for folder in [p.path, *p.path.parents] if todo[id(p)] else []:
                if suite.out not in folder.parents:
                    break
                try:
                    with exclusive(folder):
                        folder.rmdir()
                except (OSError, LifelongError):  # not empty, held by another process, or gone already
                    break
        raise


def _bar(suite: Suite, progress: bool) -> tqdm:
    return tqdm(total=len(suite.points), disable=not progress, file=sys.stderr, unit="run",
                desc=f"suite {Path(suite.name).stem}", dynamic_ncols=True)


def run_suite(suite: Suite, progress: bool = False, tensorboard: bool = False,
              on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every unfinished point in order, each into its own folder; finished ones are skipped."""
    outcomes = []
    with _todo(suite) as todo, _bar(suite, progress) as bar:
        for point in suite.points:
            if not todo[id(point)]:
                outcome = Outcome(point, "skipped")
            else:
                outcome = _run_point(point, tensorboard)
            outcomes.append(outcome)
            bar.update(1)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes


RAY_RETRIES = 3  # times Ray runs a point again whose worker died; each try resumes from the point's checkpoint


def _ray_point(point: Point, threads: int, tensorboard: bool) -> tuple[str, float | None, float, str]:
    """One point in a Ray worker, with `threads` CPU threads: `_run_point`'s outcome as plain values."""
    torch.set_num_threads(threads)
    outcome = _run_point(point, tensorboard)
    return outcome.status, outcome.acc, outcome.seconds, outcome.headline


def run_suite_ray(suite: Suite, address: str | None = None, threads: int = 1, gpu_share: float = 1.0,
                  progress: bool = False, tensorboard: bool = False,
                  on_outcome: Callable[[Outcome], None] | None = None, retries: int = RAY_RETRIES) -> list[Outcome]:
    """`run_suite` with every unfinished point a Ray task (`lifelong bench --ray`): on the cluster at
    `address`, or on a local Ray started for the suite (`experiment.cluster.ray_session`). Each point takes
    `threads` CPUs (and torch threads) and, where it runs on cuda, `gpu_share` of a GPU; Ray runs as many at
    once as the cluster has room for. The points write their own folders as the local bench does (on a
    cluster of several machines, `out` must be a folder every machine sees at the same path). A point
    whose worker dies (killed, out of memory, its machine lost) is run again up to `retries` times and
    resumes from its newest checkpoint (`experiment.run(..., resume=True)`), so it gives the same matrix.
    The `LIFELONG_*` environment variables of this process are passed on to the points. `on_outcome`
    is called as points finish; the outcomes are returned in the suite's order."""
    need("ray", "ray")  # before any folder is made
    env = {k: v for k, v in os.environ.items() if k.startswith("LIFELONG_")}
    options = {"num_cpus": threads, "max_retries": retries, "retry_exceptions": False} | (
        {"runtime_env": {"env_vars": env}} if env else {})
    with _todo(suite) as todo, ray_session(address) as ray, _bar(suite, progress) as bar:
        outcomes = {id(p): Outcome(p, "skipped") for p in suite.points if not todo[id(p)]}
        remote = ray.remote(_ray_point)
        pending = {remote.options(**options, **gpu_request(getattr(p.config, "device", "cpu"), gpu_share)).remote(
            replace(p, path=p.path.resolve()), threads, tensorboard): p
            for p in suite.points if todo[id(p)]}

        def done(outcome: Outcome) -> None:
            outcomes[id(outcome.point)] = outcome
            bar.update(1)
            if on_outcome is not None:
                on_outcome(outcome)

        for outcome in list(outcomes.values()):
            done(outcome)
        try:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                point = pending.pop(ref)
                try:
                    done(Outcome(point, *ray.get(ref)))
                except ray.exceptions.RayTaskError as err:  # the point raised: as the local bench, stop there
                    if isinstance(err.cause, LifelongError):
                        raise err.cause from None
                    raise
                except ray.exceptions.RayError as err:  # its worker died `retries` + 1 times, or Ray lost it
                    raise LifelongError(f"{point.path}: Ray could not finish it ({type(err).__name__}: "
                                        f"{str(err).strip().splitlines()[0]}): run the bench again to resume it "
                                        "from its checkpoint") from None
        finally:
            for ref in pending:
                ray.cancel(ref)
    return [outcomes[id(p)] for p in suite.points]
