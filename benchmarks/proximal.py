"""EWC's penalty as an explicit gradient or as an implicit (proximal) step, over a range of λ (issue 21).

Protocol: Permuted Fashion-MNIST, 5 tasks (domain-incremental), MLP 784-400-400, SGD lr 0.01 momentum
0.9, batch 128, 1 epoch per task, EWC at λ = 100 (the library's default), 1000, 1e4 and 1e6, with
`step="explicit"` (the gradient 2sΩ(θ − θ*) added to the task's, as before) and `step="implicit"`
(the closed-form prox of the penalty after each optimiser step, with η = lr / (1 − momentum)), seeds
0-1. A run that stops with "loss became non-finite" (`TrainingError`) counts as diverged and has no ACC.
Same as `lifelong run --benchmark permuted-fmnist --n-tasks 5 --strategy ewc --optimizer sgd --lr 0.01
--momentum 0.9 --ewc-lambda L --ewc-step S --seed K`, run in one process so Fashion-MNIST is read once.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/proximal.py [--lams 100,1000,10000,1000000] [--seeds 2]
"""

from __future__ import annotations

import argparse
import statistics

from lifelong import TrainingError
from lifelong.experiment import RunConfig, run
from lifelong.strategies import EWC
from lifelong.tables import markdown_table

DEFAULT_LAM = EWC().lam


def one(lam: float, step: str, seed: int) -> dict | None:
    """The record of one run, or None if it diverged."""
    config = RunConfig(benchmark="permuted-fmnist", n_tasks=5, strategy=["ewc"], optimizer="sgd", lr=0.01,
                       momentum=0.9, batch_size=128, epochs=1, seed=seed,
                       strategy_options={"ewc": {"lam": lam, "step": step}})
    try:
        return run(config)[0]
    except TrainingError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lams", default="100,1000,10000,1000000", help="comma-separated λ values")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1")
    args = parser.parse_args()
    rows = []
    for lam in (float(v) for v in args.lams.split(",")):
        for step in ("explicit", "implicit"):
            records = [one(lam, step, seed) for seed in range(args.seeds)]
            done = [r for r in records if r is not None]
            accs = [100 * r["acc"] for r in done]
            label = f"{lam:g}" + (" (default)" if lam == DEFAULT_LAM else "")
            mean = "—" if not accs else f"{statistics.mean(accs):.2f}" + (
                f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else "")
            rows.append([label, step, " / ".join("diverged" if r is None else f"{100 * r['acc']:.2f}" for r in records),
                         mean,
                         f"{statistics.mean(100 * r['bwt'] for r in done):.2f}" if done else "—",
                         f"{len(records) - len(done)}/{len(records)}",
                         f"{statistics.mean(r['train_seconds'] for r in done):.1f}" if done else "—"])
            print(f"λ={label} {step}: {rows[-1][2]}", flush=True)
    print("\nPermuted Fashion-MNIST, 5 tasks, MLP 784-400-400, SGD lr 0.01 momentum 0.9, batch 128, 1 epoch; "
          f"EWC, seeds 0-{args.seeds - 1}; ACC and BWT in %\n")
    print(markdown_table(["λ", "step", "ACC per seed", "ACC mean ± std", "BWT mean", "diverged", "train s"], rows))


if __name__ == "__main__":
    main()
