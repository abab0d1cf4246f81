"""Command line: `lifelong run` and `lifelong list`. A thin front over `experiment`; nothing else lives here."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from . import __version__
from .data import BENCHMARKS, SCENARIOS
from .errors import ConfigError, LifelongError
from .experiment import RECORD_KEYS, RunConfig, check_out_dir, config_keys, run, write_run_dir
from .models import HEADS, MODELS
from .report import table
from .strategies import STRATEGIES, hyper_parameters


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"lifelong: error: {message} (see `{self.prog} --help`)\n")


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def strategy_options() -> dict[str, tuple[str, str, inspect.Parameter]]:
    """CLI option dest -> (strategy name, argument name, parameter), e.g. ewc_lambda -> (ewc, lam, ...)."""
    out = {}
    for entry in STRATEGIES:
        cls = entry.factory
        for arg, param in hyper_parameters(cls).items():
            flag = f"{entry.name}-{cls.option_names.get(arg, arg).replace('_', '-')}"
            out[flag.replace("-", "_")] = (entry.name, arg, param)
    return out


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    S = argparse.SUPPRESS  # unset options stay absent so that a --config file can supply them
    p.add_argument("--benchmark", default=S, help=f"named benchmark (default {d.benchmark}); see `lifelong list`")
    p.add_argument("--scenario", default=S, choices=list(SCENARIOS), help="class, task or domain (default: the benchmark's)")
    p.add_argument("--n-tasks", type=int, default=S, help="number of tasks (default: the benchmark's)")
    p.add_argument("--class-order", type=_ints, default=S, help="class order for split benchmarks, e.g. 0,1,2,... (default: drawn from the seed)")
    p.add_argument("--strategy", type=_names, action="append", default=S,
                   help="strategy name, repeatable or comma-separated; a+b composes (default naive,joint)")
    p.add_argument("--model", default=S, help=f"model name (default {d.model}); see `lifelong list`")
    p.add_argument("--head", default=S, choices=list(HEADS), help="output head: linear (default) or growing "
                   "(a unit gives logits only once its task has arrived: the classifier grows with the classes)")
    p.add_argument("--hidden", type=_ints, default=S, help="hidden layer sizes of the mlp (default 400,400)")
    p.add_argument("--epochs", type=int, default=S, help=f"epochs per task (default {d.epochs})")
    p.add_argument("--batch-size", type=int, default=S, help=f"mini-batch size (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=S, help=f"learning rate (default {d.lr})")
    p.add_argument("--optimizer", default=S, choices=["sgd", "adam"], help=f"optimiser (default {d.optimizer})")
    p.add_argument("--momentum", type=float, default=S, help="SGD momentum (default 0)")
    p.add_argument("--weight-decay", type=float, default=S, help="L2 weight decay (default 0)")
    p.add_argument("--seed", type=int, default=S, help="first random seed (default 0)")
    p.add_argument("--seeds", type=int, default=S, help="number of seeds: seed, seed+1, ... (default 1)")
    p.add_argument("--device", default=S, help="cpu or cuda (default cpu)")
    p.add_argument("--config", type=Path, help="YAML file whose keys are these options (command-line options win)")
    p.add_argument("--out", type=Path, help="write config.json, results.json and plots to this folder")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--json", action="store_true", help="print one JSON object per (strategy, seed) on stdout")
    group = p.add_argument_group("strategy options")
    for dest, (name, arg, param) in strategy_options().items():
        kind = type(param.default) if param.default is not inspect.Parameter.empty else str
        group.add_argument(f"--{dest.replace('_', '-')}", dest=dest, type=_bool if kind is bool else kind,
                           default=S, help=f"{name} option (default {param.default})")


def parser() -> Parser:
    top = Parser(prog="lifelong", description="Transfer learning and lifelong (continual) learning with PyTorch.")
    top.add_argument("--version", action="version", version=f"lifelong {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    p_run = sub.add_parser("run", help="train strategies on a continual-learning benchmark and report metrics")
    _add_run_arguments(p_run)
    sub.add_parser("list", help="list benchmarks, scenarios, strategies and models")
    return top


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(args: argparse.Namespace) -> RunConfig:
    """Defaults, then the --config file, then the command line."""
    given = {k: v for k, v in vars(args).items() if k not in ("command", "config", "out", "overwrite", "json")}
    if "strategy" in given:  # action="append" of comma lists
        given["strategy"] = [name for chunk in given["strategy"] for name in chunk]
    values = _load_yaml(args.config) if args.config else {}
    if isinstance(values.get("strategy"), str):
        values["strategy"] = _names(values["strategy"])
    values.update(given)
    known, strat = config_keys() - {"strategy_options"}, strategy_options()
    options: dict[str, dict[str, Any]] = {}
    fields: dict[str, Any] = {}
    for key, value in values.items():
        if key in strat:
            name, arg, _ = strat[key]
            options.setdefault(name, {})[arg] = value
        elif key in known:
            fields[key] = value
        else:
            raise ConfigError(f"unknown config key {key!r}: valid keys are the options of `lifelong run --help`")
    config = RunConfig(**fields, strategy_options=options)
    _check_types(config)
    return config


def _check_types(config: RunConfig) -> None:
    """YAML values must have the option's type (a CLI value was already converted by argparse)."""
    default = RunConfig()
    for key, value in config.to_dict().items():
        want = getattr(default, key)
        if key in ("scenario", "n_tasks", "class_order") and value is None:
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


def cmd_run(args: argparse.Namespace) -> int:
    config = build_config(args)
    config.validate()
    if args.out:
        check_out_dir(args.out, args.overwrite)

    def emit(rec: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps({k: rec[k] for k in RECORD_KEYS}), flush=True)

    records = run(config, on_record=emit, progress=sys.stderr.isatty(),
                  checkpoints=args.out / "checkpoints" if args.out else None)
    if args.out:
        write_run_dir(args.out, config, records)
    if not args.json:
        r = records[0]
        print(f"{config.benchmark}: {r['scenario']}-incremental, {r['stream']['n_tasks']} tasks, "
              f"model {config.model}, {config.epochs} epoch(s), {config.optimizer} lr {config.lr}, "
              f"seeds {config.seed}..{config.seed + config.seeds - 1}; accuracies in %")
        print(table(records))
        if args.out:
            print(f"results written to {args.out}/")
    return 0


def cmd_list() -> int:
    for title, entries in (
        ("benchmarks", [(e.name, e.description) for e in BENCHMARKS]),
        ("scenarios", list(SCENARIOS.items())),
        ("strategies", [(e.name, e.description) for e in STRATEGIES]),
        ("models", [(e.name, e.description) for e in MODELS]),
    ):
        print(f"{title}:")
        width = max(len(n) for n, _ in entries)
        for name, what in entries:
            print(f"  {name.ljust(width)}  {what}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "list":
            return cmd_list()
        parser().print_help()
        return 2
    except LifelongError as err:
        print(f"lifelong: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lifelong: interrupted", file=sys.stderr)
        return 130
