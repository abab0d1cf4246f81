"""Command line: `lifelong run`, `list`, `bench`, `report`, `pretrain`, `transfer`, `adapt` and `meta`.
A thin front over the library; nothing else lives here."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch
from tqdm import tqdm

from . import __version__
from .data import BENCHMARKS, DATASETS, SCENARIOS, dataset
from .errors import ConfigError, LifelongError
from .files import exclusive, read_yaml
from .experiment import FREEZE, RECORD_KEYS, RunConfig, check_unfinished, claim_out_dir, config_keys, resumable, run
from .experiment import write_run_dir
from .models import HEADS, MODELS
from .training import DEFAULT_OPTIMIZER, OPTIMIZERS
from .tables import curve_rows, table, text_table
from .report import write_report
from .runlog import check_tensorboard
from .suite import Outcome, run_suite
from .suite import load as load_suite
from .strategies import HAT, STRATEGIES, hyper_parameters
from .meta import META_BENCHMARKS
from .meta import META_LEARNERS
from .meta.experiment import RECORD_KEYS as META_KEYS
from .meta.experiment import MetaConfig, run_meta, summary, write_meta_dir
from .transfer import TRANSFER_METHODS, CurveConfig, learning_curve, pretrain, save_pretrained, write_curve_dir
from .transfer.curve import RECORD_KEYS as TRANSFER_KEYS
from .transfer.adaptation import DOMAINS, AdaptConfig, run_adaptation
from .transfer.adaptation import GRIDS as ADAPT_GRIDS
from .transfer.adaptation import SCORERS as ADAPT_SCORERS
from .transfer.adaptation import ADAPTATIONS
from .transfer.adaptation import RECORD_KEYS as ADAPT_KEYS
from .transfer.adaptation import summary as adapt_summary
from .registry import Registry


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


def _threads(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of CPU threads >= 1, got {text!r}")
    return int(text)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def strategy_options(registry: Registry = STRATEGIES) -> dict[str, tuple[str, str, inspect.Parameter]]:
    """CLI option dest -> (strategy name, argument name, parameter), e.g. ewc_lambda -> (ewc, lam, ...);
    also for other registries of classes (adaptation methods). A flag that is also a run option is the
    shared one: --replay-batch-size sets the replay strategy's batch size and every other strategy's."""
    out = {}
    for entry in registry:
        cls = entry.factory
        for arg, param in hyper_parameters(cls).items():
            flag = f"{entry.name}-{getattr(cls, 'option_names', {}).get(arg, arg).replace('_', '-')}"
            if flag.replace("-", "_") not in config_keys():
                out[flag.replace("-", "_")] = (entry.name, arg, param)
    return out


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    S = argparse.SUPPRESS  # unset options stay absent so that a --config file can supply them
    p.add_argument("--benchmark", default=S, help=f"named benchmark (default {d.benchmark}); see `lifelong list`")
    p.add_argument("--scenario", default=S, choices=list(SCENARIOS),
                   help="class, task or domain (default: the benchmark's)")
    p.add_argument("--n-tasks", type=int, default=S, help="number of tasks (default: the benchmark's)")
    p.add_argument("--class-order", type=_ints, default=S,
                   help="class order for split benchmarks, e.g. 0,1,2,... (default: drawn from the seed)")
    p.add_argument("--strategy", type=_names, action="append", default=S,
                   help="strategy name, repeatable or comma-separated; a+b composes (default naive,joint)")
    p.add_argument("--model", default=S, help=f"model name (default {d.model}); see `lifelong list`")
    p.add_argument("--head", default=S, choices=list(HEADS), help="output head: linear (default) or growing "
                   "(a unit gives logits only once its task has arrived: the classifier grows with the classes)")
    p.add_argument("--hidden", type=_ints, default=S, help="hidden layer sizes of the mlp (default 400,400)")
    p.add_argument("--backbone", default=S, help="a saved model (`lifelong pretrain --out DIR`): start from its "
                   "backbone with a fresh head instead of --model")
    p.add_argument("--freeze", default=S, choices=list(FREEZE), help="backbone: train only the head (default none)")
    p.add_argument("--epochs", type=int, default=S, help=f"epochs per task (default {d.epochs})")
    p.add_argument("--batch-size", type=int, default=S, help=f"mini-batch size (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=S, help="learning rate (default: the strategy's, hat "
                   f"{HAT.default_optimizer[1]}, else {DEFAULT_OPTIMIZER[1]})")
    p.add_argument("--optimizer", default=S, choices=OPTIMIZERS, help=f"optimiser (default: the strategy's, hat sgd, "
                   f"else {DEFAULT_OPTIMIZER[0]}; adam-fused: Adam in one fused kernel, faster on small models)")
    p.add_argument("--momentum", type=float, default=S, help="SGD momentum (default 0)")
    p.add_argument("--weight-decay", type=float, default=S, help="L2 weight decay (default 0)")
    p.add_argument("--seed", type=int, default=S, help="first random seed (default 0)")
    p.add_argument("--seeds", type=int, default=S, help="number of seeds: seed, seed+1, ... (default 1)")
    p.add_argument("--validation", type=float, default=S, metavar="F",
                   help="hold out this fraction of each task's training data and report accuracies on it instead "
                        "of the test split: for choosing hyper-parameters (default 0: evaluate on test)")
    p.add_argument("--device", default=S, help="cpu or cuda (default cpu)")
    p.add_argument("--config", type=Path, help="YAML file whose keys are these options (command-line options win)")
    p.add_argument("--out", type=Path, help="write config.json, results.json and plots to this folder")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--json", action="store_true", help="print one JSON object per (strategy, seed) on stdout")
    p.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard under --out (needs tensorboard)")
    p.add_argument("--checkpoint-every", type=int, default=S, metavar="N",
                   help="with --out, also save the whole state every N training steps (default 0: after every task)")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue the interrupted run in DIR with its own "
                   "options (options given as well must be the same)")
    group = p.add_argument_group("strategy options")
    group.add_argument("--buffer-size", type=int, default=S, help="memory size of every memory-based strategy in "
                       "the run (default: each strategy's own); a strategy's own flag, e.g. --der-buffer-size, wins")
    group.add_argument("--replay-batch-size", type=int, default=S, help="replayed samples per step of every "
                       "strategy that replays (default: each strategy's own); a strategy's own option wins")
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
    _add_transfer_parsers(sub)
    _add_meta_parser(sub)
    _add_adapt_parser(sub)
    p_bench = sub.add_parser("bench", help="run a suite (benchmarks x scenarios x strategies x seeds) from a YAML file")
    p_bench.add_argument("suite", type=Path, help="suite file, e.g. suites/smoke.yaml (format: lifelong.suite)")
    p_bench.add_argument("--out", type=Path, help="root folder of the run folders (default: the suite's `out`)")
    p_bench.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard (needs tensorboard)")
    for name in ("run", "bench", "pretrain", "transfer", "meta", "adapt"):  # the commands that compute
        sub.choices[name].add_argument(
            "--threads", type=_threads, metavar="N", default=argparse.SUPPRESS,
            help="CPU threads for PyTorch (default: PyTorch's, one per core); e.g. 1 for each of two commands "
            "sharing two cores")
    p_report = sub.add_parser("report", help="Markdown + HTML report (tables, plots) from run folders")
    p_report.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="run folders, or folders holding them")
    p_report.add_argument("--out", type=Path, help="report folder (default: DIR/report of the first DIR)")
    return top


def _load_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


OUTPUT = ("command", "out", "overwrite", "json", "threads")  # what a command does with its results, not its config
CONTROL = (*OUTPUT, "config", "tensorboard", "resume")  # not RunConfig keys


def build_config(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """Defaults (or `base`), then the --config file, then the command line."""
    given = {k: v for k, v in vars(args).items() if k not in CONTROL}
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
    base = base or RunConfig()
    options = {name: {**base.strategy_options.get(name, {}), **opts} for name, opts in options.items()}
    config = dataclasses.replace(base, **fields, strategy_options={**base.strategy_options, **options})
    config.check_types()
    return config


def resume_config(args: argparse.Namespace) -> RunConfig:
    """--resume DIR: the run's own configuration with the options given on top (`run` refuses any
    change but --checkpoint-every)."""
    if args.out or args.overwrite:
        raise ConfigError("--resume DIR continues the run in DIR: drop --out and --overwrite")
    return build_config(args, base=resumable(args.resume))


def _emitter(args: argparse.Namespace, keys: Sequence[str], metric: bool = False) -> Callable[[dict], None]:
    """`on_record` for --json: one JSON object per record with `keys` (and, with `metric`, the key the
    record's "metric" names, e.g. acc or mse)."""

    def emit(rec: dict[str, Any]) -> None:
        if args.json:
            picked = [*keys, rec["metric"]] if metric else keys
            print(json.dumps({k: rec[k] for k in picked}), flush=True)

    return emit


def _show(args: argparse.Namespace, header: str, text: str) -> None:
    """The human summary (nothing with --json): a header line, a table, where the results went."""
    if not args.json:
        print(header)
        print(text)
        if getattr(args, "out", None):
            print(f"results written to {args.out}/")


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings (a damaged checkpoint passed over, another thread count on resume, a folder that cannot
    be locked) as one line each, without a source excerpt."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_, **__: print(f"lifelong: warning: {message}", file=sys.stderr)
        yield


def _optimizers(records: list[dict[str, Any]]) -> str:
    """"adam lr 0.001", or per strategy where they differ ("hat: sgd lr 0.05, naive: adam lr 0.001")."""
    used = {r["strategy"]: f"{r['optimizer']} lr {r['lr']}" for r in records}
    return used.popitem()[1] if len(set(used.values())) == 1 else ", ".join(f"{k}: {v}" for k, v in used.items())


def cmd_run(args: argparse.Namespace) -> int:
    config = resume_config(args) if args.resume else build_config(args)
    config.validate()
    with exclusive(args.resume) if args.resume else claim_out_dir(args.out, args.overwrite):
        if args.resume:
            args.out = args.resume
            resumable(args.out)  # again, now that no other process can be writing there
        elif args.out:
            check_unfinished(args.out, args.overwrite)
        if args.tensorboard:
            if not args.out:
                raise ConfigError("--tensorboard writes its logs under --out: add --out DIR")
            check_tensorboard()
        emit = _emitter(args, RECORD_KEYS)
        records = run(config, on_record=emit, progress=sys.stderr.isatty(),
                      checkpoints=args.out / "checkpoints" if args.out else None, resume=bool(args.resume))
        if args.out:
            write_run_dir(args.out, config, records, tensorboard=args.tensorboard)
    r = records[0]
    _show(args, f"{config.benchmark}: {r['scenario']}-incremental, {r['stream']['n_tasks']} tasks, "
          f"model {config.model}, {config.epochs} epoch(s), {_optimizers(records)}, "
          f"seeds {config.seed}..{config.seed + config.seeds - 1}; accuracies in %"
          + (f" on {config.validation:g} of the training data held out (not the test split)" if config.validation
             else ""), table(records))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite, args.out)
    if args.tensorboard:
        check_tensorboard()
    n = len(suite.points)
    print(f"suite {args.suite}: {n} runs into {suite.out}/", flush=True)

    def show(o: Outcome) -> None:
        i = suite.points.index(o.point) + 1
        what = {"skipped": "finished earlier, skipped", "busy": "another process is running it, passed over"}.get(
            o.status) or f"ACC {o.acc * 100:.2f}%  {o.seconds:.1f} s"
        tqdm.write(f"[{i}/{n}] {o.point.path.relative_to(suite.out)}: {what}", file=sys.stdout)

    outcomes = run_suite(suite, progress=sys.stderr.isatty(), tensorboard=args.tensorboard, on_outcome=show)
    ran, busy = (sum(o.status == status for o in outcomes) for status in ("ran", "busy"))
    print(f"{ran} run(s) done, {n - ran - busy} skipped" + (f", {busy} left to the other process(es)" if busy else "")
          + f"; report: lifelong report {suite.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    md, page = write_report(args.dirs, args.out or args.dirs[0] / "report")
    print(f"report written to {md} and {page}")
    return 0


def _shots(text: str) -> list[int | None]:
    """"1,5,all" -> [1, 5, None] (None: the whole training split)."""
    return [None if v == "all" else _ints(v)[0] for v in _names(text)]


def _add_transfer_parsers(sub: Any) -> None:
    p = sub.add_parser("pretrain", help="train a source model on a data set and save it for transfer")
    p.add_argument("--benchmark", default="fmnist:0-4", help="data set, whole or some classes: fmnist, digits, "
                   "mnist1d, e.g. fmnist:0-4 (default)")
    p.add_argument("--model", default="cnn", help="model name (default cnn); see `lifelong list`")
    p.add_argument("--hidden", type=_ints, default=[400, 400], help="hidden layer sizes of the mlp (default 400,400)")
    p.add_argument("--out", type=Path, required=True, help="folder for model.safetensors and model.json")
    p.add_argument("--overwrite", action="store_true", help="replace a saved model in --out")
    d = CurveConfig()
    q = sub.add_parser("transfer", help="learning curves: target accuracy against labelled target samples per class")
    q.add_argument("--source", default=d.source, help=f"data set to pretrain on (default {d.source})")
    q.add_argument("--target", default=d.target, help=f"target data set (default {d.target})")
    q.add_argument("--shots", type=_shots, default=d.shots, help="labelled target samples per class "
                   "(default 1,5,10,50,all)")
    q.add_argument("--method", type=_names, default=d.method,
                   help=f"comma-separated, from {', '.join(TRANSFER_METHODS)} (default {','.join(d.method)})")
    q.add_argument("--model", default=d.model, help=f"source model (default {d.model})")
    q.add_argument("--hidden", type=_ints, default=d.hidden, help="hidden layer sizes of the mlp (default 400,400)")
    q.add_argument("--backbone", help="a saved model (`lifelong pretrain`) used for every seed instead of pretraining")
    q.add_argument("--source-epochs", type=int, default=d.source_epochs, help=f"pretraining epochs (default "
                   f"{d.source_epochs})")
    q.add_argument("--feature-cut", type=int, default=d.feature_cut, help="features/probe/ncm: take the features "
                   "this many backbone modules below the top (default: the model's transfer layer, cnn: 2 = its "
                   "convolutional trunk; mlp, resnet18: 0 = the head's input)")
    q.add_argument("--draws", type=int, default=d.draws, help="labelled samples drawn per shots and seed, "
                   f"accuracy averaged (default {d.draws})")
    q.add_argument("--steps", type=int, default=d.steps, help=f"least optimiser steps per target fit "
                   f"(default {d.steps})")
    q.add_argument("--seeds", type=int, default=d.seeds, help="number of seeds: seed, seed+1, ... (default 1)")
    q.add_argument("--out", type=Path, help="write transfer.json and curve.png to this folder")
    q.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    q.add_argument("--json", action="store_true", help="print one JSON object per (method, shots, seed) on stdout")
    for cmd in (p, q):
        cmd.add_argument("--epochs", type=int, default=d.epochs, help="epochs (default 1; transfer: per target fit, at "
                         "least)")
        cmd.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr})")
        cmd.add_argument("--batch-size", type=int, default=d.batch_size, help=f"mini-batch size "
                         f"(default {d.batch_size})")
        cmd.add_argument("--seed", type=int, default=d.seed, help="(first) random seed (default 0)")
        cmd.add_argument("--device", default=d.device, help="cpu or cuda (default cpu)")


