"""Meta-learning accuracy and speed, measured in one process (CPU-sized budgets: minutes, not hours).

    .venv/bin/python benchmarks/meta.py sinusoid [--iterations 10000] [--methods maml,fomaml,reptile]  # vs pretrain
    .venv/bin/python benchmarks/meta.py fewshot [--iterations 1000] [--ways 3 --classes 0-6//7-9]  # unseen classes
    .venv/bin/python benchmarks/meta.py speed [--iterations 200]        # seconds per meta-iteration, ratios

`sinusoid`: Finn et al. 2017's protocol (10 shots, MLP 1-40-40-1, inner lr 0.01, 1 inner step while
meta-training, meta-batch 25, Adam 1e-3); mean MSE over 600 meta-test tasks (100 query points each)
with its 95% CI after 1 and 10 steps. `fewshot`: every method with its defaults, 5-way 1- and
5-shot, then the `scratch` floor at the same 10 steps and fitted to its support set (100 steps).
`speed`: one process, interleaved: MAML second order against FOMAML and Reptile (ratio to FOMAML).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lifelong.meta import evaluate
from lifelong.meta.experiment import MetaConfig, make_learner, run_meta, summary
from lifelong.report import text_table


def show(title: str, records: list[dict]) -> None:
    print(title)
    print(text_table(*summary(records)), flush=True)


def sinusoid(iterations: int, methods: list[str]) -> None:
    config = MetaConfig(benchmark="sinusoid", method=methods, shots=[10], steps=[1, 10], iterations=iterations)
    show(f"sinusoid 10-shot, {iterations} meta-iterations, MSE over 600 tasks", run_meta(config))


def fewshot(iterations: int, ways: int, classes: str | None) -> None:
    config = MetaConfig(benchmark="fmnist-fewshot", method=["maml", "fomaml", "anil", "reptile", "protonet", "scratch"],
                        ways=ways, shots=[1, 5], classes=classes, iterations=iterations)
    records = run_meta(config)
    for shots in config.shots:  # the floor, fitted: 100 steps on the support set alone
        learner = make_learner("scratch", config, shots, config.seed)
        r = evaluate(learner, 100, config.eval_tasks)
        records.append({**records[-1], "method": "scratch", "shots": shots, "steps": 100, "acc": r["mean"],
                        "ci95": r["ci95"], "std": r["std"], "tasks": r["tasks"], "train_seconds": 0.0})
    split = records[0]["task_info"]["classes"]
    show(f"fmnist-fewshot {ways}-way, classes {split['train']} meta-train, {split['test']} meta-test, {iterations} "
         "meta-iterations, accuracy over 600 tasks", records)


def speed(iterations: int, repeats: int = 3) -> None:
    names = ["fomaml", "maml", "reptile"]
    config = MetaConfig(benchmark="sinusoid", iterations=iterations)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    make_learner("fomaml", config, 10, 0).meta_train(5)  # warm-up
    for _ in range(repeats):
        for name in names:
            learner = make_learner(name, config, 10, 0)
            t0 = time.perf_counter()
            learner.meta_train(iterations)
            seconds[name].append((time.perf_counter() - t0) / iterations)
    base = statistics.median(seconds["fomaml"])
    print(f"sinusoid 10-shot, default options, {iterations} iterations x {repeats} interleaved repeats, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(text_table(["method", "ms / meta-iteration", "x fomaml"],
                     [[n, f"{statistics.median(s) * 1e3:.2f}", f"{statistics.median(s) / base:.2f}"]
                      for n, s in seconds.items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["sinusoid", "fewshot", "speed"])
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--methods", default="maml", help="sinusoid: methods beside pretrain (default maml)")
    parser.add_argument("--ways", type=int, default=5, help="fewshot: classes per episode (default 5)")
    parser.add_argument("--classes", help="fewshot: TRAIN/VALID/TEST classes (default 0-4//5-9 for 5 ways)")
    args = parser.parse_args()
    iterations = args.iterations or {"sinusoid": 10000, "fewshot": 1000, "speed": 200}[args.part]
    if args.part == "sinusoid":
        sinusoid(iterations, args.methods.split(","))
    elif args.part == "fewshot":
        fewshot(iterations, args.ways, args.classes)
    else:
        speed(iterations)


if __name__ == "__main__":
    main()
