"""Accuracy of a model (or a strategy's predictions) on every task of a stream."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .data import Split, Stream

Predict = Callable[[Tensor, Tensor], Tensor]


@torch.no_grad()
def accuracy(predict: Predict, split: Split, task_id: int, stream: Stream, device: torch.device,
             batch_size: int = 1024) -> float:
    """Fraction of `split` classified correctly; task-incremental streams mask other tasks' outputs."""
    n = len(split)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for i in range(0, n, batch_size):
        idx = torch.arange(i, min(i + batch_size, n), device=split.y.device)
        x, y = split.batch(idx)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        t = torch.full_like(y, task_id)
        out = stream.mask(predict(x, t), t)
        correct += (out.argmax(1) == y).sum()
    return int(correct) / n


def accuracy_row(predict: Predict, stream: Stream, device: torch.device, batch_size: int = 1024) -> list[float]:
    """Test accuracy on every task of the stream, seen or not (row i of the accuracy matrix)."""
    return [accuracy(predict, task.test, task.id, stream, device, batch_size) for task in stream]
