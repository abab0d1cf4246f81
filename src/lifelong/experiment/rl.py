"""A continual reinforcement-learning run (`lifelong rl`): strategies x seeds through a sequence of tasks,
measured as Continual World measures them, as records, a table and a results folder.

Per seed: with `reference`, each task learnt alone from scratch (the forward-transfer reference; one record
per task); then per strategy, the whole sequence (one record: every task's return at each evaluation point,
the normalised scores, average performance and forgetting). Forward transfer needs the seed's references
and is added to the strategy records when the run is written (`add_transfer`). Needs the extra `rl`
(torchrl, gymnasium): this module imports them only when a run starts, so `lifelong --help` and `list`
work without them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import distributed
from ..configs import check_types, option, whole
from ..errors import ConfigError
from ..extras import need
from ..metrics import mean_std
from ..plots import new_figure, save_png
from .base import Experiment, Record, Unit

SCHEMA = "lifelong.rl/1"
RECORD_KEYS = ("kind", "strategy", "sequence", "algo", "seed", "average_performance", "forgetting",
               "env_steps", "train_seconds")
SEQUENCE_NAMES = ("cartpole-physics", "pendulum-gravity", "classic-discrete")  # rl.envs.SEQUENCES (tested)


@dataclass
class RLConfig:
    """Everything `lifelong rl` needs; field names are its options and config keys."""

    sequence: str = option("cartpole-physics", f"task sequence: {', '.join(SEQUENCE_NAMES)} (docs/rl.md)")
    algo: str | None = option(None, "ppo (discrete actions) or sac (continuous) (default: the sequence's)")
    strategy: list[str] = option(["naive"], "comma-separated or repeated: naive, l2, ewc, online-ewc, mas, replay "
                                 "(sac), agem (sac), packnet, multihead; a+b composes, e.g. ewc+multihead")
    strategy_options: dict[str, dict[str, Any]] = option({}, "options per strategy, e.g. {ewc: {lam: 1000}}",
                                                         cli=False)
    steps_per_task: int = option(100_000, "environment steps per task (PPO rounds up to whole rollouts of 256)")
    tasks: int | None = option(None, "learn only the first N tasks of the sequence")
    pad: bool = option(False, "zero-pad observations to the largest task's (tasks of different observation sizes)")
    evals_per_task: int = option(10, "evaluations of every task during each task (and one at the start)")
    episodes: int = option(10, "evaluation episodes per task and evaluation")
    reference: bool = option(True, "also learn each task alone from scratch: the reference of forward transfer")
    seed: int = option(0, "first random seed (agents and environments)")
    seeds: int = option(1, "number of seeds: seed, seed+1, ...")
    device: str = option("cpu", "cpu (small networks: the GPU would only wait for the environments)")

    def algorithm(self, discrete: bool) -> str:
        return self.algo or ("ppo" if discrete else "sac")

    def validate(self) -> None:
        check_types(self)
        if self.sequence not in SEQUENCE_NAMES:
            raise ConfigError(f"unknown sequence {self.sequence!r}: choose one of {', '.join(SEQUENCE_NAMES)}",
                              "sequence")
        if self.algo is not None and self.algo not in ("ppo", "sac"):
            raise ConfigError(f"`algo` must be ppo or sac, got {self.algo!r}", "algo")
        if not self.strategy:
            raise ConfigError("no strategy given: set `strategy` to naive,ewc,...", "strategy")
        whole(self, "steps_per_task", "evals_per_task", "episodes", "seeds", "tasks")
        if self.evals_per_task > self.steps_per_task:
            raise ConfigError(f"`evals_per_task` ({self.evals_per_task}) cannot exceed `steps_per_task` "
                              f"({self.steps_per_task})", "evals_per_task")
        if self.device != "cpu":
            raise ConfigError(f"`device` {self.device!r}: continual RL runs on cpu only for now", "device")
        if distributed.launched():
            raise ConfigError("continual RL runs in one process: drop `nproc` (or torchrun)", "nproc")
        rl = _rl()
        seq = rl.sequence(self.sequence, self.pad, self.tasks)
        algo = self.algorithm(seq.discrete)
        if (algo == "ppo") != seq.discrete:
            raise ConfigError(f"{self.sequence} has {'discrete' if seq.discrete else 'continuous'} actions: use "
                              f"`algo` {'ppo' if seq.discrete else 'sac'}", "algo")
        for spec in self.strategy:
            rl.make_strategies(spec, algo, self.strategy_options)


def _rl() -> Any:
    """`lifelong.rl`, or MissingExtra naming the extra `rl` if torchrl or gymnasium is not installed."""
    need("gymnasium", "rl")
    need("torchrl", "rl")
    from .. import rl

    return rl


class RLExperiment(Experiment):
    """`lifelong rl`: per seed, the reference runs (one unit, a record per task), then one unit per strategy."""

    command = "rl"
    help = "continual reinforcement learning: PPO/SAC through a sequence of environments (needs the extra rl)"
    config_class = RLConfig
    schema = SCHEMA
    record_keys = RECORD_KEYS

    def units(self, out: Path | None, progress: bool) -> Iterator[Unit]:
        c = self.config
        for seed in range(c.seed, c.seed + c.seeds):
            if c.reference:
                yield f"reference-seed{seed}", functools.partial(self._references, seed, out, progress)
            for spec in c.strategy:
                yield f"{spec}-seed{seed}", functools.partial(self._strategy, spec, seed, out, progress)

    def _run(self, spec: str, seed: int, out: Path | None, unit: str, progress: bool,
             tasks: list[int] | None = None) -> tuple[Any, dict[str, Any]]:
        """One run through the sequence (or `tasks` of it), saving its state at each task's end under
        `out`/checkpoints/`unit`.resume and continuing from there if a state is found (`--resume`)."""
        rl = _rl()
        from ..checkpoint import States
        from ..rl.metrics import average_performance, forgetting_per_task

        c = self.config
        seq = rl.sequence(c.sequence, c.pad, c.tasks)
        say = (lambda line: print(f"{unit}: {line}", flush=True)) if progress else None
        states = States(out / "checkpoints" / f"{unit}.resume", unit) if out is not None else None
        curves = rl.run_sequence(seq, c.algorithm(seq.discrete), spec, c.steps_per_task, seed, c.evals_per_task,
                                 c.episodes, c.strategy_options, tasks=tasks, progress=say, states=states)
        if states is not None:
            states.clear()
        if tasks is None:
            forgetting = forgetting_per_task(curves["scores"], curves["steps"], c.steps_per_task)
            curves |= {"forgetting_per_task": forgetting, "forgetting": float(np.mean(forgetting)),
                       "average_performance": average_performance(curves["scores"], curves["steps"],
                                                                  c.steps_per_task)}
        return seq, curves

    def _strategy(self, spec: str, seed: int, out: Path | None, progress: bool) -> Iterator[Record]:
        seq, curves = self._run(spec, seed, out, f"{spec}-seed{seed}", progress)
        yield self._record("sequence", spec, seed, seq, curves)

    def _references(self, seed: int, out: Path | None, progress: bool) -> Iterator[Record]:
        c = self.config
        for task in range(len(_rl().sequence(c.sequence, c.pad, c.tasks).tasks)):
            seq, curves = self._run("naive", seed, out, f"reference-seed{seed}-task{task}", progress, tasks=[task])
            yield self._record("reference", "naive", seed, seq, curves) | {"task": task}

    def _record(self, kind: str, spec: str, seed: int, seq: Any, curves: dict[str, Any]) -> Record:
        c = self.config
        seconds = curves["train_seconds"]
        return {"kind": kind, "strategy": spec, "sequence": c.sequence, "algo": c.algorithm(seq.discrete),
                "seed": seed, "task_names": [t.name for t in seq.tasks], "steps_per_task": c.steps_per_task,
                "steps_per_second": curves["env_steps"] / seconds if seconds else None,
                "average_performance": curves.get("average_performance"), "forgetting": curves.get("forgetting"),
                **curves}

    def title(self, records: list[Record]) -> str:
        c = self.config
        return (f"{c.sequence}: {c.steps_per_task} steps per task, {c.episodes} evaluation episodes, seeds "
                f"{c.seed}..{c.seed + c.seeds - 1}; scores normalised to [0, 1] (Continual World metrics)")

    def table(self, records: list[Record]) -> tuple[list[str], list[list[str]]]:
        return summary(add_transfer(records))

    def write(self, out: Path, records: list[Record], plots: bool = True) -> None:
        super().write(out, add_transfer(records), plots)

    def plots(self, out: Path, records: list[Record]) -> None:
        plot_returns(records, out / "returns.png", self.title(records))

    def headline(self, records: list[Record]) -> str:
        first = next(r for r in records if r["kind"] == "sequence")
        return f"{first['strategy']} P {first['average_performance']:.3f} F {first['forgetting']:.3f}"


def add_transfer(records: list[Record]) -> list[Record]:
    """The records with "forward_transfer" (and per task) on each sequence record whose seed has reference
    records for every task (None otherwise)."""
    from ..rl.metrics import forward_transfer_per_task

    refs: dict[int, dict[int, Record]] = {}
    for r in records:
        if r["kind"] == "reference":
            refs.setdefault(r["seed"], {})[r["task"]] = r
    out = []
    for r in records:
        if r["kind"] == "sequence":
            mine = refs.get(r["seed"], {})
            per_task = None
            if len(mine) == len(r["task_names"]):
                references = [([row[0] for row in mine[i]["scores"]], mine[i]["steps"]) for i in range(len(mine))]
                per_task = forward_transfer_per_task(r["scores"], r["steps"], r["steps_per_task"], references)
            defined = [v for v in per_task or [] if v is not None]
            r = r | {"forward_transfer_per_task": per_task,
                     "forward_transfer": float(np.mean(defined)) if defined else None}
        out.append(r)
    return out


def summary(records: list[Record]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per strategy, mean ± std over seeds of P, F, FT, steps/s and training time."""
    groups: dict[str, list[Record]] = {}
    for r in records:
        if r["kind"] == "sequence":
            groups.setdefault(r["strategy"], []).append(r)

    def cell(values: list[Any], digits: int = 3) -> str:
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        mean, std = mean_std(values)
        return f"{mean:.{digits}f} ± {std:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"

    rows = [[name, str(len(recs)), cell([r["average_performance"] for r in recs]),
             cell([r["forgetting"] for r in recs]), cell([r.get("forward_transfer") for r in recs]),
             cell([r["steps_per_second"] for r in recs], 0), cell([r["train_seconds"] for r in recs], 1)]
            for name, recs in groups.items()]
    return ["Strategy", "Seeds", "Avg perf", "Forgetting", "Fwd transfer", "Env steps/s", "Train (s)"], rows


def plot_returns(records: list[Record], path: Path, title: str) -> Path:
    """Every task's normalised return over the whole sequence (mean over seeds), one panel per strategy,
    with the task boundaries marked."""
    groups: dict[str, list[Record]] = {}
    for r in records:
        if r["kind"] == "sequence":
            groups.setdefault(r["strategy"], []).append(r)
    fig, _ = new_figure((4.2 * max(len(groups), 1), 3.4))
    fig.clear()
    axes = fig.subplots(1, max(len(groups), 1), squeeze=False)[0]
    for ax, (name, recs) in zip(axes, groups.items()):
        steps = recs[0]["steps"]
        scores = np.mean([r["scores"] for r in recs], axis=0)
        for j, task in enumerate(recs[0]["task_names"]):
            ax.plot(steps, scores[:, j], label=task)
        for i in range(1, len(recs[0]["task_names"])):
            ax.axvline(i * recs[0]["steps_per_task"], color="grey", lw=0.5, ls="--")
        ax.set_title(f"{name} ({len(recs)} seed{'s' * (len(recs) > 1)})", fontsize=9)
        ax.set_xlabel("environment steps")
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("normalised return")
    axes[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)
