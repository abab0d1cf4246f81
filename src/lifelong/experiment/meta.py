"""A meta-learning run (`lifelong meta`): methods x shots x seeds, each meta-trained then evaluated on
held-out tasks, as records, a table and a results folder.

Per (method, shots, seed): the benchmark's TaskSet with that seed, a model initialised from the seed,
`iterations` meta-training steps, then the mean query accuracy (or MSE) over `eval_tasks` meta-test
tasks after each number of adaptation `steps`, with its 95% confidence interval (and, for
classification, the mean per class subset of the tasks). The meta-test episodes are drawn once per
(shots, seed) and reused for every method and step count, so their comparisons are paired. The
`baseline` and `finetune` baselines always run too. Model selection: every `valid_every` iterations
the meta-parameters are scored on a fixed set of `valid_tasks` validation episodes (meta-validation
classes, or held-out samples of the meta-train classes when there are none) and those of the lowest
validation loss are kept (`MetaLearner.meta_train`); never on meta-test tasks.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..configs import check_types, option, whole
from ..data.episodes import Episodes
from ..errors import ConfigError
from ..meta import META_LEARNERS
from ..meta.base import MetaLearner, evaluate, meta_test_episodes
from ..meta.tasks import META_BENCHMARKS, meta_benchmark
from ..models import MODELS, build
from ..plots import new_figure, save_png
from ..training import resolve_device
from .base import Experiment, Record, Unit

SCHEMA = "lifelong.meta/1"
RECORD_KEYS = ("method", "benchmark", "ways", "shots", "seed", "steps", "ci95", "train_seconds", "model",
               "kept")  # + "acc" or "mse"; kept: the meta-training iteration model selection kept
BASELINES = ("baseline", "finetune")  # run beside every method list
LEARNER_OPTIONS = ("inner_lr", "inner_steps", "meta_lr", "meta_batch")


@dataclass
class MetaConfig:
    """Everything `lifelong meta` needs; field names are its options. None: the method's or benchmark's default."""

    benchmark: str = option("sinusoid", ", ".join(META_BENCHMARKS.names()))
    method: list[str] = option(["maml"], f"comma-separated or repeated, from {', '.join(META_LEARNERS.names())} "
                               "(default maml; baseline and finetune always run)")
    ways: int = option(5, "classes per episode")
    shots: list[int] = option([10], "support samples per class (or per task), e.g. 1,5")
    queries: int | None = option(None, "query samples per class (default 15; sinusoid: 10 per task)")
    classes: str | None = option(None, "meta-train/valid/test classes, e.g. 0-3/4-5/6-9 or 0-4//5-9 (default "
                                 "40/20/40%, or halves when the test part has no more classes than --ways)")
    model: str | None = option(None, "model name (default conv4 for fmnist/digits, else mlp); see `lifelong list`")
    hidden: list[int] | None = option(None, "hidden sizes of the mlp (default 40,40 for sinusoid, else 256,128)")
    iterations: int | None = option(None, "meta-training steps (default 1000 for sinusoid, else 200: Conv-4 on a CPU)")
    rotate: bool = option(False, "add meta-train classes turned by 90/180/270 degrees as new classes")
    valid_every: int = option(100, "keep the meta-parameters of the lowest loss on the validation episodes, scored "
                              "every N iterations; 0: keep the last")
    valid_tasks: int = option(100, "validation episodes")
    inner_lr: float | None = option(None, "inner-loop / fine-tuning learning rate (default: the method's)")
    inner_steps: int | None = option(None, "inner-loop steps while meta-training (default: the method's)")
    meta_lr: float | None = option(None, "outer learning rate (default: the method's)")
    meta_batch: int | None = option(None, "tasks per outer step (default: the method's)")
    steps: list[int] = option([10], "adaptation steps at meta-test, e.g. 1,10")
    eval_tasks: int = option(600, "meta-test tasks")
    seed: int = option(0, "first random seed")
    seeds: int = option(1, "number of seeds: seed, seed+1, ...")
    device: str = option("cpu", "cpu or cuda")

    def methods(self) -> list[str]:
        """The methods to run: those asked for, then the `baseline` and `finetune` baselines not among them."""
        return [*self.method, *(b for b in BASELINES if b not in self.method)]

    def __post_init__(self) -> None:
        if self.iterations is None:
            self.iterations = 1000 if self.benchmark == "sinusoid" else 200

    def model_name(self) -> str:
        """`model`, or the benchmark's default: Conv-4 for images (the few-shot literature's), else the mlp."""
        return self.model or ("conv4" if self.benchmark in ("fmnist-fewshot", "digits-fewshot") else "mlp")

    def validate(self) -> None:
        check_types(self)
        META_BENCHMARKS.get(self.benchmark)
        MODELS.get(self.model_name())
        for name in self.methods():
            if META_LEARNERS.get(name).factory.classification_only and self.benchmark == "sinusoid":
                raise ConfigError(f"{name} learns classification tasks only: drop it from `method` for sinusoid",
                                  "method")
        if not self.method:
            raise ConfigError("no method given: set `method` to maml,reptile,... (see `lifelong list`)", "method")
        for what, least in (("shots", 1), ("steps", 0)):
            values = getattr(self, what)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < least for v in values):
                raise ConfigError(f"`{what}` takes whole numbers >= {least}, e.g. 1,5; got {values!r}", what)
        whole(self, "ways", "iterations", "eval_tasks", "seeds", "queries", "valid_tasks")
        if isinstance(self.valid_every, bool) or not isinstance(self.valid_every, int) or self.valid_every < 0:
            raise ConfigError(f"`valid_every` must be a whole number >= 0 (0: no model selection), "
                              f"got {self.valid_every!r}", "valid_every")
        if self.hidden is not None and any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ConfigError(f"`hidden` takes positive layer sizes like 40,40, got {self.hidden!r}", "hidden")
        resolve_device(self.device)


def make_learner(name: str, config: MetaConfig, shots: int, seed: int) -> MetaLearner:
    """The TaskSet, model and meta-learner of one (method, shots, seed), seeded."""
    regression = config.benchmark == "sinusoid"
    tasks = meta_benchmark(config.benchmark, config.ways, shots, config.queries or (10 if regression else 15),
                           seed, config.classes, 4 if config.rotate else 1)
    hidden = config.hidden or ([40, 40] if regression else [256, 128])
    torch.manual_seed(seed)
    try:
        model = build(config.model_name(), tasks.input_shape, tasks.n_outputs, tuple(hidden)).to(config.device)
    except ValueError as err:
        raise ConfigError(f"model {config.model_name()!r} does not fit {config.benchmark}: {err}") from None
    cls = META_LEARNERS.get(name).factory
    accepted = inspect.signature(cls).parameters
    options = dict(cls.classification_defaults) if tasks.kind == "classification" else {}
    options |= {k: getattr(config, k) for k in LEARNER_OPTIONS if getattr(config, k) is not None and k in accepted}
    return cls(model, tasks, **options)


def run_meta(config: MetaConfig, on_record: Callable[[dict[str, Any]], None] | None = None,
             progress: bool = False) -> list[dict[str, Any]]:
    """Meta-train and evaluate every (method, shots, seed) of `config`; one record per number of steps."""
    return MetaExperiment(config).execute(on_record=on_record, progress=progress)


class MetaExperiment(Experiment):
    """`lifelong meta`: one unit of records per (method, shots, seed), one record per number of steps."""

    command = "meta"
    help = "meta-learning: meta-train (MAML, Reptile, ProtoNets, ...), evaluate on held-out tasks"
    config_class = MetaConfig
    schema = SCHEMA
    record_keys = RECORD_KEYS

    def json_record(self, rec: Record) -> Record:
        return {k: rec[k] for k in (*self.record_keys, rec["metric"])}

    def units(self, out: Path | None, progress: bool) -> Iterator[Unit]:
        tests: dict[tuple[int, int], tuple[Episodes, Tensor | None]] = {}  # (shots, seed) -> meta-test episodes
        c = self.config
        for name in c.methods():
            for shots in c.shots:
                for seed in range(c.seed, c.seed + c.seeds):
                    yield (f"{name}-{shots}shot-seed{seed}",
                           functools.partial(self._records, name, shots, seed, tests, progress))

    def _records(self, name: str, shots: int, seed: int, tests: dict[tuple[int, int], tuple[Episodes, Tensor | None]],
                 progress: bool) -> Iterator[Record]:
        config = self.config
        learner = make_learner(name, config, shots, seed)
        if (shots, seed) not in tests:  # drawn from the seed's TaskSet before any meta-training: the same for all
            tests[shots, seed] = meta_test_episodes(learner.tasks, config.eval_tasks)
        t0 = time.perf_counter()
        valid = learner.tasks.valid
        losses = learner.meta_train(
            config.iterations, progress, f"{name} {shots}-shot seed {seed}",
            valid.sample(config.valid_tasks) if config.valid_every and valid is not None else None,
            config.valid_every, max(config.steps))
        train_seconds = time.perf_counter() - t0
        for steps in config.steps if name != "protonet" else [0]:
            t1 = time.perf_counter()
            episodes, classes = tests[shots, seed]
            result = evaluate(learner, steps, episodes=episodes, classes=classes)
            yield record(config, learner, shots, seed, steps, result, train_seconds, time.perf_counter() - t1, losses)

    def title(self, records: list[Record]) -> str:
        c = self.config
        return (f"{c.benchmark}: {c.iterations} meta-training iterations, mean over {c.eval_tasks} meta-test tasks "
                f"per seed, seeds {c.seed}..{c.seed + c.seeds - 1}")

    def table(self, records: list[Record]) -> tuple[list[str], list[list[str]]]:
        return summary(records)

    def plots(self, out: Path, records: list[Record]) -> None:
        plot(records, out, f"{self.config.benchmark}, {self.config.iterations} meta-training iterations")


def record(config: MetaConfig, learner: MetaLearner, shots: int, seed: int, steps: int, result: dict[str, Any],
           train_seconds: float, eval_seconds: float, losses: list[float]) -> dict[str, Any]:
    metric = "mse" if learner.tasks.kind == "regression" else "acc"
    every = max(len(losses) // 200, 1)  # the meta-training curve, at most ~200 points
    return {
        "method": learner.name, "benchmark": config.benchmark,
        "ways": learner.tasks.n_outputs if metric == "acc" else None, "shots": shots, "seed": seed, "steps": steps,
        "metric": metric, metric: result["mean"], "ci95": result["ci95"],
        "std": result["std"], "tasks": result["tasks"], "by_classes": result.get("by_classes"),
        "train_seconds": train_seconds, "eval_seconds": eval_seconds,
        "iterations": len(losses), "options": learner.options(), "task_info": learner.tasks.info,
        "model": config.model_name(), "selection": learner.selection,
        "kept": learner.selection["kept"] if learner.selection else None,
        "losses": [sum(losses[i:i + every]) / len(losses[i:i + every]) for i in range(0, len(losses), every)],
    }


def pooled(records: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean and 95% CI over all the meta-test tasks of several seeds' records (equal task counts)."""
    means = [r[r["metric"]] for r in records]
    mean = sum(means) / len(means)
    n = sum(r["tasks"] for r in records)
    var = sum((r["tasks"] - 1) * r["std"] ** 2 + r["tasks"] * (r[r["metric"]] - mean) ** 2 for r in records)
    var /= max(n - 1, 1)
    return mean, 1.96 * math.sqrt(var / n)


