"""Accuracy of a model (or a strategy's predictions) on every task of a stream, and what a fit measured."""

from __future__ import annotations

import dataclasses
import platform
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import distributed, metrics
from .data import Split, Stream

Predict = Callable[[Tensor, Tensor], Tensor]


@torch.no_grad()
def correct(predict: Predict, split: Split, task_id: int, stream: Stream, device: torch.device,
            batch_size: int = 1024) -> Tensor:
    """How many samples of this rank's share of `split` (all of it in one process) are classified
    correctly; task-incremental streams mask other tasks' outputs."""
    rows = distributed.shard(torch.arange(len(split), device=split.y.device))
    count = torch.zeros((), dtype=torch.long, device=device)
    for x, y in split.batches(rows.split(batch_size)):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        t = torch.full_like(y, task_id)
        out = stream.mask(predict(x, t), t)
        count += (out.argmax(1) == y).sum()
    return count


def accuracy(predict: Predict, split: Split, task_id: int, stream: Stream, device: torch.device,
             batch_size: int = 1024) -> float:
    """Fraction of `split` classified correctly (under data-parallel training, every rank evaluates its
    share and the counts are summed)."""
    count = correct(predict, split, task_id, stream, device, batch_size)
    distributed.all_reduce_sum([count])
    return int(count) / len(split)


def accuracy_row(predict: Predict, stream: Stream, device: torch.device, batch_size: int = 1024) -> list[float]:
    """Test accuracy on every task of the stream, seen or not (row i of the accuracy matrix)."""
    counts = torch.stack([correct(predict, task.test, task.id, stream, device, batch_size) for task in stream])
    distributed.all_reduce_sum([counts])
    return [int(c) / len(task.test) for c, task in zip(counts.tolist(), stream)]


@dataclass
class Result:
    """What a `fit` produced: the accuracy matrix and everything measured along the way."""

    matrix: list[list[float]]
    reference: list[float]
    losses: list[list[float]]
    task_seconds: list[float]
    train_seconds: float
    eval_seconds: float
    samples_seen: int
    peak_rss_mb: float
    strategy_memory_bytes: int
    stream: dict[str, Any] = field(default_factory=dict)
    online: dict[str, Any] | None = None  # a task-free fit's curve (`Trainer.fit_online`), else None

    @property
    def metrics(self) -> dict[str, float]:
        """ACC, BWT, FWT, forgetting, learning accuracy, time, throughput and memory."""
        return {
            **metrics.summary(self.matrix, self.reference),
            "train_seconds": self.train_seconds,
            "samples_per_second": self.samples_seen / self.train_seconds if self.train_seconds > 0 else 0.0,
            "peak_rss_mb": self.peak_rss_mb,
            "strategy_memory_bytes": self.strategy_memory_bytes,
            **(metrics.online_summary(self.online) if self.online is not None else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "metrics": self.metrics}

    def plot(self, out_dir: str | Path, label: str = "") -> list[Path]:
        """Write the accuracy-matrix heat map and per-task accuracy curves as PNG files."""
        from .plots import plot_curves, plot_matrix, save_png

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"-{label}" if label else ""
        return [save_png(plot_matrix(self.matrix, label), out / f"matrix{stem}.png"),
                save_png(plot_curves(self.matrix, label), out / f"curves{stem}.png")]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024
