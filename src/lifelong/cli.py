"""Command line: `lifelong run`, `pretrain`, `transfer`, `meta`, `adapt`, `rl`, `bench`, `tune`, `serve`, `report`
and `list`. A thin front over the library: each computing command is an `Experiment` (`experiment.EXPERIMENTS`)
whose config dataclass gives its options (`configs.option_specs`); nothing else lives here. The parser
and `list` come from `catalog` (a cache of them), and PyTorch is imported only by the commands that
compute, so `--help`, `list`, `report` and a mistyped option answer at once."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import inspect
import itertools
import json
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from typing import TYPE_CHECKING

from . import __version__, catalog
from .configs import add_options, argument_type, build, flag, option_specs, read_yaml
from .errors import ConfigError, LifelongError
from .files import exclusive
from .registry import Registry

if TYPE_CHECKING:
    import torch

    from .experiment import Experiment
    from .suite import Suite


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"lifelong: error: {message} (see `{self.prog} --help`)\n")

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # `--threads=--`: argparse drops the "--" and gives [] without calling the option's type
        if action.nargs is None and action.option_strings and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected a value, got '--'")
        return super()._get_values(action, arg_strings)


PER_CORE = 4  # CPU threads or processes per core beyond which a machine only thrashes (or cannot start them)


def _count(what: str) -> Callable[[str], int]:
    """The argparse type of --threads or --nproc: a whole number from 1 to PER_CORE per core."""
    most = PER_CORE * (os.cpu_count() or 1)

    def parse(text: str) -> int:
        if not text.isdecimal() or not 1 <= int(text) <= most:
            raise argparse.ArgumentTypeError(f"expected a whole number of {what} >= 1 (at most {most}, {PER_CORE} "
                                             f"per core), got {text!r}")
        return int(text)

    return parse


_threads, _nproc = _count("CPU threads"), _count("processes")


def method_options(experiment: type[Experiment]) -> dict[str, tuple[str, str, inspect.Parameter]]:
    """CLI option dest -> (strategy or method name, argument name, parameter), e.g. ewc_lambda -> (ewc,
    lam, ...), for the experiment's registry of classes with hyper-parameters (run: strategies, adapt:
    domain-adaptation methods). A flag that is also a config field is the shared one: --replay-batch-size
    sets the replay strategy's batch size and every other strategy's."""
    from .strategies import hyper_parameters

    if experiment.options_registry is None:
        return {}
    fields = {f.name for f in dataclasses.fields(experiment.config_class)}
    out = {}
    for entry in experiment.options_registry:
        cls = entry.factory
        for arg, param in hyper_parameters(cls).items():
            dest = f"{entry.name}_{getattr(cls, 'option_names', {}).get(arg, arg)}".replace("-", "_")
            if dest not in fields:
                out[dest] = (entry.name, arg, param)
    return out


def command_spec(experiment: type[Experiment]) -> dict[str, Any]:
    """What the parser and the error messages need of a computing command, as plain data (`catalog`): its
    help, schema and --json keys, its options (config fields), its registry's method options (the group
    title and the flags), and `flags` (Python argument -> flag, for `message`)."""
    registry = experiment.options_registry
    methods = method_options(experiment)
    fields = [f for f in dataclasses.fields(experiment.config_class) if f.metadata.get("cli", True)]
    return {
        "help": experiment.help, "schema": experiment.schema, "record_keys": list(experiment.record_keys),
        "options": option_specs(experiment.config_class),
        "method_group": None if registry is None else f"{registry.kind} options",
        "method_options": [{"flag": flag(dest), "dest": dest, "type": argument_type(registry.get(name).factory, param),
                            "help": f"{name} option (default {param.default})"}
                           for dest, (name, _, param) in methods.items()] if registry is not None else [],
        "flags": _control_flags() | {f.name: flag(f.name) for f in fields}
        | {f"{name}.{arg}": flag(dest) for dest, (name, arg, _) in methods.items()},
    }


def _strategy_line(entry: Any) -> tuple[str, str]:
    """A strategy's name and description, with the scenarios it declares (`scenarios`) where it does."""
    scenarios = getattr(entry.factory, "scenarios", None)
    timed = "; task-free with --consolidate-every" if getattr(entry.factory, "scheduled", False) else ""
    return entry.name, entry.description + (f" [{', '.join(sorted(scenarios))}{timed}]" if scenarios else "")


