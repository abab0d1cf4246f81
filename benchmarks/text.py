"""Text (issue 25): continual split-fortunes on the frozen MiniLM's cached features, with the top layers
trained, and the BBC News transfer curve from the pretrained encoder against a bag of words from scratch.

Each part runs whole `lifelong` commands (`--json`, one object per record) and prints a Markdown table of
the mean +- std over the seeds. Hyper-parameters of the split-fortunes runs (frozen: Adam lr 0.01, 20 epochs
per task; top-2: lr 1e-4, 5 epochs, batch 16) were chosen on a validation split of the training data
(`--validation 0.2`, joint's ACC), never on the test split; the strategies keep their defaults. The BBC curve
uses the transfer command's defaults (lr 1e-3, at least 100 steps) with batch 16, untuned.

    .venv/bin/python benchmarks/text.py cache        # first and second (cached) run: wall time, texts/s
    .venv/bin/python benchmarks/text.py fortunes     # class- and task-incremental tables, 3 seeds
    .venv/bin/python benchmarks/text.py top          # top-2 layers trained, 50 texts per class, 3 seeds
    .venv/bin/python benchmarks/text.py bbc          # the transfer curve, 3 seeds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

FROZEN = ["--benchmark", "split-fortunes", "--model", "minilm", "--freeze", "all", "--lr", "0.01", "--epochs", "20"]
STRATEGIES = {"class": "naive,joint,ewc,lwf,replay,derpp,slda,ncm", "task": "naive,joint,ewc,lwf,replay,derpp"}


def lifelong(*args: str, env: dict[str, str] | None = None) -> list[dict]:
    """The records of one `lifelong ... --json` command."""
    done = subprocess.run([sys.executable, "-m", "lifelong", *args, "--json"], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if done.returncode:
        raise SystemExit(f"lifelong {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def mean_std(values: list[float]) -> str:
    pct = [100 * v for v in values]
    return f"{statistics.mean(pct):.2f} ± {statistics.stdev(pct) if len(pct) > 1 else 0.0:.2f}"


def table(records: list[dict], keys: tuple[str, ...] = ("acc", "bwt", "forgetting")) -> None:
    rows: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        rows[r["strategy"]].append(r)
    print("| strategy | seeds | " + " | ".join(keys) + " | train s |")
    print("| --- | --- | " + " | ".join("---" for _ in keys) + " | --- |")
    for name, rs in rows.items():
        print(f"| {name} | {len(rs)} | " + " | ".join(mean_std([r[k] for r in rs]) for k in keys)
              + f" | {statistics.mean(r['train_seconds'] for r in rs):.1f} |")


def cache(threads: str) -> None:
    """A first run (every text encoded, in an empty cache) and a second one (features read back)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"XDG_CACHE_HOME": tmp}
        for which in ("first (encodes 12,613 texts)", "second (cached)"):
            t0 = time.perf_counter()
            rec = lifelong("run", *FROZEN, "--strategy", "naive", "--threads", threads, env=env)[0]
            wall = time.perf_counter() - t0
            print(f"{which}: wall {wall:.1f} s, ACC {100 * rec['acc']:.2f}, peak RSS {rec['peak_rss_mb']:.0f} MB")
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["cache", "fortunes", "top", "bbc"])
    p.add_argument("--seeds", default="3")
    p.add_argument("--threads", default="1")
    args = p.parse_args()
    common = ["--seeds", args.seeds, "--threads", args.threads]
    if args.part == "cache":
        cache(args.threads)
    elif args.part == "fortunes":
        for scenario, strategies in STRATEGIES.items():
            print(f"\nsplit-fortunes, {scenario}-incremental, frozen MiniLM features (cached), linear head")
            table(lifelong("run", *FROZEN, "--scenario", scenario, "--strategy", strategies, *common))
    elif args.part == "top":
        print("\nsplit-fortunes, class-incremental, top 2 MiniLM layers + head trained, 50 texts per class")
        table(lifelong("run", "--benchmark", "split-fortunes", "--model", "minilm", "--freeze", "top-2", "--subset",
                       "50", "--lr", "1e-4", "--epochs", "5", "--batch-size", "16",
                       "--strategy", "naive,joint,ewc,replay", *common))
    else:
        records = lifelong("transfer", "--model", "minilm", "--target", "bbc-news", "--shots", "5,10,50,all",
                           "--method", "probe,finetune,lpft,scratch", "--freeze", "top-2", "--batch-size", "16",
                           *common)
        cells: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r in records:
            cells[(r["method"], str(r["shots"]))].append(r["acc"])
        shots = ["5", "10", "50", "all"]
        print("\nBBC News, target test accuracy (%) by labelled samples per class, from all-MiniLM-L6-v2")
        print("| method | " + " | ".join(shots) + " |\n| --- | " + " | ".join("---" for _ in shots) + " |")
        for method in dict.fromkeys(r["method"] for r in records):
            print(f"| {method} | " + " | ".join(mean_std(cells[(method, k)]) for k in shots) + " |")


if __name__ == "__main__":
    main()