def cmd_pretrain(args: argparse.Namespace) -> int:
    dataset(args.benchmark), MODELS.get(args.model)  # bad names fail before --out is touched
    with claim_out_dir(args.out, args.overwrite, marker="model.json"):
        model, rec = pretrain(args.benchmark, args.model, hidden=args.hidden, seed=args.seed, epochs=args.epochs,
                              lr=args.lr, batch_size=args.batch_size, device=args.device,
                              progress=sys.stderr.isatty())
        stem = save_pretrained(args.out, model, rec)
    print(f"{args.benchmark}: {args.model}, {args.epochs} epoch(s), test accuracy {rec['acc'] * 100:.2f}%, "
          f"{rec['train_seconds']:.1f} s; saved to {stem}.safetensors and {stem}.json")
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    config = CurveConfig(**{k: v for k, v in vars(args).items() if k not in OUTPUT})
    config.validate()
    with claim_out_dir(args.out, args.overwrite, marker="transfer.json"):
        records = learning_curve(config, on_record=_emitter(args, TRANSFER_KEYS))
        if args.out:
            write_curve_dir(args.out, config, records)
    _show(args, f"{records[0]['source']} -> {config.target}: target test accuracy (%) by labelled samples per "
          f"class, seeds {config.seed}..{config.seed + config.seeds - 1}", text_table(*curve_rows(records)))
    return 0


