"""`lifelong run`: `RunConfig` -> (strategy, seed) fits of the one training loop (`run`, resumable
mid-fit) -> records, a summary table, and a run folder (`write_run_dir`)."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from .. import distributed
from ..checkpointing import Callback
from ..configs import check_arguments, check_types, option, whole
from ..data import BENCHMARKS, SCENARIOS, OnlineStream, Split, Stream, benchmark, online
from ..data.text import Encoder, encoder_hash
from ..errors import ConfigError
from ..models import HEADS, MODELS, as_backbone, build, load_backbone, mlp, with_head
from ..models import info as model_info
from ..plots import plot_curves, plot_matrix, plot_online, save_png
from ..runlog import write_csv, write_tensorboard
from ..strategies import HAT, STRATEGIES, Compose, Strategy, check_scenario, hyper_parameters
from ..tables import header, summary_rows
from ..training import DEFAULT_OPTIMIZER, OPTIMIZERS, Result, Trainer, resolve_device, resolve_optimizer
from ..vectorized import STRATEGIES as VECTORIZED
from ..vectorized import fit_together
from ..results import RESULTS_SCHEMA
from .base import Experiment, Record, begin_run, read_records, write_records

FREEZE = ("none", "backbone", "all", "lora")  # all = backbone; top-N (N layers) and lora: the text encoder minilm
TEXT_MODELS = ("minilm", "bow")  # the models that read token ids (`data.text`)
ONLINE = "online"  # the task-free scenario of `run` (`data.online`)
ONLINE_OPTIONS = ("blurry", "drift", "eval_every", "eval_samples", "consolidate_every")
SHARED_OPTIONS = ("buffer_size", "replay_batch_size")  # run options that set every strategy having them
RECORD_KEYS = ("strategy", "benchmark", "scenario", "seed", "acc", "bwt", "fwt", "forgetting", "matrix",
               "train_seconds", "samples_per_second", "peak_rss_mb", "world_size", "batch_size")


@dataclass
class RunConfig:
    """Everything a `lifelong run` needs; field names are the CLI options and YAML config keys."""

    benchmark: str = option("split-fmnist", "named benchmark; see `lifelong list`")
    scenario: str | None = option(None, "class, task or domain (default: the benchmark's), or online: the benchmark's "
                                  "class- or domain-incremental stream met once, in small batches, without task "
                                  "boundaries or ids (docs/online.md)", choices=[*SCENARIOS, ONLINE])
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
    freeze: str = option("none", "backbone (or all): train only the head, on the features of a text encoder computed "
                         "once and cached; top-N: train the top N layers of minilm and the head (the layers "
                         "below run once, cached); lora: LoRA adapters of minilm (docs/text.md)")
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
    blurry: float = option(0.0, "online: the fraction of each task's samples met among a neighbouring task's (blurry "
                           "boundaries)", metavar="F")
    drift: float = option(0.0, "online: width, in tasks, of the gradual drift from one task to the next around each "
                          "boundary", metavar="W")
    eval_every: int = option(1000, "online: measure the anytime accuracy every N samples met", metavar="N")
    eval_samples: int = option(1000, "online: held-out test samples per task for the anytime accuracy", metavar="N")
    consolidate_every: int = option(0, "online: EWC, online EWC, SI, MAS and L2 consolidate every N samples (0: they "
                                    "are refused, having no task end to consolidate at)", metavar="N")
    validation: float = option(0.0, "hold out this fraction of each task's training data and report accuracies on "
                               "it instead of the test split: for choosing hyper-parameters (default 0: evaluate on "
                               "test)", metavar="F")
    subset: int | None = option(None, "keep N training and N test samples of every class (the same ones for every "
                                "seed): smaller runs of costly models, e.g. minilm with trainable layers", metavar="N")
    vectorize: bool = option(False, "with --seeds N, train the N seeds' models as one batched model (naive, mlp, "
                             "linear head; about 1.2-1.3x faster training on one CPU thread): each seed keeps its own "
                             "initialisation, stream and batches, and its results equal those of its own run up to "
                             "float rounding, not bit for bit; each record's train_seconds is the wall time the N "
                             "seeds shared (`vectorized`: N), so their joint samples/s is N x samples_per_second")

    def check_types(self) -> None:
        """Every value must have its option's type (YAML files and Python callers can pass anything)."""
        check_types(self)

    def validate(self) -> None:
        self.check_types()
        BENCHMARKS.get(self.benchmark)
        MODELS.get(self.model)
        if self.head not in HEADS:
            raise ConfigError(f"unknown head {self.head!r}: choose one of {', '.join(HEADS)}", "head")
        if self.scenario is not None and self.scenario not in (*SCENARIOS, ONLINE):
            raise ConfigError(f"unknown scenario {self.scenario!r}: choose one of {', '.join(SCENARIOS)}, {ONLINE}",
                              "scenario")
        whole(self, "eval_every", "eval_samples")
        whole(self, "consolidate_every", least=0)
        for name in ONLINE_OPTIONS:
            if self.scenario != ONLINE and getattr(self, name) != getattr(RunConfig, name):
                raise ConfigError(f"`{name}` is for online streams: add `scenario` online, or leave it out", name)
        if self.scenario == ONLINE:
            self.check_online()
        if not self.strategy:
            raise ConfigError("no strategy given: set `strategy` to a name (see `lifelong list`)", "strategy")
        for spec in self.strategy:
            for name in spec.split("+"):
                STRATEGIES.get(name)
        twice = next((s for i, s in enumerate(self.strategy) if s in self.strategy[:i]), None)
        if twice is not None:
            raise ConfigError(f"`strategy` lists {twice!r} twice: each strategy runs once per seed, remove the "
                              "duplicate", "strategy")
        # the Trainer checks epochs and batch_size too, but only once a fit starts: an --out folder is touched by then
        whole(self, "seeds", "n_tasks", "epochs", "batch_size", *SHARED_OPTIONS)
        whole(self, "checkpoint_every", least=0)
        whole(self, "subset")
        if self.freeze not in FREEZE and not re.fullmatch(r"top-[1-9]\d*", self.freeze):
            raise ConfigError(f"unknown `freeze` {self.freeze!r}: choose one of {', '.join(FREEZE)} or top-N (N "
                              "layers, e.g. top-2)", "freeze")
        if self.freeze not in ("none", "backbone", "all") and self.model != "minilm":
            raise ConfigError(f"`freeze` {self.freeze} chooses layers of the minilm text encoder: set `model` to "
                              "minilm, or `freeze` to none or backbone", "freeze")
        text, reads_text = BENCHMARKS.get(self.benchmark).factory.text, self.model in TEXT_MODELS
        if text != reads_text or (text and self.backbone is not None):
            raise ConfigError(f"{self.benchmark} holds {'token ids' if text else 'images or signals'} and model "
                              f"{self.model!r} reads {'token ids' if reads_text else 'images or signals'}: choose "
                              + (f"`model` {' or '.join(TEXT_MODELS)} (docs/text.md)" if text else
                                 "a text benchmark, or another `model`"), "model")
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
        if self.vectorize:
            self.check_vectorize()
        for spec in self.strategy:  # its options, and the optimiser's settings with it (`momentum`, ...)
            resolve_optimizer(make_strategy(spec, self.strategy_options, self.shared_options()), self.optimizer,
                              self.lr, self.momentum, self.weight_decay)

    def check_vectorize(self) -> None:
        """Refuse `vectorize` for what `vectorized.fit_together` does not train."""
        unsupported = [("strategy", ",".join(s for s in self.strategy if s not in VECTORIZED)),
                       ("model", self.model if self.model != "mlp" else ""), ("backbone", self.backbone or ""),
                       ("head", self.head if self.head != "linear" else ""),
                       ("freeze", self.freeze if self.freeze != "none" else ""),
                       ("scenario", ONLINE if self.scenario == ONLINE else ""),
                       ("checkpoint_every", str(self.checkpoint_every or ""))]
        name, got = next(((n, g) for n, g in unsupported if g), ("", ""))
        if name:
            raise ConfigError(f"`vectorize` trains several seeds as one batched model for {', '.join(VECTORIZED)} "
                              "on the mlp with its linear head, in class-, domain- or task-incremental streams, "
                              f"checkpointed after every task only: leave it out for this run (got {name} {got})",
                              "vectorize")

    def check_online(self) -> None:
        """Refuse the options an online run cannot honour: more than one pass, mid-stream states, and a
        consolidation schedule that no strategy of the run follows."""
        if self.epochs != 1:
            raise ConfigError(f"an online stream is met once: leave `epochs` out (got {self.epochs})", "epochs")
        if self.checkpoint_every:
            raise ConfigError("an online fit is not saved mid-stream (`resume` learns it again): leave "
                              "`checkpoint_every` out", "checkpoint_every")
        timed = [e.name for e in STRATEGIES if getattr(e.factory, "scheduled", False)]
        parts = {name for spec in self.strategy for name in spec.split("+")}
        if self.consolidate_every and not parts & set(timed):
            raise ConfigError(f"`consolidate_every` sets when {', '.join(timed)} consolidate, and the run has none of "
                              "them: leave it out", "consolidate_every")

    def unused_options(self) -> list[str]:
        """The strategies of `strategy_options` that no strategy of the run is or composes."""
        used = {name for spec in self.strategy for name in spec.split("+")}
        return sorted(set(self.strategy_options) - used)

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
        check_arguments(cls, opts, name)
        parts.append(cls(**{k: v for k, v in (shared or {}).items() if k in hyper_parameters(cls)} | opts))
    return parts[0] if len(parts) == 1 else Compose(*parts)


