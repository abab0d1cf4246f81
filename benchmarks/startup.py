"""Start-up: wall seconds of the commands that do not train, whether each imported torch, and the fixed
cost of a training run.

Each command runs as a fresh process (`python -c` calling `lifelong.cli.main`, as the `lifelong`
script does), interleaved with the baselines `python -c pass`, `python -c "import torch"` and
`import torch, torch._dynamo` (what PyTorch's first optimiser imports) `--repeats` times; medians are
printed, and the ratio to the torch import. Goal (issue 21): no torch, <= 0.5 s. A run folder for
`report` is made first with a tiny `lifelong run` on split-digits; the command line's catalog
(`lifelong.catalog`) is warmed first, as the first command after an install does.

The fixed cost of a training run: the README's `lifelong run --threads 1 --out DIR` (split-fmnist,
naive and joint), its wall time less the training and evaluation seconds its results.json records.
Goal: <= the torch import + 0.5 s.

    .venv/bin/python benchmarks/startup.py [--repeats 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRAPPER = """import sys
from lifelong.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:  # --help, --version and usage errors
    code = stop.code
print('torch imported:', 'torch' in sys.modules, file=sys.stderr)
sys.exit(code)"""


def commands(tmp: Path) -> dict[str, list[str]]:
    run = tmp / "run"
    bad = tmp / "bad.yaml"
    bad.write_text("epochs: [1\n")
    return {
        "lifelong --help": ["--help"],
        "lifelong --version": ["--version"],
        "lifelong list": ["list"],
        "lifelong report RUN": ["report", str(run), "--out", str(tmp / "report")],
        "lifelong run --help": ["run", "--help"],
        "error: run --strategy nope": ["run", "--strategy", "nope"],
        "error: run --ewc-lambda abc": ["run", "--ewc-lambda", "abc"],
        "error: run --config bad.yaml": ["run", "--config", str(bad)],
        "error: bench missing.yaml": ["bench", str(tmp / "missing.yaml")],
        "error: report of no run": ["report", str(tmp / "nothing")],
    }


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    said = [line for line in done.stderr.splitlines() if line.startswith("torch imported:")]
    return seconds, said[-1].split(":")[1].strip() if said else "?"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--runs", type=int, default=3, help="training runs for the fixed cost (0: none)")
    args = p.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        subprocess.run([py, "-m", "lifelong", "run", "--benchmark", "split-digits", "--epochs", "1", "--threads", "1",
                        "--out", str(tmp / "run")], check=True, capture_output=True)
        cases = {"python -c pass": [py, "-c", "pass"], "python -c 'import torch'": [py, "-c", "import torch"],
                 "import torch, torch._dynamo": [py, "-c", "import torch, torch._dynamo"]}
        cases |= {name: [py, "-c", WRAPPER, *argv] for name, argv in commands(tmp).items()}
        times: dict[str, list[float]] = {name: [] for name in cases}
        torch_seen: dict[str, str] = {}
        for _ in range(args.repeats):
            for name, argv in cases.items():
                seconds, seen = timed(argv)
                times[name].append(seconds)
                torch_seen[name] = seen
        fixed = [fixed_cost(py, tmp / f"default{i}") for i in range(args.runs)]
    reference = statistics.median(times["python -c 'import torch'"])
    print(f"{'command':34s} {'median s':>9s} {'x torch import':>15s}  torch imported")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34s} {median:9.3f} {median / reference:15.2f}  {torch_seen.get(name, '-')}")
    if fixed:
        wall, work = statistics.median(f[0] for f in fixed), statistics.median(f[1] for f in fixed)
        print(f"lifelong run (default, --threads 1): wall {wall:.2f} s, training + evaluation {work:.2f} s, fixed cost "
              f"{wall - work:.2f} s = torch import + {wall - work - reference:.2f} s (medians of {len(fixed)})")


def fixed_cost(py: str, out: Path) -> tuple[float, float]:
    """(wall seconds, training + evaluation seconds as results.json records them) of the default run."""
    start = time.perf_counter()
    subprocess.run([py, "-m", "lifelong", "run", "--threads", "1", "--out", str(out)], check=True, capture_output=True)
    wall = time.perf_counter() - start
    runs = json.loads((out / "results.json").read_text())["runs"]
    return wall, sum(r["train_seconds"] + r["eval_seconds"] for r in runs)


if __name__ == "__main__":
    main()
