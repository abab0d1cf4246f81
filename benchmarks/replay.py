"""Speed of the replay strategies relative to naive fine-tuning, measured in one process.

Class-incremental Split Fashion-MNIST (5 tasks of 2 classes), MLP 784-400-400-10, Adam lr 1e-3,
batch 128, 1 epoch per task, memory of 500 samples, replay batch 128 (each strategy's defaults).
Each repeat fits every strategy once, in turn (interleaved, since this machine's speed drifts);
a strategy's time is its median `train_seconds` (training only, evaluation excluded) and its ratio
is that median over naive's. Targets: replay <= 2.0 (it doubles the batch), agem <= 2.5,
der and derpp <= 2.5; gem is reported.

    .venv/bin/python benchmarks/replay.py [--repeats 3] [--strategies naive,replay,agem,der,derpp,gem]
"""

from __future__ import annotations

import argparse
import statistics

import torch

import lifelong as ll
from lifelong.strategies import STRATEGIES

TARGETS = {"replay": 2.0, "agem": 2.5, "der": 2.5, "derpp": 2.5}


def fit(stream: ll.data.Stream, name: str, seed: int, device: str) -> ll.Result:
    torch.manual_seed(seed)
    model = ll.models.build("mlp", stream.input_shape, stream.n_outputs, (400, 400))
    return ll.Trainer(model, STRATEGIES.get(name).factory(), seed=seed, device=device).fit(stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strategies", default="naive,replay,agem,der,derpp,gem")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    names = [n.strip() for n in args.strategies.split(",")]
    if "naive" not in names:
        names.insert(0, "naive")

    stream = ll.data.benchmark("split-fmnist", seed=0)
    fit(ll.data.benchmark("split-digits", seed=0), "naive", 0, args.device)  # warm-up (allocator, threads)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.repeats):
        for name in names:
            seconds[name].append(fit(stream, name, 0, args.device).train_seconds)
    base = statistics.median(seconds["naive"])
    print(f"split-fmnist class-IL, 5 tasks x 1 epoch, batch 128, device {args.device}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {args.repeats} interleaved repeats (medians)")
    print(f"{'strategy':9s} {'train s':>8s} {'x naive':>8s} {'target':>7s}  runs (s)")
    for name in names:
        med = statistics.median(seconds[name])
        target = f"<= {TARGETS[name]:.1f}" if name in TARGETS else ""
        runs = ", ".join(f"{v:.1f}" for v in seconds[name])
        print(f"{name:9s} {med:8.1f} {med / base:8.2f} {target:>7s}  {runs}")


if __name__ == "__main__":
    main()