def _add_meta_parser(sub: Any) -> None:
    d, S = MetaConfig(), argparse.SUPPRESS
    p = sub.add_parser("meta", help="meta-learning: meta-train (MAML, Reptile, ProtoNets, ...), evaluate on "
                       "held-out tasks")
    p.add_argument("--benchmark", default=S, help=f"{', '.join(META_BENCHMARKS.names())} (default {d.benchmark})")
    p.add_argument("--method", type=_names, action="append", default=S, help=f"comma-separated or repeated, from "
                   f"{', '.join(META_LEARNERS.names())} (default maml; baseline and finetune always run)")
    p.add_argument("--ways", type=int, default=S, help=f"classes per episode (default {d.ways})")
    p.add_argument("--shots", type=_ints, default=S, help="support samples per class (or per task), e.g. 1,5 "
                   "(default 10)")
    p.add_argument("--queries", type=int, default=S, help="query samples per class (default 15; sinusoid: 10 per task)")
    p.add_argument("--classes", default=S, help="meta-train/valid/test classes, e.g. 0-3/4-5/6-9 or 0-4//5-9 "
                   "(default 40/20/40%%, or halves when the test part has no more classes than --ways)")
    p.add_argument("--model", default=S, help="model name (default conv4 for fmnist/digits, else mlp); see "
                   "`lifelong list`")
    p.add_argument("--hidden", type=_ints, default=S, help="hidden sizes of the mlp (default 40,40 for sinusoid, "
                   "else 256,128)")
    p.add_argument("--iterations", type=int, default=S, help="meta-training steps (default 1000 for sinusoid, else "
                   "200)")
    p.add_argument("--rotate", action="store_true", default=S, help="add meta-train classes turned by 90/180/270 "
                   "degrees as new classes")
    p.add_argument("--valid-every", type=int, default=S, help="keep the meta-parameters of the lowest loss on "
                   f"the validation episodes, scored every N iterations; 0: keep the last (default {d.valid_every})")
    p.add_argument("--valid-tasks", type=int, default=S, help=f"validation episodes (default {d.valid_tasks})")
    for opt, what in (("inner-lr", "inner-loop / fine-tuning learning rate"), ("meta-lr", "outer learning rate")):
        p.add_argument(f"--{opt}", type=float, default=S, help=f"{what} (default: the method's)")
    for opt, what in (("inner-steps", "inner-loop steps while meta-training"), ("meta-batch", "tasks per outer step")):
        p.add_argument(f"--{opt}", type=int, default=S, help=f"{what} (default: the method's)")
    p.add_argument("--steps", type=_ints, default=S, help="adaptation steps at meta-test, e.g. 1,10 (default 10)")
    p.add_argument("--eval-tasks", type=int, default=S, help=f"meta-test tasks (default {d.eval_tasks})")
    p.add_argument("--seed", type=int, default=S, help="first random seed (default 0)")
    p.add_argument("--seeds", type=int, default=S, help="number of seeds: seed, seed+1, ... (default 1)")
    p.add_argument("--device", default=S, help="cpu or cuda (default cpu)")
    p.add_argument("--out", type=Path, help="write meta.json and plots to this folder")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--json", action="store_true", help="print one JSON object per (method, shots, seed, steps)")


