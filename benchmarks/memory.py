"""Peak memory of one `lifelong run` (issue 20): split and permuted Fashion-MNIST, 5 and 50 tasks.

Each run is its own process (`python -m lifelong run --json`, naive, 1 epoch, the default model) under
`/usr/bin/time -v`; the table shows the run's own `peak_rss_mb` (from its --json row: `ru_maxrss` of the
process), the maximum resident set size `time` saw, the wall time and ACC. `--src PATH` puts
`PATH/src` first on PYTHONPATH, so the same script measures another checkout (the code before a change).

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/memory.py [--tasks 5,50] [--src /work/benchsrc]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lifelong.tables import markdown_table


def measure(benchmark: str, n_tasks: int | None, src: str | None) -> dict:
    """One `lifelong run` in a fresh process: its --json row, `time`'s maximum RSS and the wall time."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    if src:
        env["PYTHONPATH"] = str(Path(src) / "src") + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as out:
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "lifelong", "run", "--benchmark", benchmark,
               "--strategy", "naive", "--epochs", "1", "--json", "--out", str(Path(out) / "run")]
        if n_tasks is not None:
            cmd += ["--n-tasks", str(n_tasks)]
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    row = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    maxrss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return {"benchmark": benchmark, "tasks": n_tasks, "peak_rss_mb": row.get("peak_rss_mb"),
            "time_rss_mb": int(maxrss.group(1)) / 1024 if maxrss else float("nan"), "acc": row["acc"],
            "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="5,50", help="task counts of permuted-fmnist (comma-separated)")
    parser.add_argument("--src", help="a checkout whose src/ goes first on PYTHONPATH (measures that code)")
    parser.add_argument("--no-split", action="store_true", help="skip split-fmnist")
    args = parser.parse_args()
    runs = [] if args.no_split else [("split-fmnist", None)]
    runs += [("permuted-fmnist", int(n)) for n in args.tasks.split(",")]
    rows = []
    for benchmark, n in runs:
        r = measure(benchmark, n, args.src)
        print(json.dumps(r), flush=True)
        rows.append([benchmark, str(n if n is not None else 5), f"{r['peak_rss_mb']:.0f}", f"{r['time_rss_mb']:.0f}",
                     f"{r['acc']:.4f}", f"{r['wall_s']:.0f}"])
    print(markdown_table(["benchmark", "tasks", "peak_rss_mb (--json)", "max RSS (time -v), MB", "ACC", "wall s"],
                         rows))


if __name__ == "__main__":
    main()
