"""What a suite costs over plain `experiment.run` calls, and how long a report takes.

The same points (split-digits, naive/ewc/replay, class and task, seeds) run through `run_suite`
(run folders, CSV logs, checkpoints, skip checks) and through `experiment.run` alone, interleaved,
in one process; medians compared. Then `write_report` over the suite's folders, and a re-run of the
whole suite (every point skipped).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/suite.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lifelong.experiment import run
from lifelong.reporting import write_report
from lifelong.suite import parse, run_suite

SUITE = {"settings": {"hidden": [64], "epochs": 4, "batch_size": 16}, "benchmarks": ["split-digits"],
         "scenarios": ["class", "task"],
         "strategies": ["naive", {"ewc": {"lam": 100}}, {"replay": {"buffer_size": 200}}],
         "seeds": 2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        warm = parse(SUITE, "warm-up", Path(tmp) / "warm")
        run_suite(warm)  # imports, first optimiser, data caches
        plain, suite = [], []
        for r in range(args.repeats):
            points = parse(SUITE, "suite", Path(tmp) / f"s{r}").points
            t0 = time.perf_counter()
            for p in points:
                run(p.config)
            plain.append(time.perf_counter() - t0)
            s = parse(SUITE, "suite", Path(tmp) / f"s{r}")
            t0 = time.perf_counter()
            run_suite(s)
            suite.append(time.perf_counter() - t0)
        n = len(points)
        t0 = time.perf_counter()
        write_report([Path(tmp) / "s0"], Path(tmp) / "report")
        report_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        outcomes = run_suite(parse(SUITE, "suite", Path(tmp) / "s0"))
        skip_s = time.perf_counter() - t0
        assert all(o.status == "skipped" for o in outcomes)
    p, s = statistics.median(plain), statistics.median(suite)
    print(f"{n} runs: experiment.run {p:.2f} s, run_suite {s:.2f} s (median of {args.repeats}); ratio {s / p:.3f}")
    print(f"suite cost per run: {(s - p) / n * 1000:.0f} ms; report of {n} runs: {report_s:.2f} s; "
          f"re-run with every run finished: {skip_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
