"""Unsupervised domain adaptation (issue 6): every method against source-only on each shift, 3 seeds.

Protocol (the `lifelong adapt` defaults): MLP 784-400-400 (MNIST-1D: 40-400-400), Adam lr 1e-3, batch
128 source + 128 target samples per step, 2 epochs over the source half of Fashion-MNIST (30,000
images; MNIST-1D: 20 epochs over its 4,000 training signals); each method's default weight; target
labels only to test. Accuracy on the target test set, mean ± std over seeds 0-2, and the gain over
source-only (and on how many seeds a method beat source-only of the same seed: same initialisation
and batch order); time is each method's mean `train_seconds` and its ratio to source-only, measured
in this process (TCA: the source-only training plus features, TCA fit and logistic regression).

    .venv/bin/python benchmarks/adaptation.py [--seeds 3] [--targets fmnist-rot30,fmnist-noise,...]
    .venv/bin/python benchmarks/adaptation.py --sweep dan,coral,dann,jan [--out sweep.jsonl]   # seed 0
    .venv/bin/python benchmarks/adaptation.py --report part1.jsonl part2.jsonl   # a sweep run in parts

`--sweep` trains each method with every weight of its grid (`selection.GRIDS`) on the source minus its
held-out validation split and prints, per weight, every label-free scorer's value next to the target
test accuracy, which is hidden from the choice and shown only to measure it; then each scorer's pick
and its regret (best target accuracy of the grid minus the pick's, in points) per shift, and each
scorer's mean rank of every weight over the shifts: the default a scorer would choose.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from lifelong.tables import markdown_table
from lifelong.experiment.adapt import AdaptConfig, grid_scores, run_adaptation, summary
from lifelong.transfer.adaptation import SCORERS, domain_pair
from lifelong.transfer.adaptation.selection import ranked

PAIRS = {"fmnist-rot30": ("fmnist", 2), "fmnist-scale75": ("fmnist", 2), "fmnist-noise": ("fmnist", 2),
         "fmnist-invert": ("fmnist", 2), "mnist1d-noisy": ("mnist1d", 20)}


def shift(target: str, seeds: int, method_options: dict | None = None, methods: list[str] | None = None) -> list[dict]:
    source, epochs = PAIRS[target]
    config = AdaptConfig(source=source, target=target, epochs=epochs, seeds=seeds,
                         method_options=method_options or {}, **({"method": methods} if methods else {}))
    return run_adaptation(config, on_record=lambda r: print(
        f"  {r['method']:<11} seed {r['seed']}  target {100 * r['acc']:.2f}  {r['train_seconds']:.1f} s", flush=True))


def sweep(targets: list[str], methods: list[str], out: str | None) -> list[dict]:
    """Every scorer's value and the hidden target test accuracy for each weight of each method's grid."""
    records = []
    for target in targets:
        source, epochs = PAIRS[target]
        config = AdaptConfig(source=source, target=target, epochs=epochs)
        for method in methods:
            for g in grid_scores(config, method, *domain_pair(source, target), 0, SCORERS.names()):
                records.append({"target": target, "method": method, **g})
                print(f"  {target} {method} λ={g['lam']:g}: target {100 * g['acc']:.2f}", flush=True)
                if out:
                    with open(out, "a") as f:
                        f.write(json.dumps(records[-1]) + "\n")
    return records


def report(records: list[dict]) -> None:
    """Per (shift, method): the scores table, each scorer's pick and its regret (points of target test
    accuracy below the grid's best); then each scorer's mean rank of every weight over the shifts."""
    scorers = SCORERS.names()
    ranks: dict[tuple[str, str], dict[float, list[int]]] = {}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["target"], r["method"]), []).append(r)
    for (target, method), grid in groups.items():
        rows = [[f"{g['lam']:g}", *(f"{g['scores'][s]:.4f}" for s in scorers), f"{100 * g['acc']:.2f}"] for g in grid]
        print(f"{PAIRS[target][0]} -> {target}, {method} (seed 0)")
        print(markdown_table(["λ", *scorers, "target acc % (hidden)"], rows))
        best, picks = max(g["acc"] for g in grid), []
        for s in scorers:
            order = ranked(grid, lambda g: g["scores"][s])  # NaN last; a tie: the smaller λ first
            picks.append(f"{s} λ={order[0]['lam']:g} regret {100 * (best - order[0]['acc']):.2f}")
            for rank, g in enumerate(order, 1):
                ranks.setdefault((method, s), {}).setdefault(g["lam"], []).append(rank)
        print("picks: " + "; ".join(picks))
    print("mean rank of each weight over the shifts (1 = best), per scorer -> the weight it would make the default:")
    for (method, s), by_lam in ranks.items():
        means = {lam: statistics.mean(r) for lam, r in sorted(by_lam.items())}  # a tie: the smaller λ
        cells = ", ".join(f"λ={lam:g}: {m:.2f}" for lam, m in means.items())
        print(f"  {method} {s}: {cells} -> λ={min(means, key=means.__getitem__):g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--targets", default=",".join(PAIRS))
    parser.add_argument("--sweep", help="comma-separated methods: score their weight grids on --targets, seed 0")
    parser.add_argument("--out", help="with --sweep: also write one JSON line per (target, method, weight)")
    parser.add_argument("--report", nargs="+", help="report sweeps from these JSON-lines files (run in parts)")
    parser.add_argument("--methods", help="comma-separated methods for the table (default: all)")
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",")]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    if args.report:
        report([json.loads(line) for path in args.report for line in open(path)])
        return
    if args.sweep:
        report(sweep(targets, args.sweep.split(","), args.out))
        return
    wins: dict[str, list[str]] = {}
    for target in targets:
        print(f"{PAIRS[target][0]} -> {target}", flush=True)
        records = shift(target, args.seeds, methods=args.methods.split(",") if args.methods else None)
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