def make_stream(config: RunConfig, seed: int) -> Stream:
    """The run's stream for `seed`. With `validation` > 0 each task's training data loses that fraction
    (stratified, drawn from the seed), which replaces its test split: a run for choosing
    hyper-parameters, whose accuracies never come from the test data."""
    scenario = None if config.scenario == ONLINE else config.scenario
    options = dict(n_tasks=config.n_tasks, seed=seed, class_order=config.class_order,
                   valid_fraction=config.validation, subset=config.subset, encoder=text_encoder(config))
    stream = benchmark(config.benchmark, scenario=scenario, **options)
    if config.scenario == ONLINE and stream.scenario == "task":  # no task id in an online stream
        stream = benchmark(config.benchmark, scenario="class", **options)
    if config.validation:
        stream.tasks = [dataclasses.replace(t, test=cast(Split, t.valid), valid=None) for t in stream.tasks]
    return online(stream, config.blurry, config.drift, seed) if config.scenario == ONLINE else stream



def record(config: RunConfig, spec: str, seed: int, strategy: Strategy, result: Result) -> dict[str, Any]:
    """One (strategy, seed) run as a flat, JSON-ready dictionary; `batch_size` is the global batch (each
    of the `world_size` data-parallel processes trains on its share of it)."""
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
        "world_size": distributed.world_size(), "batch_size": config.batch_size,
        **({"online": result.online} | {k: m[k] for k in ("aaa", "online_forgetting", "stability_gap")}
           if result.online is not None else {}),
    }