def cmd_meta(args: argparse.Namespace) -> int:
    given = {k: v for k, v in vars(args).items() if k not in OUTPUT}
    if "method" in given:
        given["method"] = [name for chunk in given["method"] for name in chunk]
    config = MetaConfig(**given)
    config.validate()
    with claim_out_dir(args.out, args.overwrite, marker="meta.json"):
        records = run_meta(config, on_record=_emitter(args, META_KEYS, metric=True), progress=sys.stderr.isatty())
        if args.out:
            write_meta_dir(args.out, config, records)
    _show(args, f"{config.benchmark}: {config.iterations} meta-training iterations, mean over {config.eval_tasks} "
          f"meta-test tasks per seed, seeds {config.seed}..{config.seed + config.seeds - 1}",
          text_table(*summary(records)))
    return 0


def _add_adapt_parser(sub: Any) -> None:
    d = AdaptConfig()
    p = sub.add_parser("adapt", help="unsupervised domain adaptation: labelled source, unlabelled target "
                       "(target labels only to test)")
    p.add_argument("--source", default=d.source, help=f"source domain (default {d.source}); see `lifelong list`")
    p.add_argument("--target", default=d.target, help=f"target domain (default {d.target}): "
                   f"{', '.join(DOMAINS.names())}")
    p.add_argument("--method", type=_names, default=d.method, help=f"comma-separated, from "
                   f"{', '.join(ADAPTATIONS.names())} (default: all)")
    p.add_argument("--model", default=d.model, help=f"model name (default {d.model}); see `lifelong list`")
    p.add_argument("--hidden", type=_ints, default=d.hidden, help="hidden layer sizes of the mlp (default 400,400)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs over the source (default {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"source (and target) batch size "
                   f"(default {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr})")
    p.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS,
                   help=f"optimiser (default {d.optimizer})")
    p.add_argument("--seed", type=int, default=d.seed, help="first random seed (default 0)")
    p.add_argument("--seeds", type=int, default=d.seeds, help="number of seeds: seed, seed+1, ... (default 1)")
    p.add_argument("--device", default=d.device, help="cpu or cuda (default cpu)")
    grids = "; ".join(f"{m} " + ",".join(f"{v:g}" for v in g) for m, g in ADAPT_GRIDS.items())
    p.add_argument("--select", default=d.select, metavar="SCORER", help=f"pick each deep method's weight from its "
                   f"grid ({grids}) with a scorer that uses no target label: {', '.join(ADAPT_SCORERS.names())} "
                   "(default: none)")
    p.add_argument("--json", action="store_true", help="print one JSON object per (method, seed) on stdout")
    group = p.add_argument_group("method options")
    for dest, (name, _, param) in strategy_options(ADAPTATIONS).items():
        default = param.default
        kind = _bool if isinstance(default, bool) else _ints if isinstance(default, (tuple, list)) else type(default)
        group.add_argument(f"--{dest.replace('_', '-')}", dest=dest, type=kind, default=argparse.SUPPRESS,
                           help=f"{name} option (default {default})")