def live_catalog() -> dict[str, Any]:
    """The catalog (`catalog.load`) from the live registries and experiments: imports everything."""
    from .data import BENCHMARKS, DATASETS, SCENARIOS
    from .experiment import EXPERIMENTS
    from .meta import META_BENCHMARKS, META_LEARNERS
    from .models import MODELS
    from .strategies import STRATEGIES
    from .transfer.adaptation import ADAPTATIONS, DOMAINS

    def pairs(registry: Any) -> list[tuple[str, str]]:
        return [(e.name, e.description) for e in registry]

    lists = [
        ("benchmarks", pairs(BENCHMARKS)),
        ("scenarios", [*SCENARIOS.items(), ("online", "task-free: the stream met once in small batches, no task "
                                                      "boundaries or ids (run --scenario online; docs/online.md)")]),
        ("strategies [the scenarios each supports]", [_strategy_line(e) for e in STRATEGIES]),
        ("models", pairs(MODELS)),
        ("data sets (lifelong pretrain/transfer: NAME or NAME:CLASSES, e.g. fmnist:0-4)", pairs(DATASETS)),
        ("domains (lifelong adapt --source/--target)", pairs(DOMAINS)),
        ("domain-adaptation methods (lifelong adapt)", pairs(ADAPTATIONS)),
        ("meta-learning benchmarks (lifelong meta)", pairs(META_BENCHMARKS)),
        ("meta-learning methods (lifelong meta)", pairs(META_LEARNERS)),
    ]
    return {"commands": {name: command_spec(e) for name, e in EXPERIMENTS.items()},
            "strategies": STRATEGIES.names(), "lists": lists}


def commands() -> dict[str, Any]:
    """The catalog. In a process that has imported the experiments already (a program or a test calling
    `main`, maybe after registering a strategy of its own), read from them, so that nothing added is
    missed; in a fresh `lifelong` process, from `catalog`'s cache of these sources."""
    if "lifelong.experiment" in sys.modules:
        return json.loads(json.dumps(live_catalog()))  # as a cached catalog reads (tuples as lists)
    return _cached()


@functools.cache
def _cached() -> dict[str, Any]:
    return catalog.load(live_catalog)


def _add_experiment(sub: Any, command: str, spec: dict[str, Any]) -> None:
    p = sub.add_parser(command, help=spec["help"])
    add_options(p, spec["options"])
    p.add_argument("--config", type=Path, help="YAML file whose keys are these options (command-line options win)")
    p.add_argument("--out", type=Path, help="run folder: config.json, results.json (schema "
                   f"{spec['schema']}) and plots")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue the interrupted run in DIR with its own "
                   "options (options given as well must be the same)")
    p.add_argument("--json", action="store_true", help="print one JSON object per record on stdout, with "
                   f"{', '.join(spec['record_keys'])}")
    p.add_argument("--threads", type=_threads, metavar="N", default=argparse.SUPPRESS,
                   help="CPU threads for PyTorch (default: PyTorch's, one per core; under torchrun or --nproc, 1 per "
                   "process); e.g. 1 for each of two commands sharing two cores. Under torchrun or --nproc, the N "
                   "processes on a machine share them: each gets max(1, threads // N)")
    p.add_argument("--nproc", type=_nproc, metavar="N", help="train data-parallel in N processes on this machine: "
                   "runs this command again under `torchrun --standalone --nproc-per-node N` (gloo on cpu, NCCL on "
                   "cuda); --batch-size stays the global batch, of which each process trains on its share; rank 0 "
                   "alone writes and prints. Default 1: in this process")
    if command == "run":
        p.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard under --out (needs "
                       "tensorboard)")
    if spec["method_group"] is not None:
        add_options(p.add_argument_group(spec["method_group"]), spec["method_options"])


