"""Speed of the regularisation strategies (issue 3), in one process against naive.

1. Time of one epoch on the second task of Permuted Fashion-MNIST (penalty / teacher active), MLP
   784-400-400-10, Adam, batch 128; medians, ratio to naive. Each strategy's epoch runs between two
   naive ones (naive, ewc, naive, online-ewc, naive, ...), and its paired ratio is its time over the
   mean of those two: slow drift of the machine's speed cancels. Median and interquartile range.
   Targets: EWC/SI/MAS <= 1.15x naive, LwF <= 1.35x.
2. The per-step work each strategy adds, timed alone against one naive training step (forward,
   backward, Adam) of the same MLP and batch: steadier than whole epochs on a noisy machine. LwF's
   work is the look-up of the teacher outputs recorded for the task plus the soft cross-entropy; the
   recording itself, once per task, is timed too and spread over the epoch's steps.
3. Diagonal Fisher of 12,000 samples on that MLP: the per-layer identity, torch.func vmap, and a
   per-sample Python loop (timed on a subset and scaled), with the speed-ups.

    .venv/bin/python benchmarks/regularisation.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.strategies.importance import fisher_diagonal


class EpochTimer(ll.Strategy):
    """Records the wall time from before_task to after_task (placed first in a Compose, so it stops
    before the strategy's own after_task work such as a Fisher estimate)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def before_task(self, task: ll.data.Task) -> None:
        self._start = time.perf_counter()

    def after_task(self, task: ll.data.Task) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def epoch_seconds(stream: ll.data.Stream, make: type[ll.Strategy]) -> float:
    torch.manual_seed(0)
    timer = EpochTimer()
    ll.Trainer(ll.models.mlp(784, 10), ll.Compose(timer, make()), epochs=1, seed=0).fit(stream)
    return timer.seconds[1]


def per_step_cost(stream: ll.data.Stream, repeats: int) -> None:
    """Milliseconds of a naive step, and of each strategy's own per-step hooks, with its state in place."""
    x, y = stream[1].train.x[:128], stream[1].train.y[:128]

    def clock(fn: Callable[[], object], n: int = 200) -> float:
        fn()
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            runs.append((time.perf_counter() - start) / n * 1e3)
        return statistics.median(runs)

    model = ll.models.mlp(784, 10)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def naive_step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step = clock(naive_step)
    print(f"\nper-step work added (ms) against one naive step of {step:.3f} ms, batch 128:")
    for name, make in (("ewc", ll.strategies.EWC), ("mas", ll.strategies.MAS), ("l2", ll.strategies.L2),
                       ("si", ll.strategies.SI), ("lwf", ll.strategies.LwF)):
        strategy = make()
        trainer = ll.Trainer(ll.models.mlp(784, 10), strategy, epochs=1, seed=0)
        trainer.fit(stream)  # state after two tasks: Ω, θ*, teacher in place
        strategy.before_task(stream[1])
        trainer.model.zero_grad(set_to_none=True)
        trainer.logits = trainer.model(x)
        F.cross_entropy(trainer.logits, y).backward()
        if name == "lwf":  # inside the Trainer's loop: outputs recorded once for the task, looked up per step
            trainer.train_data, trainer.batch_index = stream[1].train, torch.arange(len(x))
            start = time.perf_counter()
            strategy.loss(trainer.logits, x, y, y)
            record_ms = (time.perf_counter() - start) * 1e3
        hook = strategy.add_grad if name != "lwf" else lambda: strategy.loss(trainer.logits, x, y, y)
        extra = clock(hook)
        print(f"{name:<5} {extra:7.3f}  -> {1 + extra / step:5.2f}x naive")
        if name == "lwf":
            steps = len(stream[1].train) // len(x)
            print(f"      + recording the teacher's outputs once per task: {record_ms:.0f} ms = "
                  f"{record_ms / steps:.3f} ms per step of a {steps}-step epoch "
                  f"-> {1 + (extra + record_ms / steps) / step:5.2f}x naive per epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = ll.data.fashion_mnist()
    small = ll.data.Dataset("fmnist", data.train, data.test.subset(torch.arange(500)), data.class_names, (1, 28, 28))
    stream = ll.data.permuted(small, n_tasks=2, seed=0)
    methods = {"naive": ll.strategies.Naive, "ewc": ll.strategies.EWC, "online-ewc": ll.strategies.OnlineEWC,
               "si": ll.strategies.SI, "mas": ll.strategies.MAS, "l2": ll.strategies.L2, "lwf": ll.strategies.LwF}
    times: dict[str, list[float]] = {k: [] for k in methods}
    ratios: dict[str, list[float]] = {k: [] for k in methods if k != "naive"}
    epoch_seconds(stream, ll.strategies.Naive)  # warm-up
    for _ in range(args.repeats):  # naive, ewc, naive, online-ewc, ..., naive: each paired with its neighbours
        times["naive"].append(epoch_seconds(stream, ll.strategies.Naive))
        for name, ratio in ratios.items():
            times[name].append(epoch_seconds(stream, methods[name]))
            times["naive"].append(epoch_seconds(stream, ll.strategies.Naive))
            ratio.append(2 * times[name][-1] / (times["naive"][-2] + times["naive"][-1]))
    base = statistics.median(times["naive"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; epoch = 60,000 samples, batch 128")
    print(f"{'strategy':<11} {'epoch (s)':>9} {'x naive':>8} {'paired':>7} {'IQR':>10}  each run")
    for name, ts in times.items():
        runs = " ".join(f"{v:.2f}" for v in ts)
        paired = ratios.get(name, [1.0] * len(ts))
        q = sorted(paired)[len(paired) // 4], sorted(paired)[-1 - len(paired) // 4]
        print(f"{name:<11} {statistics.median(ts):9.2f} {statistics.median(ts) / base:8.2f} "
              f"{statistics.median(paired):7.2f} {q[0]:4.2f}-{q[1]:4.2f}  {runs}")
    per_step_cost(stream, args.repeats)

    torch.manual_seed(0)
    model = ll.models.mlp(784, 10)
    task = ll.data.split(data, n_tasks=5, seed=0)[0]
    x, y = task.train.x, task.train.y
    t = torch.zeros_like(y)

    def no_mask(logits: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        return logits

    timings = {}
    for method in ("layers", "vmap"):
        fisher_diagonal(model, x[:256], y[:256], t[:256], no_mask, method=method)  # warm-up
        start = time.perf_counter()
        fisher_diagonal(model, x, y, t, no_mask, method=method)
        timings[method] = time.perf_counter() - start
    m = 300
    start = time.perf_counter()
    model.eval()
    for i in range(m):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        _ = [p.grad.pow(2) for p in model.parameters()]
    timings["loop"] = (time.perf_counter() - start) * len(x) / m
    print(f"\nFisher of {len(x)} samples, MLP 784-400-400-10:")
    for k, v in timings.items():
        note = " (scaled from a loop over 300 samples)" if k == "loop" else ""
        print(f"{k:<7} {v:7.3f} s  {timings['loop'] / v:7.1f}x faster than the per-sample loop{note}")


if __name__ == "__main__":
    main()
