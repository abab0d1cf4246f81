"""Accuracy of the regularisation strategies (issue 3): the hyper-parameter sweep, then 3 seeds.

Protocol: MLP 784-400-400, Adam lr 1e-3, batch 128, 1 epoch per task.
  sweep : Permuted Fashion-MNIST, 5 tasks (domain-incremental), seed 0, each strategy's main weight,
          scored on 10% of each task's training data held out (`--validation 0.1`): never on the test
          split that the table reports.
  table : Permuted Fashion-MNIST (5 tasks), task-incremental Split Fashion-MNIST (5 tasks, one head
          per task) and class-incremental Split Fashion-MNIST, seeds 0-2, defaults; mean +- std.
Same as `lifelong run --benchmark ... --strategy ... --seeds 3`, run in one process so Fashion-MNIST
is read once.

    .venv/bin/python benchmarks/regularisation_accuracy.py [sweep|table]
"""

from __future__ import annotations

import sys

from lifelong.experiment import RunConfig, run
from lifelong.tables import table

SWEEP = {
    "ewc": ("lam", [10.0, 30.0, 100.0, 1000.0, 10000.0]),
    "online-ewc": ("lam", [30.0, 100.0, 1000.0, 10000.0]),
    "si": ("c", [0.1, 1.0, 10.0, 100.0]),
    "mas": ("lam", [0.01, 0.1, 1.0, 10.0]),
    "l2": ("lam", [0.01, 0.1, 1.0, 10.0]),
    "lwf": ("alpha", [0.5, 1.0, 2.0]),
}
VALIDATION = 0.1
STRATEGIES = ["naive", "ewc", "online-ewc", "si", "mas", "l2", "lwf", "joint"]


def sweep() -> None:
    base = run(RunConfig(benchmark="permuted-fmnist", n_tasks=5, strategy=["naive"], validation=VALIDATION))[0]["acc"]
    print(f"permuted-fmnist, 5 tasks, seed 0, validation ACC (10% of training data held out): naive {100 * base:.2f}")
    for name, (arg, values) in SWEEP.items():
        for v in values:
            rec = run(RunConfig(benchmark="permuted-fmnist", n_tasks=5, strategy=[name],
                                strategy_options={name: {arg: v}}, validation=VALIDATION))[0]
            print(f"{name:<11} {arg}={v:<8g} ACC {100 * rec['acc']:.2f}  BWT {100 * rec['bwt']:.2f}", flush=True)


def final_table() -> None:
    for bench, scenario, n_tasks in (("permuted-fmnist", "domain", 5), ("split-fmnist", "task", 5),
                                     ("split-fmnist", "class", 5)):
        records = run(RunConfig(benchmark=bench, scenario=scenario, n_tasks=n_tasks, strategy=STRATEGIES, seeds=3))
        print(f"\n### {bench}, {scenario}-incremental, {n_tasks} tasks, seeds 0-2\n")
        print(table(records, markdown=True), flush=True)


if __name__ == "__main__":
    {"sweep": sweep, "table": final_table}[sys.argv[1] if len(sys.argv) > 1 else "table"]()