def _add_ray_options(p: argparse.ArgumentParser, what: str) -> None:
    bench = what == "the points"
    p.add_argument("--ray", nargs="?", const="", default=None if bench else "", metavar="ADDRESS",
                   help=(f"run {what} as Ray tasks: " if bench else f"run {what} ") + "on the Ray cluster at ADDRESS "
                   "(e.g. auto), or on a local Ray of all cores if none is given (needs ray: pip install "
                   "'lifelong[ray]')")
    p.add_argument("--gpu-share", type=float, default=1.0, metavar="F", help=f"with Ray, the share of a GPU each of "
                   f"{what} on cuda takes (default 1; 0.5: two per GPU)")


def parser() -> Parser:
    top = Parser(prog="lifelong", description="Transfer learning and lifelong (continual) learning with PyTorch.")
    top.add_argument("--version", action="version", version=f"lifelong {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    specs = commands()["commands"]
    _add_experiment(sub, "run", specs["run"])
    sub.add_parser("list", help="list benchmarks, scenarios, strategies and models")
    for name in ("pretrain", "transfer", "meta", "adapt", "rl"):
        _add_experiment(sub, name, specs[name])
    p_bench = sub.add_parser("bench", help="run a suite (a grid of points of any command, x seeds) from a YAML file")
    p_bench.add_argument("suite", type=Path, help="suite file, e.g. suites/smoke.yaml (format: lifelong.suite)")
    p_bench.add_argument("--out", type=Path, help="root folder of the run folders (default: the suite's `out`)")
    p_bench.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard (needs tensorboard)")
    p_bench.add_argument("--threads", type=_threads, metavar="N", default=argparse.SUPPRESS,
                         help="CPU threads for PyTorch (default: PyTorch's, one per core; with --ray: 1 per point)")
    _add_ray_options(p_bench, "the points")
    p_tune = sub.add_parser("tune", help="hyper-parameter search over `run` options with Ray Tune, selected on "
                            "held-out training data; writes the best as a `run --config` file")
    p_tune.add_argument("spec", type=Path, help="SPEC file (YAML: base, search, samples, searcher, metric, "
                        "scheduler, concurrent, out; see docs/distributed.md)")
    p_tune.add_argument("--out", type=Path, help="folder of best.yaml and the trials table (default: the SPEC's `out`)")
    p_tune.add_argument("--threads", type=_threads, metavar="N", default=1,
                        help="CPU threads of each trial (default 1)")
    _add_ray_options(p_tune, "the trials")
    _add_serve(sub, specs["run"])
    p_report = sub.add_parser("report", help="Markdown + HTML report (tables, plots) from run folders")
    p_report.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="run folders, or folders holding them")
    p_report.add_argument("--out", type=Path, help="report folder (default: DIR/report of the first DIR)")
    return top


CONTROL = ("command", "config", "out", "overwrite", "resume", "json", "threads", "tensorboard",
           "nproc")  # not config keys
SERVING = ("state", "host", "port", "token_file", "read_token_file", "max_batch", "max_bytes", "checkpoint_every",
           "max_pending", "holdout", "replay_log", "out", "threads")  # `serve`'s, not the learner's (ServeConfig)


