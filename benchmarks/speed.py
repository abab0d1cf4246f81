"""Time of each strategy over naive on the standard protocol (issue 21), end to end as the user waits.

Class-incremental Split Fashion-MNIST, MLP 784-400-400-10, SGD lr 0.01 momentum 0.9, batch 128, 1 epoch,
classes (0,1)..(8,9): each strategy's `train_seconds` as `lifelong run --json` records it (training
plus each strategy's end-of-task work: the Fisher, the buffer update, herding), run in one process in
pairs with naive (naive, S, naive, S', ...) `--repeats` times; a strategy's ratio is its time over the
mean of the naive runs on either side of it, so the machine's drift cancels. Medians and the range.

    .venv/bin/python benchmarks/speed.py [--repeats 3] [--strategies ewc,online-ewc,...] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import torch

from lifelong.experiment import RunConfig, run

PROTOCOL: dict[str, Any] = {"benchmark": "split-fmnist", "scenario": "class", "optimizer": "sgd", "lr": 0.01,
                            "momentum": 0.9, "batch_size": 128, "epochs": 1, "hidden": [400, 400],
                            "class_order": list(range(10))}
SETTINGS: dict[str, dict[str, Any]] = {  # the issue's; the others take the library's defaults
    "ewc": {"strategy_options": {"ewc": {"lam": 1000.0}}}, "replay": {"buffer_size": 500},
    "agem": {"buffer_size": 1280}, "gem": {"buffer_size": 1280},
}
DEFAULT = "ewc,online-ewc,si,mas,lwf,replay,agem,der,derpp,er-ace,icarl,gem"


def seconds(strategy: str, seed: int) -> float:
    config = RunConfig(strategy=[strategy], seeds=1, seed=seed, **PROTOCOL | SETTINGS.get(strategy, {}))
    (record,) = run(config)
    return float(record["train_seconds"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--strategies", default=DEFAULT)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = args.strategies.split(",")
    ratios: dict[str, list[float]] = {n: [] for n in names}
    naive_s: list[float] = []
    for r in range(args.repeats):
        before = seconds("naive", r)
        naive_s.append(before)
        for name in names:
            mine = seconds(name, r)
            after = seconds("naive", r)
            naive_s.append(after)
            ratios[name].append(mine / ((before + after) / 2))
            before = after
            print(f"repeat {r}: {name} {mine:.2f} s, x naive {ratios[name][-1]:.2f}", flush=True)
    print(f"\nnaive: median {statistics.median(naive_s):.2f} s ({len(naive_s)} runs, {args.threads} thread(s))")
    print("| strategy | x naive (median) | range |\n| --- | --- | --- |")
    for name, values in ratios.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |")


if __name__ == "__main__":
    main()