def run(config: RunConfig, on_record: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = False, checkpoints: Path | None = None, resume: bool = False,
        callbacks: Sequence[Callback] = ()) -> list[dict[str, Any]]:
    """Fit every (strategy, seed) of `config` in turn; returns one record per fit. With
    `checkpoints`, each fit keeps its latest checkpoint there as `<strategy>-seed<seed>`, its resumable
    states in `<strategy>-seed<seed>.resume/` and, once finished, its record in
    `<strategy>-seed<seed>.record.json`; `run.json` holds the configuration and version.

    `resume=True` continues the run in `checkpoints`, if one was started there: finished fits are
    not redone, an interrupted one continues from its newest intact state (on the CPU, the records'
    accuracy matrices are identical to those of an uninterrupted run). A run of another configuration
    (`checkpoint_every` aside) or of another lifelong version is refused. Without `resume`, what an
    earlier run left in `checkpoints` is deleted. Under torchrun every rank calls this: each fit trains
    data-parallel (`distributed`), rank 0 alone writes, and all read the same files when resuming.
    `callbacks` go to every fit's Trainer (`lifelong tune`
    reports each task's accuracies through one)."""
    config.validate()
    for name in config.unused_options():
        warnings.warn(f"ignoring the options for strategy {name!r} ({', '.join(config.strategy_options[name])}): "
                      f"it is not one of the run's strategies ({', '.join(config.strategy)})", stacklevel=2)
    device = distributed.local_device(resolve_device(config.device))
    distributed.init(device)
    if config.checkpoint_every and checkpoints is None:
        raise ConfigError("`checkpoint_every` saves the states in the run folder: give it one (`out`)",
                          "checkpoint_every")
    together = config.vectorize and config.seeds > 1  # each strategy's seeds trained as one model
    if together and distributed.active():
        raise ConfigError("`vectorize` trains in one process: leave it out under torchrun or `nproc`", "vectorize")
    _preflight(config, device)
    digest = begin_run(checkpoints, config, resume, RunExperiment.command, RunExperiment.neutral) \
        if checkpoints is not None else ""
    records: list[dict[str, Any]] = []
    for spec in config.strategy:
        pending: list[tuple[int, Stream, Strategy, Trainer, Path | None]] = []  # the fits to train together
        first = len(records)
        for seed in range(config.seed, config.seed + config.seeds):
            name = f"{spec.replace('+', '_')}-seed{seed}"
            done = checkpoints / f"{name}.record.json" if checkpoints else None
            if resume and done is not None and done.exists():
                records += read_records(done, digest)
                if on_record is not None:
                    on_record(records[-1])
                continue
            stream = make_stream(config, seed)
            torch.manual_seed(seed)
            model = make_model(config, stream, device)
            strategy = make_strategy(spec, config.strategy_options, config.shared_options())
            trainer = Trainer(model, strategy, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                              optimizer=config.optimizer, momentum=config.momentum,
                              weight_decay=config.weight_decay, seed=seed, device=device,
                              progress=progress, label=f"{spec} seed {seed}",
                              checkpoint=checkpoints / name if checkpoints and not together else None,
                              checkpoint_every=config.checkpoint_every, callbacks=callbacks)
            if together:
                pending.append((seed, stream, strategy, trainer, done))
                continue
            result = (trainer.fit_online(stream, config.eval_every, config.eval_samples, config.consolidate_every)
                      if isinstance(stream, OnlineStream) else trainer.fit(stream, resume=resume))
            records.append(_finish(config, spec, seed, strategy, trainer, result, done, digest, on_record))
        results = fit_together([p[3] for p in pending], [p[1] for p in pending]) if pending else []
        for (seed, _, strategy, trainer, done), result in zip(pending, results):
            records.append(_finish(config, spec, seed, strategy, trainer, result, done, digest, on_record,
                                   len(pending)))
        records[first:] = sorted(records[first:], key=lambda r: r["seed"])  # resumed seeds came first
    return records