def _add_serve(sub: Any, run: dict[str, Any]) -> None:
    """`lifelong serve`: the learner's options (`serve.config.ServeConfig`, torch-free) and the strategies'
    own options (those of `run`), then the service's."""
    from .serve.config import ServeConfig

    p = sub.add_parser("serve", help="an HTTP service holding one continually-learning model: /learn, /predict, "
                       "/status, /metrics (docs/serve.md; needs the extra serve)")
    add_options(p, option_specs(ServeConfig))
    p.add_argument("--state", type=Path, metavar="DIR", help="the learner's folder: its options, write-ahead log "
                   "and saved states; restart with just --state DIR to resume it")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument("--token-file", type=Path, metavar="FILE", help="file holding the bearer token every request "
                   "but /health needs (default: the variable LIFELONG_TOKEN)")
    p.add_argument("--read-token-file", type=Path, metavar="FILE", help="file holding a read-only token: /predict "
                   "and /status only (default: the variable LIFELONG_READ_TOKEN, if set)")
    p.add_argument("--max-batch", type=int, default=1024, metavar="N", help="most rows per request (default 1024)")
    p.add_argument("--max-bytes", type=int, default=16 * 2**20, metavar="N", help="largest request body in bytes "
                   "(default 16 MiB)")
    p.add_argument("--max-pending", type=int, default=1000, metavar="N", help="answer /learn 503 (Retry-After) while "
                   "the log is N batches ahead of the learner (default 1000)")
    p.add_argument("--checkpoint-every", type=int, default=1000, metavar="N", help="save the learner's whole state "
                   "every N samples learnt (default 1000; 0: only at a clean stop); a restart replays the log after it")
    p.add_argument("--holdout", type=Path, metavar="FILE", help=".npz with arrays x and y: /status gives the anytime "
                   "accuracy on its samples of the classes learnt so far")
    p.add_argument("--replay-log", type=Path, metavar="DIR", help="serve nothing: learn the log of the learner in DIR "
                   "again, offline, with its options (an audit against its newest state) or others given here")
    p.add_argument("--out", type=Path, metavar="PATH", help="with --replay-log: write the model and strategy to "
                   "PATH.safetensors/.json")
    p.add_argument("--threads", type=_threads, metavar="N", default=argparse.SUPPRESS,
                   help="CPU threads for PyTorch (default: PyTorch's, one per core)")
    add_options(p.add_argument_group(run["method_group"]), run["method_options"])


def _load_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(args: argparse.Namespace, base: Any = None) -> Any:
    """The command's config: defaults (or `base`), then the --config file, then the command line. Method
    option flags (--ewc-lambda) go into the experiment's options field ({"ewc": {"lam": ...}})."""
    values = _load_yaml(args.config) if getattr(args, "config", None) else {}
    from .experiment import EXPERIMENTS

    experiment = EXPERIMENTS[args.command]
    values.update({k: v for k, v in vars(args).items() if k not in CONTROL})
    flags = method_options(experiment)
    fields: dict[str, Any] = {}
    options: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in flags:
            name, arg, _ = flags[key]
            options.setdefault(name, {})[arg] = value
        else:
            fields[key] = value
    if experiment.options_field is not None:
        before = fields.get(experiment.options_field, getattr(base, experiment.options_field, {}))
        if isinstance(before, dict):
            fields[experiment.options_field] = {**before, **{n: {**before.get(n, {}), **o} for n, o in options.items()}}
    return build(experiment.config_class, fields, base)


def resume_config(args: argparse.Namespace) -> Any:
    """--resume DIR: the run's own configuration with the options given on top (a change of anything
    but a result-neutral option such as --checkpoint-every is refused)."""
    if args.out or args.overwrite:
        raise ConfigError("--resume DIR continues the run in DIR: drop --out and --overwrite")
    from .experiment import EXPERIMENTS, resumable

    experiment = EXPERIMENTS[args.command]
    return build_config(args, base=resumable(args.resume, experiment.config_class, experiment.command))


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings (a damaged checkpoint passed over, another thread count on resume, a folder that cannot
    be locked) as one line each, without a source excerpt."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        yield


def _show_warning(message: Warning | str, *_: Any, **__: Any) -> None:
    if _speaks():
        print(f"lifelong: warning: {message}", file=sys.stderr)


def _speaks() -> bool:
    """Whether this process prints errors and warnings: one started by torchrun does only as rank 0 (the
    ranks meet the same ones; rank 0 says them once), from its start on, before it joins the group."""
    return os.environ.get("RANK", "0") == "0"


