"""A suite on a local Ray against the local bench: wall time of each and whether every point's accuracy
matrix is the same.

Runs `lifelong bench SUITE --threads 1` (points one after another, in one process) and
`lifelong bench SUITE --ray --threads 1` (a local Ray of all cores started by the command, each point a
task of one CPU) into fresh folders, alternately `--repeats` times, and compares the matrices of
every point's results.json. Wall times are of the whole command, Python and Ray start-up included.

    .venv/bin/python benchmarks/ray_suite.py                          # suites/smoke.yaml
    .venv/bin/python benchmarks/ray_suite.py --suite suites/standard.yaml   # hours
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bench_seconds(suite: Path, out: Path, ray: bool) -> float:
    """Wall time of one `lifelong bench` of `suite` into `out`, with one thread per point."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lifelong", "bench", str(suite), "--out", str(out), "--threads", "1",
                           *(["--ray"] if ray else [])], stdout=subprocess.DEVNULL)
    if done.returncode:
        raise SystemExit(f"lifelong bench {'--ray ' if ray else ''}failed")
    return time.perf_counter() - t0


def matrices(root: Path) -> dict[str, list]:
    """Every run folder's matrices under `root`, by folder."""
    return {str(p.parent.relative_to(root)): [r["matrix"] for r in json.loads(p.read_text())["runs"]]
            for p in sorted(root.rglob("results.json"))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", type=Path, default=Path("suites/smoke.yaml"))
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    load = os.getloadavg()[0]
    local, ray, same = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            local.append(bench_seconds(args.suite, Path(tmp) / f"local{r}", ray=False))
            ray.append(bench_seconds(args.suite, Path(tmp) / f"ray{r}", ray=True))
            a, b = matrices(Path(tmp) / f"local{r}"), matrices(Path(tmp) / f"ray{r}")
            same.append(bool(a) and a == b)
        points = len(a)
    print(f"suite {args.suite}: {points} points, {os.cpu_count()} cores (Ray workers), 1-min load average "
          f"{load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"local bench (--threads 1):      {statistics.median(local):7.1f} s  (runs: "
          f"{', '.join(f'{s:.1f}' for s in local)})")
    print(f"bench --ray (1 CPU per point):  {statistics.median(ray):7.1f} s  (runs: "
          f"{', '.join(f'{s:.1f}' for s in ray)})")
    print(f"same matrices: {'yes' if all(same) else 'no'}")


if __name__ == "__main__":
    main()