def cmd_adapt(args: argparse.Namespace) -> int:
    method_opts, options, fields = strategy_options(ADAPTATIONS), {}, {}
    for key, value in vars(args).items():
        if key in method_opts:
            name, arg, _ = method_opts[key]
            options.setdefault(name, {})[arg] = value
        elif key not in OUTPUT:
            fields[key] = value
    config = AdaptConfig(**fields, method_options=options)
    config.validate()
    records = run_adaptation(config, on_record=_emitter(args, ADAPT_KEYS))
    chosen = ", ".join(f"{r['method']} {r['options']['lam']:g} (seed {r['seed']})" for r in records
                       if config.select and r["method"] in ADAPT_GRIDS)
    _show(args, f"{config.source} -> {config.target}: unsupervised, target labels only to test; model "
          f"{config.model}, {config.epochs} epoch(s), seeds {config.seed}..{config.seed + config.seeds - 1}"
          + (f"; λ chosen by {config.select}: {chosen}" if chosen else ""), text_table(*adapt_summary(records)))
    return 0


def cmd_list() -> int:
    for title, entries in (
        ("benchmarks", [(e.name, e.description) for e in BENCHMARKS]),
        ("scenarios", list(SCENARIOS.items())),
        ("strategies", [(e.name, e.description) for e in STRATEGIES]),
        ("models", [(e.name, e.description) for e in MODELS]),
        ("data sets (lifelong pretrain/transfer: NAME or NAME:CLASSES, e.g. fmnist:0-4)",
         [(e.name, e.description) for e in DATASETS]),
        ("domains (lifelong adapt --source/--target)", [(e.name, e.description) for e in DOMAINS]),
        ("domain-adaptation methods (lifelong adapt)", [(e.name, e.description) for e in ADAPTATIONS]),
        ("meta-learning benchmarks (lifelong meta)", [(e.name, e.description) for e in META_BENCHMARKS]),
        ("meta-learning methods (lifelong meta)", [(e.name, e.description) for e in META_LEARNERS]),
    ):
        print(f"{title}:")
        width = max(len(n) for n, _ in entries)
        for name, what in entries:
            print(f"  {name.ljust(width)}  {what}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    before = torch.get_num_threads()
    torch.set_num_threads(getattr(args, "threads", before))
    try:
        commands: dict[str, Callable[[argparse.Namespace], int]] = {
            "run": cmd_run, "list": lambda _: cmd_list(), "pretrain": cmd_pretrain, "transfer": cmd_transfer,
            "bench": cmd_bench, "report": cmd_report, "meta": cmd_meta, "adapt": cmd_adapt}
        if args.command not in commands:
            parser().print_help()
            return 2
        with _one_line_warnings():
            return commands[args.command](args)
    except LifelongError as err:
        print(f"lifelong: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lifelong: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left, as in `lifelong list | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 0
    finally:
        torch.set_num_threads(before)  # for callers of `main` in the same process
