"""Unsupervised domain adaptation (issue 6): every method against source-only on each shift, 3 seeds.

Protocol (the `lifelong adapt` defaults): MLP 784-400-400 (MNIST-1D: 40-400-400), Adam lr 1e-3, batch
128 source + 128 target samples per step, 2 epochs over the source half of Fashion-MNIST (30,000
images; MNIST-1D: 20 epochs over its 4,000 training signals); each method's default weight; target
labels only to test. Accuracy on the target test set, mean ± std over seeds 0-2, and the gain over
source-only (and on how many seeds a method beat source-only of the same seed: same initialisation
and batch order); time is each method's mean `train_seconds` and its ratio to source-only, measured
in this process (TCA: the source-only training plus features, TCA fit and logistic regression).

    .venv/bin/python benchmarks/adaptation.py [--seeds 3] [--targets fmnist-rot30,fmnist-noise,...]
    .venv/bin/python benchmarks/adaptation.py --sweep coral:lam=10,100,1000   # one option, seed 0
"""

from __future__ import annotations

import argparse
import statistics

import torch
import yaml

from lifelong.report import markdown_table
from lifelong.transfer.adaptation import AdaptConfig, run_adaptation, summary

PAIRS = {"fmnist-rot30": ("fmnist", 2), "fmnist-scale75": ("fmnist", 2), "fmnist-noise": ("fmnist", 2),
         "fmnist-invert": ("fmnist", 2), "mnist1d-noisy": ("mnist1d", 20)}


def shift(target: str, seeds: int, method_options: dict | None = None, methods: list[str] | None = None) -> list[dict]:
    source, epochs = PAIRS[target]
    config = AdaptConfig(source=source, target=target, epochs=epochs, seeds=seeds,
                         method_options=method_options or {}, **({"method": methods} if methods else {}))
    return run_adaptation(config, on_record=lambda r: print(
        f"  {r['method']:<11} seed {r['seed']}  target {100 * r['acc']:.2f}  {r['train_seconds']:.1f} s", flush=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--targets", default=",".join(PAIRS))
    parser.add_argument("--sweep", help="METHOD:OPTION=V1,V2,... on --targets, seed 0")
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",")]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    if args.sweep:
        method, _, rest = args.sweep.partition(":")
        option, _, values = rest.partition("=")
        for target in targets:
            base = shift(target, 1, methods=["source-only"])[0]["acc"]
            for v in values.split(","):
                value = yaml.safe_load(v)  # 10 -> int, 0.5 -> float, rbf -> str
                acc = shift(target, 1, {method: {option: value}}, [method])[0]["acc"]
                print(f"{target} {method} {option}={v}: target {100 * acc:.2f} (source-only {100 * base:.2f})")
        return
    wins: dict[str, list[str]] = {}
    for target in targets:
        print(f"{PAIRS[target][0]} -> {target}", flush=True)
        records = shift(target, args.seeds)
        header, rows = summary(records)
        base = statistics.mean(r["train_seconds"] for r in records if r["method"] == "source-only")
        plain = {r["seed"]: r["acc"] for r in records if r["method"] == "source-only"}
        for row in rows:
            won = sum(r["acc"] > plain[r["seed"]] for r in records if r["method"] == row[0])
            row += [f"{float(row[-1]) / base:.2f}", f"{won}/{args.seeds}" if row[0] != "source-only" else ""]
            if row[0] != "source-only" and float(row[4]) > 0:
                wins.setdefault(row[0], []).append(target)
        print(markdown_table([*header, "x source-only time", "seeds above source-only"], rows), flush=True)
    print("methods above source-only (mean over seeds):")
    for method, shifts in wins.items():
        print(f"  {method}: {', '.join(shifts)}")


if __name__ == "__main__":
    main()