def _claim(args: argparse.Namespace, kind: type[Experiment], tensorboard: bool, held: contextlib.ExitStack) -> None:
    """Hold the run folder (--out, or the --resume DIR in `args.out`) for this process until `held` closes,
    and check it: a --resume DIR must hold an unfinished run of this command, an --out no unfinished one
    unless overwriting."""
    from .experiment import check_unfinished, claim_out_dir, resumable
    from .runlog import check_tensorboard

    if args.resume:
        held.enter_context(exclusive(args.resume))
        resumable(args.resume, kind.config_class, kind.command)  # again, now that no other process can write there
    else:
        held.enter_context(claim_out_dir(args.out, args.overwrite, kind.marker))
        if args.out:
            check_unfinished(args.out, args.overwrite, kind.command)
    if tensorboard:
        if not args.out:
            raise ConfigError("--tensorboard writes its logs under --out: add --out DIR")
        check_tensorboard()


def _rank0_decides(check: Callable[[], None], device: torch.device) -> bool:
    """Run `check` on rank 0 alone (in one process: here) and tell every rank whether it passed. Rank 0
    raises its error once the others know; they return False and stop without a word."""
    import torch

    from . import distributed

    passed = torch.ones(1, device=device)
    error = None
    if distributed.is_main():
        try:
            check()
        except Exception as err:  # noqa: BLE001 - re-raised below, once the other ranks are told
            error = err
            passed.zero_()
    distributed.broadcast([passed])
    if error is not None:
        raise error
    return bool(passed.item())


def execute(args: argparse.Namespace) -> int:
    """Any computing command: build and check its config, claim --out (or hold the --resume folder),
    run its experiment (one JSON line per record with --json), write the run folder, show the table.
    Started by torchrun, every rank runs this after joining the process group (`distributed`): rank 0
    alone claims the folder, writes and prints; the others exit quietly (2) if it refuses the folder."""
    config = resume_config(args) if args.resume else build_config(args)
    with computing(args):
        return _execute(args, config)


def _execute(args: argparse.Namespace, config: Any) -> int:
    from . import distributed
    from .experiment import EXPERIMENTS
    from .tables import text_table
    from .training import resolve_device

    kind = EXPERIMENTS[args.command]
    config.validate()
    device = distributed.local_device(resolve_device(config.device))
    distributed.init(device)
    rank0 = distributed.is_main()
    experiment = kind(config)
    tensorboard = getattr(args, "tensorboard", False)
    if args.resume:
        args.out = args.resume
    with contextlib.ExitStack() as held:
        if args.out is not None and not args.out.exists() and rank0:  # made here: removed again if left empty
            held.callback(_remove_if_empty, args.out)
        if not _rank0_decides(lambda: _claim(args, kind, tensorboard, held), device):
            return 2
        emit = (lambda rec: print(json.dumps(experiment.json_record(rec)), flush=True)) if args.json and rank0 else None
        records = experiment.execute(out=args.out, resume=bool(args.resume), on_record=emit,
                                     progress=sys.stderr.isatty() and rank0)
        if args.out:
            experiment.write(args.out, records, **({"tensorboard": True} if tensorboard else {}))
    if not rank0:
        return 0
    if not args.json:
        print(experiment.title(records))
        header, rows = experiment.table(records)
        if rows:
            print(text_table(header, rows))
        if args.out:
            print(f"results written to {args.out}/")
    return 0


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


cmd_run = cmd_pretrain = cmd_transfer = cmd_meta = cmd_adapt = cmd_rl = execute


def cmd_bench(args: argparse.Namespace) -> int:
    data = read_yaml(args.suite, "suite file")  # an unreadable file is said before PyTorch is imported
    from .suite import parse

    with computing(args):
        return _bench(args, parse(data, str(args.suite), args.out))