def _finish(config: RunConfig, spec: str, seed: int, strategy: Strategy, trainer: Trainer, result: Result,
            done: Path | None, digest: str, on_record: Callable[[dict[str, Any]], None] | None,
            together: int = 0) -> dict[str, Any]:
    """The record of a finished fit, kept at `done` (the run's checkpoints, which it replaces) and passed to
    `on_record`; `together`: the number of seeds trained as one model with it (`vectorize`), 0 if alone."""
    rec = record(config, spec, seed, strategy, result)
    rec |= {"optimizer": trainer.optimizer_name, "lr": trainer.lr} | ({"vectorized": together} if together else {})
    if done is not None and distributed.is_main():
        write_records(done, [rec], digest)
        if trainer.states is not None:
            trainer.states.clear()  # the record replaces them
    if on_record is not None:
        on_record(rec)
    return rec


def text_encoder(config: RunConfig) -> Encoder | None:
    """What turns a text benchmark's token ids into the inputs the run trains on, computed once and cached
    (`data.text.cached_features`): minilm's features with `freeze` all (or backbone), the states entering its
    top N layers with top-N; None otherwise (token ids in). The encoder is built only if the cache misses."""
    if config.model != "minilm" or config.freeze in ("none", "lora"):
        return None
    from ..models.text import MiniLM

    frozen = config.freeze in ("all", "backbone")
    encoder = functools.cache(lambda: MiniLM(0, freeze="all" if frozen else config.freeze))
    if frozen:  # MiniLM's default pooling: the mean of the real tokens' states, L2-normalised
        return Encoder(lambda ids: encoder().encode(ids), {"encoder": encoder_hash(), "pooling": "mean+l2"})
    return Encoder(lambda ids: encoder().encode_below(ids), {"encoder": encoder_hash(), "states": config.freeze})


def make_model(config: RunConfig, stream: Stream, device: torch.device) -> torch.nn.Module:
    """The run's model for `stream` (`model` and `hidden`, or the saved `backbone`) with its `head`. For
    minilm with a frozen encoder, a linear head on its cached features (`text_encoder`); with top-N, the
    encoder whose top N layers train, on the cached states below them."""
    try:
        if config.model == "minilm" and config.freeze in ("all", "backbone"):
            model = with_head(mlp(math.prod(stream.input_shape), stream.n_outputs, ()), config.head)
        elif config.model == "minilm":
            from ..models.text import MiniLM

            model = with_head(MiniLM(stream.n_outputs, freeze=config.freeze), config.head)
        else:
            model = with_head(build(config.model, stream.input_shape, stream.n_outputs, tuple(config.hidden))
                              if config.backbone is None else
                              load_backbone(config.backbone, stream.input_shape, stream.n_outputs, device),
                              config.head)
        as_backbone(model, "run").freeze_backbone(config.freeze in ("backbone", "all"))
    except ValueError as err:
        raise ConfigError(f"model {config.model!r} does not fit {config.benchmark}: {err}") from None
    except (RuntimeError, MemoryError) as err:
        raise too_large(config, err) from None
    return model


