"""The 22-run standard table of issue 21 (suites/table.yaml) as one suite: its wall time against the sum of
its training and evaluation seconds.

Runs the suite in this process as `lifelong bench` does (`suite.load` + `run_suite`, into a temporary folder
unless --out is given), then reads every point's results.json and prints, per point, its training and
evaluation seconds (the records' `train_seconds` and `eval_seconds`), its wall time (run_suite's outcome) and
the overhead (wall - train - eval): building the stream, model and trainer (twice: the run's pre-flight
checks and its fit), checkpoints after every task, the run folder's files. The data part of it is measured
apart: one build of each point's stream, with the data files already loaded, times the two builds a point makes
(Permuted Fashion-MNIST permutes each batch as it trains: nothing to build). The first point also pays the
process's start-up (reading the data files, the first optimiser's import of torch._dynamo): its overhead beyond
the median of the others'. Target: suite wall <= 1.3 x (train + eval).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/table.py [--threads 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lifelong.experiment.continual import make_stream
from lifelong.suite import Outcome, load, run_suite

SUITE = Path(__file__).resolve().parent.parent / "suites" / "table.yaml"
TARGET = 1.3
BUILDS_PER_POINT = 2  # `run` builds each point's stream twice: `_preflight`, then the fit


def stream_seconds(outcome: Outcome) -> float:
    """Seconds of one build of the point's stream, the data files already in memory."""
    config = outcome.point.config
    t0 = time.perf_counter()
    make_stream(config, config.seed)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for PyTorch (default 1)")
    parser.add_argument("--out", type=Path, help="run folders here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        suite = load(SUITE, args.out or Path(tmp) / "table")
        t0 = time.perf_counter()
        outcomes = run_suite(suite)
        wall = time.perf_counter() - t0
        if any(o.status != "ran" for o in outcomes):
            raise SystemExit(f"{args.out} holds finished points: give an empty --out to time the whole suite")
        rows = []
        for o in outcomes:
            runs = json.loads((o.point.path / "results.json").read_text())["runs"]
            train, evaluate = sum(r["train_seconds"] for r in runs), sum(r["eval_seconds"] for r in runs)
            data = BUILDS_PER_POINT * stream_seconds(o)
            rows.append((str(o.point.path.relative_to(suite.out)), train, evaluate, o.seconds, data))
    width = max(len(r[0]) for r in rows)
    print(f"{'point':<{width}} {'train s':>8} {'eval s':>7} {'wall s':>7} {'over s':>7} {'data s':>7} {'rest s':>7}")
    for name, train, evaluate, seconds, data in rows:
        over = seconds - train - evaluate
        print(f"{name:<{width}} {train:8.2f} {evaluate:7.2f} {seconds:7.2f} {over:7.2f} {data:7.2f} {over - data:7.2f}")
    train, evaluate, points, data = (sum(r[i] for r in rows) for i in range(1, 5))
    over = points - train - evaluate
    first, *others = [seconds - t - e for _, t, e, seconds, _ in rows]
    start_up = first - statistics.median(others)
    print(f"\n{len(rows)} runs, torch threads {args.threads}")
    print(f"suite wall               {wall:8.1f} s")
    print(f"train + eval             {train + evaluate:8.1f} s  (train {train:.1f}, eval {evaluate:.1f})")
    print(f"ratio wall / (train+eval) {wall / (train + evaluate):7.3f}  (target <= {TARGET})")
    print(f"per-point overhead       {over:8.1f} s  (mean {over / len(rows):.2f} s): data {data:.1f}, "
          f"the rest (model, trainer, checkpoints, files) {over - data:.1f}, of which the first point's start-up "
          f"{start_up:.1f}")
    print(f"outside the points       {wall - points:8.1f} s  (the suite's checks of its folders)")


if __name__ == "__main__":
    main()