def _bench(args: argparse.Namespace, suite: Suite) -> int:
    from tqdm import tqdm

    from .runlog import check_tensorboard
    from .suite import Outcome, run_suite, run_suite_ray

    if args.tensorboard:
        check_tensorboard()
    n = len(suite.points)
    print(f"suite {args.suite}: {n} runs into {suite.out}/", flush=True)

    def show(o: Outcome) -> None:
        i = suite.points.index(o.point) + 1
        what = {"skipped": "finished earlier, skipped", "busy": "another process is running it, passed over"}.get(
            o.status) or f"{o.headline}  {o.seconds:.1f} s"
        tqdm.write(f"[{i}/{n}] {o.point.path.relative_to(suite.out)}: {what}", file=sys.stdout)

    if args.ray is None:
        outcomes = run_suite(suite, progress=sys.stderr.isatty(), tensorboard=args.tensorboard, on_outcome=show)
    else:
        outcomes = run_suite_ray(suite, args.ray or None, getattr(args, "threads", 1), args.gpu_share,
                                 progress=sys.stderr.isatty(), tensorboard=args.tensorboard, on_outcome=show)
    ran, busy = (sum(o.status == status for o in outcomes) for status in ("ran", "busy"))
    print(f"{ran} run(s) done, {n - ran - busy} skipped" + (f", {busy} left to the other process(es)" if busy else "")
          + f"; report: lifelong report {suite.out}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    data = read_yaml(args.spec, "tune spec")  # an unreadable file is said before PyTorch is imported
    from .experiment.tune import parse_spec, tune
    from .experiment.tune import table as tune_table
    from .tables import text_table

    with computing(args):
        spec = parse_spec(data, str(args.spec), args.out)
        print(f"tune {args.spec}: trials of {', '.join(spec.search)} into {spec.out}/", flush=True)
        trials = tune(spec, args.ray or None, args.threads, args.gpu_share)
    print(text_table(*tune_table(spec, trials)))
    print(f"best (*) on the validation hold-out; the final run on the test split: "
          f"lifelong run --config {spec.out / 'best.yaml'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    md, page = write_report(args.dirs, args.out or args.dirs[0] / "report")
    print(f"report written to {md} and {page}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve.config import ServeConfig

    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields}
    with computing(args):
        from .experiment import EXPERIMENTS
        from .serve.command import main as serve

        for dest, (name, arg, _) in method_options(EXPERIMENTS["run"]).items():
            if dest in vars(args):
                given.setdefault("strategy_options", {}).setdefault(name, {})[arg] = getattr(args, dest)
        return serve(args, given)


def cmd_list(_: argparse.Namespace) -> int:
    for title, entries in commands()["lists"]:
        print(f"{title}:")
        width = max(len(n) for n, _ in entries)
        for name, what in entries:
            print(f"  {name.ljust(width)}  {what}")
    return 0


def flags(command: str | None) -> dict[str, str]:
    """Python argument -> its flag in `command`: config fields (batch_size -> --batch-size), the method
    options of its registry (ewc.lam -> --ewc-lambda), and the output options (out -> --out)."""
    specs = commands()["commands"]
    if command == "serve":
        from .serve.config import ServeConfig

        own = [f.name for f in dataclasses.fields(ServeConfig) if f.metadata.get("cli", True)]
        return specs["run"]["flags"] | {name: flag(name) for name in (*own, *SERVING)}
    return specs[command]["flags"] if command in specs else _control_flags()


def _control_flags() -> dict[str, str]:
    """The flags of the output options every computing command has (out -> --out)."""
    return {name: flag(name) for name in CONTROL[1:]}


def message(err: LifelongError, command: str | None) -> str:
    """The error as the command line shows it: a ConfigError's Python argument names become flags
    (`lam` of "ewc.lam" -> --ewc-lambda; a method option shared by a config field -> that field's flag)."""
    if not isinstance(err, ConfigError) or not err.argument:
        return str(err)
    known = flags(command)
    name = err.argument.rpartition(".")[2]
    own = known.get(err.argument) or known.get(name)
    text = err.for_flags(own) if own else str(err)
    return re.sub(r"`([a-z_]+)`", lambda m: known.get(m[1], m[0]), text)


def _check_paths(args: argparse.Namespace) -> None:
    """--out and --resume must be paths the system can look up: a name over its file-name limit is one line."""
    for option in ("out", "resume"):
        path = getattr(args, option, None)
        if path is None:
            continue
        try:
            path.exists()
        except OSError as err:  # ENAMETOOLONG; exists() says False for a missing one
            name = str(path) if len(str(path)) <= 60 else f"{str(path)[:57]}..."
            raise ConfigError(f"--{option} {name}: {err.strerror}: choose another path") from None


def _without_nproc(argv: Sequence[str]) -> list[str]:
    """The command line without its --nproc option (written --nproc N or --nproc=N, or abbreviated as
    argparse allows, e.g. --npr N)."""
    out: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            out += [token, *tokens]
            break
        name = token.split("=", 1)[0]
        if len(name) > 3 and "--nproc".startswith(name):
            if "=" not in token:
                next(tokens, None)
            continue
        out.append(token)
    return out


def spawn(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """`--nproc N`: check the configuration here (a mistake is one line, before any process starts),
    then run the same command line without --nproc in N processes under `python -m torch.distributed.run
    --standalone --nproc-per-node N -m lifelong ...`; returns its exit code."""
    from . import distributed

    if distributed.launched():
        raise ConfigError("--nproc starts torchrun itself: leave it out under torchrun", "nproc")
    with warnings.catch_warnings():  # rank 0 gives them
        warnings.simplefilter("ignore")
        (resume_config(args) if args.resume else build_config(args)).validate()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
           "-m", "lifelong", *_without_nproc(argv)]
    env = {"OMP_NUM_THREADS": "1", **os.environ}  # torchrun's default, without its banner saying so
    with subprocess.Popen(cmd, env=env) as proc:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # torchrun stops its processes on the same Ctrl-C, or on SIGTERM
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.terminate()
            raise


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        _check_paths(args)
        if args.command is None:
            parser().print_help()
            return 2
        if args.command == "run":
            _known_strategies(args)
        with _one_line_warnings():
            if getattr(args, "nproc", None) is not None:
                from . import distributed

                if args.nproc > 1 or distributed.launched():
                    with computing(args):
                        return spawn(args, sys.argv[1:] if argv is None else argv)
            return {"list": cmd_list, "report": cmd_report, "bench": cmd_bench, "tune": cmd_tune,
                    "serve": cmd_serve}.get(args.command, execute)(args)
    except LifelongError as err:
        if _speaks():
            print(f"lifelong: error: {message(err, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _speaks():
            print("lifelong: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left, as in `lifelong list | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 0


def _known_strategies(args: argparse.Namespace) -> None:
    """The strategy names of `--strategy` checked against the catalog before PyTorch is imported, so that a
    typo is said at once, in the registry's own words (a `Registry` of the catalog's names)."""
    known = Registry("strategy")
    for name in commands()["strategies"]:
        known.register(name, "")(None)
    for spec in itertools.chain.from_iterable(getattr(args, "strategy", [])):
        for name in spec.split("+"):
            known.get(name)


@contextlib.contextmanager
def computing(args: argparse.Namespace) -> Iterator[None]:
    """PyTorch on --threads threads for a command that computes, once its input files are read (so that
    a mistake in them is said without importing PyTorch); put back afterwards, for callers of `main` in
    the same process. A process group joined under torchrun is left at the end, one the caller set up is not."""
    import torch

    from . import distributed

    before = torch.get_num_threads()
    threads = getattr(args, "threads", None)  # shared by the processes torchrun started on this machine
    torch.set_num_threads(before if threads is None else max(1, threads // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
    joined = torch.distributed.is_initialized()
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if not joined:
            distributed.shutdown()