def by_classes(records: list[dict[str, Any]]) -> dict[str, float]:
    """The mean accuracy per meta-test class subset, over the records (seeds) that met it."""
    by: dict[str, list[float]] = {}
    for r in records:
        for subset, acc in (r.get("by_classes") or {}).items():
            by.setdefault(subset, []).append(acc)
    return {k: sum(v) / len(v) for k, v in by.items()}


def summary(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per (method, shots, steps), seeds pooled; accuracies in %. With class
    subsets (classification), a last column: how many distinct subsets the tasks had, and the lowest
    and highest of their mean accuracies."""
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["method"], r["shots"], r["steps"]), []).append(r)
    metric = records[0]["metric"]
    scale, title = (100, "Acc % (95% CI)") if metric == "acc" else (1, "MSE (95% CI)")
    rows = []
    for (method, shots, steps), recs in groups.items():
        mean, ci = pooled(recs)
        seconds = sum(r["train_seconds"] for r in recs) / len(recs)
        dec = 2 if metric == "acc" else 3
        rows.append([method, str(shots), str(steps), str(len(recs)), f"{mean * scale:.{dec}f} ± {ci * scale:.{dec}f}",
                     f"{seconds:.1f}"])
        if subsets := by_classes(recs):
            rows[-1].append(f"{len(subsets)}: {min(subsets.values()) * 100:.1f}-{max(subsets.values()) * 100:.1f}")
    header = ["Method", "Shots", "Steps", "Seeds", title, "Meta-train (s)"]
    return header + (["Class subsets: n, min-max %"] if len(rows[0]) > len(header) else []), rows


def plot(records: list[dict[str, Any]], out: Path, title: str) -> list[Path]:
    """results.png (the metric per method, a bar per (shots, steps), 95% CI whiskers) and losses.png
    (the meta-training loss curve of each method's first seed)."""
    by: dict[tuple[int, int], dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        by.setdefault((r["shots"], r["steps"]), {}).setdefault(r["method"], []).append(r)
    methods = list(dict.fromkeys(r["method"] for r in records))
    fig, ax = new_figure((1.5 + 1.2 * len(methods), 3.4))
    width = 0.8 / len(by)
    for g, ((shots, steps), group) in enumerate(sorted(by.items())):
        xs = [i + g * width for i, m in enumerate(methods) if m in group]
        mean_ci = [pooled(group[m]) for m in methods if m in group]
        ax.bar(xs, [v[0] for v in mean_ci], width, yerr=[v[1] for v in mean_ci], capsize=3,
               label=f"{shots}-shot, {steps} steps")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(methods))], methods)
    ax.set_ylabel(summary(records)[0][4])
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, out / "results.png")
    fig, ax = new_figure((5, 3.2))
    for m in methods:
        first = next(r for r in records if r["method"] == m)
        if first["losses"]:
            n = len(first["losses"])
            ax.plot([i * first["iterations"] / n for i in range(n)], first["losses"], label=m)
    ax.set_xlabel("meta-training iteration")
    ax.set_ylabel("meta-training loss")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, out / "losses.png")
    return [out / "results.png", out / "losses.png"]


def write_meta_dir(out: Path, config: MetaConfig, records: list[dict[str, Any]]) -> None:
    """results.png, losses.png, config.json, then results.json (schema `lifelong.meta/1`), written last."""
    MetaExperiment(config).write(out, records)
