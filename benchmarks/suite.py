"""What a suite costs over plain `experiment.run` calls, and how long a report takes.

The same points (split-digits, naive/ewc/replay, class and task, seeds) run through `run_suite`
(run folders, CSV logs, checkpoints, skip checks) and through `experiment.run` alone, interleaved,
in one process; medians compared. Then `write_report` over the suite's folders, and a re-run of the
whole suite (every point skipped).

With `--shared`, instead: the wall time of one `lifelong bench` (PyTorch's default threads) against
two `lifelong bench --threads 1` started together on the same suite (they share its points through
the folder holds), alternated `--repeats` times; a Split Fashion-MNIST suite of 8 runs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/suite.py --repeats 3
    .venv/bin/python benchmarks/suite.py --shared --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from lifelong.experiment import run
from lifelong.report import write_report
from lifelong.suite import parse, run_suite

SUITE = {"settings": {"hidden": [64], "epochs": 4, "batch_size": 16}, "benchmarks": ["split-digits"],
         "scenarios": ["class", "task"],
         "strategies": ["naive", {"ewc": {"lam": 100}}, {"replay": {"buffer_size": 200}}],
         "seeds": 2}


SHARED = {"settings": {"epochs": 1}, "benchmarks": ["split-fmnist"],
          "strategies": ["naive", "ewc", "si", {"replay": {"buffer_size": 500}}], "seeds": 2}


def bench_seconds(suite: Path, out: Path, processes: int) -> float:
    """Wall time of `processes` `lifelong bench` of `suite` into `out`, started together; with more than
    one, each gets --threads 1."""
    threads = ["--threads", "1"] if processes > 1 else []
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "lifelong", "bench", str(suite), "--out", str(out), *threads],
                              stdout=subprocess.DEVNULL) for _ in range(processes)]
    if any(p.wait() for p in procs):
        raise SystemExit("lifelong bench failed")
    return time.perf_counter() - t0


def shared(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "shared.yaml"
        suite.write_text(yaml.safe_dump(SHARED))
        bench_seconds(suite, Path(tmp) / "warm", 1)  # page cache, data files
        one, two = [], []
        for r in range(repeats):
            one.append(bench_seconds(suite, Path(tmp) / f"one{r}", 1))
            two.append(bench_seconds(suite, Path(tmp) / f"two{r}", 2))
    ratios = sorted(b / a for a, b in zip(one, two))
    print(f"8 runs of Split Fashion-MNIST: one bench {statistics.median(one):.1f} s, two sharing it "
          f"{statistics.median(two):.1f} s (medians of {repeats}); paired ratio two/one median "
          f"{statistics.median(ratios):.2f} (range {ratios[0]:.2f}-{ratios[-1]:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shared", action="store_true", help="one bench against two sharing the suite")
    args = ap.parse_args()
    if args.shared:
        shared(args.repeats)
        return
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
