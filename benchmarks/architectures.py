"""Architectural strategies on task-incremental Fashion-MNIST: ACC, BWT and parameters per task.

    .venv/bin/python benchmarks/architectures.py [--benchmarks split-fmnist,permuted-fmnist]
        [--strategies naive,pnn,packnet,hat,hat-adam] [--seeds 3] [--n-tasks 5] [--epochs 1] [--device cpu]

Protocol: the `lifelong run` defaults (MLP 784-400-400, 1 epoch per task, Adam lr 1e-3, batch 128;
HAT's own default optimiser, the paper's SGD lr 0.05) with `--scenario task`; permuted-fmnist cut to
`--n-tasks` tasks. `hat-adam` is HAT with Adam lr 1e-3 (the library's default before issue 18).
"params" is the trained model's parameter count after each task (PNN: all columns and adapters;
HAT: the model plus every task's gate embeddings), the same for every seed.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

import lifelong as ll
from lifelong.experiment import make_strategy
from lifelong.metrics import mean_std

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {  # name -> (strategy, Trainer options)
    "naive": ("naive", {}), "pnn": ("pnn", {}), "packnet": ("packnet", {}), "hat": ("hat", {}),
    "hat-adam": ("hat", {"optimizer": "adam", "lr": 1e-3}),
}


class ParameterCount(ll.Strategy):
    """Records the trained model's parameter count after each task."""

    name = "parameter-count"

    def __init__(self) -> None:
        self.counts: list[int] = []

    def after_task(self, task: ll.data.Task) -> None:
        self.counts.append(sum(p.numel() for p in self.trainer.model.parameters()))


def fit(bench: str, variant: str, seed: int, args: argparse.Namespace) -> tuple[ll.Result, list[int]]:
    stream = ll.data.benchmark(bench, scenario="task", seed=seed,
                               n_tasks=args.n_tasks if bench.startswith("permuted") else None)
    torch.manual_seed(seed)
    model = ll.models.mlp(math.prod(stream.input_shape), stream.n_outputs, hidden=(400, 400))
    name, options = VARIANTS[variant]
    counter = ParameterCount()
    trainer = ll.Trainer(model, ll.Compose(make_strategy(name, {}), counter), epochs=args.epochs, seed=seed,
                         device=args.device, **options)
    return trainer.fit(stream), counter.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", default="split-fmnist,permuted-fmnist")
    parser.add_argument("--strategies", default=",".join(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-tasks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    print("| benchmark | strategy | ACC % | BWT % | LA % | params after each task |")
    print("| --- | --- | --- | --- | --- | --- |")
    for bench in args.benchmarks.split(","):
        for variant in args.strategies.split(","):
            results: list[dict[str, float]] = []
            for seed in range(args.seeds):
                result, counts = fit(bench, variant, seed, args)
                results.append(result.metrics)
            acc, bwt, la = (mean_std([100 * m[k] for m in results]) for k in ("acc", "bwt", "learning_accuracy"))
            print(f"| {bench} | {variant} | {acc[0]:.2f} ± {acc[1]:.2f} | {bwt[0]:.2f} ± {bwt[1]:.2f} | "
                  f"{la[0]:.2f} ± {la[1]:.2f} | {', '.join(f'{c:,}' for c in counts)} |", flush=True)


if __name__ == "__main__":
    main()
