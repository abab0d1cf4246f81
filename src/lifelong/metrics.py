"""Continual-learning metrics: pure functions of the accuracy matrix.

R[i, j] is the test accuracy on task j after training on tasks 0..i (T x T); b[j] is the accuracy
on task j of the model at random initialisation (the reference row FWT compares against).
Definitions follow Lopez-Paz & Ranzato 2017 (ACC, BWT, FWT), Chaudhry et al. 2018 (forgetting)
and Riemer et al. 2019 (learning accuracy). With a single task, BWT, FWT and forgetting are 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Matrix = Sequence[Sequence[float]] | np.ndarray


def _square(r: Matrix) -> np.ndarray:
    m = np.asarray(r, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"the accuracy matrix must be square T x T with T >= 1, got shape {m.shape}")
    return m


def average_accuracy(r: Matrix) -> float:
    """ACC = (1/T) sum_j R[T-1, j]: mean accuracy over all tasks after the last one."""
    m = _square(r)
    return float(m[-1].mean())


def backward_transfer(r: Matrix) -> float:
    """BWT = 1/(T-1) sum_{j<T-1} (R[T-1, j] - R[j, j]); negative values mean forgetting."""
    m = _square(r)
    t = len(m)
    if t == 1:
        return 0.0
    return float(np.mean(m[-1, :-1] - np.diag(m)[:-1]))


def forward_transfer(r: Matrix, b: Sequence[float]) -> float:
    """FWT = 1/(T-1) sum_{j>=1} (R[j-1, j] - b[j]): how much earlier tasks help a task not yet seen."""
    m = _square(r)
    ref = np.asarray(b, dtype=np.float64)
    if ref.shape != (len(m),):
        raise ValueError(f"the reference row needs {len(m)} entries, got {ref.shape}")
    t = len(m)
    if t == 1:
        return 0.0
    return float(np.mean([m[j - 1, j] - ref[j] for j in range(1, t)]))


def forgetting(r: Matrix) -> float:
    """Average forgetting: 1/(T-1) sum_{j<T-1} max_{j<=l<T-1} (R[l, j] - R[T-1, j]). Only rows from
    task j's own training on count (Chaudhry et al. 2018): accuracy before task j was learnt (chance,
    or a lucky guess of an untrained head) is nothing to forget."""
    m = _square(r)
    t = len(m)
    if t == 1:
        return 0.0
    return float(np.mean([m[j: t - 1, j].max() - m[-1, j] for j in range(t - 1)]))


def learning_accuracy(r: Matrix) -> float:
    """LA = (1/T) sum_j R[j, j]: accuracy on each task right after learning it (plasticity)."""
    return float(np.diag(_square(r)).mean())


def summary(r: Matrix, b: Sequence[float]) -> dict[str, float]:
    """All matrix metrics by their report names."""
    return {
        "acc": average_accuracy(r),
        "bwt": backward_transfer(r),
        "fwt": forward_transfer(r, b),
        "forgetting": forgetting(r),
        "learning_accuracy": learning_accuracy(r),
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) over seeds."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
