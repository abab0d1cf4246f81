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


def average_anytime_accuracy(anytime: Sequence[float]) -> float:
    """AAA: the mean of the anytime accuracies a_1..a_P measured every k samples over the stream (each on
    held-out samples of the classes seen so far): Koh et al. 2022's A_AUC over evenly spaced points,
    Caccia et al. 2022's average anytime accuracy."""
    a = np.asarray(anytime, dtype=np.float64)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(f"the anytime accuracies must be a non-empty list, got shape {a.shape}")
    return float(a.mean())


def _curve(samples: Sequence[int], tasks: Matrix, ends: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The per-task accuracy curve A[p, j] (P points x T tasks) and, for each hidden boundary, the index
    of the point measured there (the first with at least that many samples met)."""
    a, s = np.asarray(tasks, dtype=np.float64), np.asarray(samples)
    if a.ndim != 2 or a.shape != (len(s), len(ends)):
        raise ValueError(f"the task curve must be {len(s)} points x {len(ends)} tasks, got shape {a.shape}")
    at = np.searchsorted(s, np.asarray(ends), side="left")
    if (at >= len(s)).any():
        raise ValueError("every hidden boundary needs a point measured at or after it")
    return a, at


def online_forgetting(samples: Sequence[int], tasks: Matrix, ends: Sequence[int]) -> float:
    """Average forgetting at the curve's resolution: 1/(T-1) sum_{j<T-1} (max_{p >= e_j} A[p, j] - A[P, j]),
    with e_j the point at the end of task j's segment: the best accuracy on task j from then on, at any
    measured point (not only at boundaries), minus the last. 0 with one task."""
    a, at = _curve(samples, tasks, ends)
    t = a.shape[1]
    return 0.0 if t == 1 else float(np.mean([a[at[j]:, j].max() - a[-1, j] for j in range(t - 1)]))


def stability_gap(samples: Sequence[int], tasks: Matrix, ends: Sequence[int]) -> float:
    """The stability gap (De Lange, van de Ven & Tuytelaars 2023): right after each shift k (the end of
    segment k), how far an old task j <= k's accuracy dips below its value at the shift,
    max(0, A[e_k, j] - min_{e_k < p <= e_{k+1}} A[p, j]), averaged over shifts and old tasks; measured at
    the curve's resolution, so evaluate often (small `eval_every`) to see it. 0 with one task."""
    a, at = _curve(samples, tasks, ends)
    gaps = [max(0.0, a[at[k], j] - a[at[k] + 1: at[k + 1] + 1, j].min())
            for k in range(len(ends) - 1) if at[k + 1] > at[k] for j in range(k + 1)]
    return float(np.mean(gaps)) if gaps else 0.0


def min_accuracy(samples: Sequence[int], tasks: Matrix, ends: Sequence[int]) -> float:
    """min-ACC at the end of the stream (De Lange et al. 2023): for each task j but the last, its
    lowest accuracy at any point after its segment, averaged over those tasks: the worst an old task got.
    The last task's accuracy with one task."""
    a, at = _curve(samples, tasks, ends)
    t = a.shape[1]
    lows = [a[at[j] + 1:, j].min() for j in range(t - 1) if at[j] + 1 < len(a)]
    return float(np.mean(lows)) if lows else float(a[-1, -1])


def worst_case_accuracy(samples: Sequence[int], tasks: Matrix, ends: Sequence[int]) -> float:
    """WC-ACC at the end of the stream (De Lange et al. 2023): (1/T) A[P, T-1] + (1 - 1/T) min-ACC,
    the last task's final accuracy traded against the worst the old ones got."""
    a = np.asarray(tasks, dtype=np.float64)
    t = a.shape[1]
    return float(a[-1, -1] / t + (1 - 1 / t) * min_accuracy(samples, tasks, ends))


def online_summary(curve: dict) -> dict[str, float]:
    """The online metrics of a curve (`Trainer.fit_online`'s: "samples", "anytime", "tasks", "ends", and
    "regular", which points are on the `eval_every` grid): AAA over the grid's points (all points if none
    is marked), the final anytime accuracy, online forgetting, the stability gap, min-ACC and WC-ACC."""
    s, tasks, ends, anytime = curve["samples"], curve["tasks"], curve["ends"], curve["anytime"]
    grid = [a for a, on in zip(anytime, curve.get("regular", [])) if on] or anytime
    return {"aaa": average_anytime_accuracy(grid), "final_anytime": float(anytime[-1]),
            "online_forgetting": online_forgetting(s, tasks, ends), "stability_gap": stability_gap(s, tasks, ends),
            "min_acc": min_accuracy(s, tasks, ends), "wc_acc": worst_case_accuracy(s, tasks, ends)}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) over seeds."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
