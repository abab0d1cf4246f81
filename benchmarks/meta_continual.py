"""Meta-learning for continual learning (issue 18): La-MAML, MER and OML against ER, one memory.

Protocol: Split Fashion-MNIST (5 tasks of 2 classes), MLP 784-100-100 (the La-MAML and MER papers'
two hidden layers of 100), batch 128, 1 epoch per task, memory 200 samples (reservoir) and 128
replayed samples per step for every method; ER (`replay`) and OML step with Adam lr 1e-3, La-MAML and
MER with their own updates.
  select : seed 0, class-incremental, trained on 90% of each task's training split and scored on the
           other 10% (validation, never the test split): the grid that chose MER's `lr`/`beta` and
           La-MAML's `average_meta_loss`.
  table  : class- and task-incremental, seeds 0..N-1, test split: ACC, BWT (%) and training time
           relative to ER, each seed fitting every method in turn in one process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/meta_continual.py select
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/meta_continual.py table [--seeds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
from typing import Any

import torch

import lifelong as ll
from lifelong.strategies import STRATEGIES

MEMORY = {"buffer_size": 200, "replay_batch_size": 128}
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "replay (ER)": ("replay", MEMORY),
    "la-maml, old defaults": ("la-maml", {"replay_batch_size": 10, "clip_norm": 0.0}),  # before issue 18
    "la-maml": ("la-maml", {}),
    "mer": ("mer", {}),
    "oml": ("oml", {}),
}
GRID: dict[str, tuple[str, dict[str, Any]]] = {
    **{f"mer lr={lr} beta={beta}": ("mer", {"lr": lr, "beta": beta}) for lr in (0.03, 0.1) for beta in (0.1, 0.3, 1.0)},
    **{f"la-maml average_meta_loss={a}": ("la-maml", {"average_meta_loss": a}) for a in (False, True)},
}


def stream(scenario: str, seed: int, validation: bool) -> ll.data.Stream:
    """Split Fashion-MNIST; with `validation`, 10% of each task's training split is held out and used as
    its test split."""
    s = ll.data.benchmark("split-fmnist", scenario=scenario, seed=seed, valid_fraction=0.1 if validation else 0.0)
    if validation:
        s = dataclasses.replace(s, tasks=[dataclasses.replace(t, test=t.valid) for t in s])
    return s


def fit(s: ll.data.Stream, name: str, options: dict[str, Any], seed: int) -> ll.Result:
    torch.manual_seed(seed)
    model = ll.models.build("mlp", s.input_shape, s.n_outputs, (100, 100))
    return ll.Trainer(model, STRATEGIES.get(name).factory(**options), seed=seed).fit(s)


def select() -> None:
    s = stream("class", 0, validation=True)
    print("split-fmnist class-IL, seed 0, validation split (10% of each task's training data)")
    for label, (name, options) in GRID.items():
        m = fit(s, name, options, 0).metrics
        print(f"{label:34s} ACC {100 * m['acc']:6.2f}  BWT {100 * m['bwt']:7.2f}", flush=True)


def table(seeds: int) -> None:
    for scenario in ("class", "task"):
        rows: dict[str, list[tuple[float, float, float]]] = {label: [] for label in METHODS}
        for seed in range(seeds):
            s = stream(scenario, seed, validation=False)
            for label, (name, options) in METHODS.items():
                try:
                    r = fit(s, name, options, seed)
                    rows[label].append((100 * r.metrics["acc"], 100 * r.metrics["bwt"], r.train_seconds))
                except ll.TrainingError:  # the loss became non-finite: reported as nan
                    rows[label].append((math.nan, math.nan, math.nan))
                print(f"# {scenario} seed {seed} {label}: {rows[label][-1]}", flush=True)
        print(f"\n{scenario}-incremental Split Fashion-MNIST, seeds 0-{seeds - 1}, torch {torch.__version__}, "
              f"threads {torch.get_num_threads()}\n")
        print("| method | ACC % | BWT % | train time x ER |\n| --- | --- | --- | --- |")
        er = rows["replay (ER)"]
        for label, runs in rows.items():
            kept = [(r, e) for r, e in zip(runs, er) if not math.isnan(r[0])]  # diverged seeds are counted apart
            diverged = f" ({len(runs) - len(kept)} of {len(runs)} seeds diverged)" if len(kept) < len(runs) else ""
            if not kept:
                print(f"| {label}{diverged} | - | - | - |", flush=True)
                continue
            acc, bwt = ([r[i] for r, _ in kept] for i in (0, 1))
            ratio = statistics.median(r[2] / e[2] for r, e in kept)
            spread = (lambda v: f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else "")  # noqa: E731
            print(f"| {label}{diverged} | {statistics.mean(acc):.2f}{spread(acc)} | "
                  f"{statistics.mean(bwt):.2f}{spread(bwt)} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["select", "table"])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    select() if args.mode == "select" else table(args.seeds)
