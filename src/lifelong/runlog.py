"""Logs of finished fits: CSV files always, TensorBoard event files when `tensorboard` is installed.

A run folder gets `metrics.csv` (one row per (strategy, seed) fit), `losses.csv` (mean training loss
of every epoch of every task) and `matrix.csv` (the accuracy matrix, long format). With TensorBoard,
`tensorboard/<strategy>-seed<seed>/` holds the same numbers as scalars (`tensorboard --logdir DIR`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .extras import need
from .files import atomic_write_bytes

METRIC_KEYS = ("acc", "bwt", "fwt", "forgetting", "learning_accuracy", "train_seconds", "samples_per_second",
               "peak_rss_mb", "strategy_memory_bytes")


def _write_csv(path: Path, header: Sequence[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def write_csv(out: Path, records: Sequence[dict[str, Any]]) -> None:
    """metrics.csv, losses.csv and matrix.csv in `out` (each written atomically)."""
    ident = lambda r: [r["strategy"], r["benchmark"], r["scenario"], r["seed"]]  # noqa: E731
    head = ["strategy", "benchmark", "scenario", "seed"]
    _write_csv(out / "metrics.csv", head + list(METRIC_KEYS),
               [ident(r) + [r["metrics"][k] for k in METRIC_KEYS] for r in records])
    _write_csv(out / "losses.csv", head + ["task", "epoch", "loss"],
               [ident(r) + [task, epoch, loss] for r in records
                for task, epochs in enumerate(r["losses"]) for epoch, loss in enumerate(epochs)])
    _write_csv(out / "matrix.csv", head + ["after_task", "task", "accuracy"],
               [ident(r) + [i, j, acc] for r in records
                for i, row in enumerate(r["matrix"]) for j, acc in enumerate(row)])


def check_tensorboard() -> None:
    """Refuse `tensorboard` logs before any training when the package is missing (`MissingExtra`, which
    names the extra to install)."""
    need("tensorboard", "tensorboard")


def write_tensorboard(out: Path, records: Sequence[dict[str, Any]]) -> None:
    """One TensorBoard log folder per (strategy, seed) under `out/tensorboard/`."""
    check_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    for r in records:
        writer = SummaryWriter(str(out / "tensorboard" / f"{r['strategy'].replace('+', '_')}-seed{r['seed']}"))
        try:
            step = 0
            for epochs in r["losses"]:
                for loss in epochs:
                    writer.add_scalar("loss", loss, step)
                    step += 1
            for i, row in enumerate(r["matrix"]):
                for j, acc in enumerate(row):
                    writer.add_scalar(f"accuracy/task{j}", acc, i)
                writer.add_scalar("accuracy/mean_seen", sum(row[: i + 1]) / (i + 1), i)
            for key in METRIC_KEYS:
                writer.add_scalar(f"metrics/{key}", r["metrics"][key], 0)
        finally:
            writer.close()