def too_large(config: RunConfig, err: RuntimeError | MemoryError) -> Exception:
    """The one-line error for a model that does not fit in memory, the host's ("... you tried to allocate N
    bytes") or the GPU's ("CUDA out of memory. Tried to allocate 2.00 GiB"); `err` itself if it is another."""
    text = str(err)
    if not isinstance(err, MemoryError) and "allocate" not in text:
        return err
    asked = re.search(r"allocate ([\d.]+) ?(bytes|KiB|MiB|GiB)", text)
    size = float(asked[1]) * {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[asked[2]] if asked else None
    where = "GPU memory" if isinstance(err, torch.OutOfMemoryError) and "CUDA" in text else "memory"
    return ConfigError(f"model {config.model!r} with `hidden` {config.hidden} does not fit in {where}"
                       + (f" (it asked for {size / 2**30:.1f} GiB)" if size is not None else "")
                       + ": choose smaller layers", "hidden")


def _preflight(config: RunConfig, device: torch.device) -> None:
    """Load the data and check what depends on it before an earlier run's files are touched: bad data
    files, a model that does not fit the data, a strategy on a scenario it does not support, and a memory
    (`buffer_size` given in the options) larger than the whole stream."""
    stream = make_stream(config, config.seed)
    for spec in config.strategy:  # each strategy meets a model and trainer as its fits will (`Trainer.start`)
        strategy = make_strategy(spec, config.strategy_options, config.shared_options())
        check_scenario(strategy, stream.scenario, config.consolidate_every > 0)
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # draws stay; the fits warn
            warnings.simplefilter("ignore")
            model = make_model(config, stream, device)
            try:  # the model goes to the device here: a GPU too small for it
                trainer = Trainer(model, strategy, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                                  optimizer=config.optimizer, momentum=config.momentum,
                                  weight_decay=config.weight_decay, device=device)
            except (RuntimeError, MemoryError) as err:
                raise too_large(config, err) from None
            strategy.attach(trainer, stream)
    total = sum(len(t.train) for t in stream)
    for name, options in [("", {"buffer_size": config.buffer_size}), *config.strategy_options.items()]:
        size = options.get("buffer_size")
        if isinstance(size, int) and size > total:
            raise ConfigError(f"`buffer_size` {size} is larger than the {total} training samples of the whole "
                              "stream (the memory could never fill): lower it, or use the cumulative strategy",
                              f"{name}.buffer_size" if name else "buffer_size")



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
        kind = (f"online, task-free (from {first['stream']['info']['online']['base']}-incremental), batch "
                f"{c.batch_size}" if "online" in first else f"{first['scenario']}-incremental")
        return (f"{c.benchmark}: {kind}, {first['stream']['n_tasks']} tasks, model {c.model}, "
                + ("one pass" if c.scenario == ONLINE else f"{c.epochs} epoch(s)")
                + f", {optimizers}, seeds {c.seed}..{c.seed + c.seeds - 1}; accuracies in %"
                + (f" on {c.validation:g} of the training data held out (not the test split)" if c.validation else ""))

    def table(self, records: list[Record]) -> tuple[list[str], list[list[str]]]:
        return header(records), summary_rows(records)

    def write(self, out: Path, records: list[Record], plots: bool = True, tensorboard: bool = False) -> None:
        write_run_dir(out, self.config, records, tensorboard=tensorboard, plots=plots)


def write_run_dir(out: Path, config: RunConfig, records: list[dict[str, Any]], tensorboard: bool = False,
                  plots: bool = True) -> None:
    """config.json, plots, CSV logs (and TensorBoard), then results.json last (its presence marks the
    run as finished). `lifelong report` re-plots any run folder, so suites skip the per-run plots. Under
    data-parallel training, on rank 0 only."""
    if not distributed.is_main():
        return
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_strategy.setdefault(rec["strategy"], []).append(rec)
    for spec, recs in by_strategy.items() if plots else ():
        mean = torch.tensor([r["matrix"] for r in recs], dtype=torch.float64).mean(0).tolist()
        label = f"{spec} ({config.benchmark}, {recs[0]['scenario']}, {len(recs)} seed{'s' * (len(recs) > 1)})"
        safe = spec.replace("+", "_")
        save_png(plot_matrix(mean, label), out / f"matrix-{safe}.png")
        save_png(plot_curves(mean, label), out / f"curves-{safe}.png")
        if all(r.get("online") for r in recs):
            save_png(plot_online([r["online"] for r in recs], label), out / f"online-{safe}.png")
    write_csv(out, records)
    if tensorboard:
        write_tensorboard(out, records)
    RunExperiment(config).write_results(out, records)


