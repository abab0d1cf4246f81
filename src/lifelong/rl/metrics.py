"""Continual RL metrics as Continual World defines them (Wolczyk et al. 2021, sec. 3.1): pure functions of
performance curves.

p_i(t) in [0, 1] is the performance on task i after t environment steps of the whole sequence (here the
normalised return, `normalise`), measured at evaluation points `steps` (the sequence's global step, points
at 0 and at each task's end included); task i (0-based) is learnt during [iΔ, (i+1)Δ], Δ = steps per task.

    average performance  P = (1/T) sum_i p_i(TΔ)
    forgetting           F = (1/T) sum_i F_i,   F_i = p_i((i+1)Δ) − p_i(TΔ)   (the last task's is 0)
    forward transfer     FT = (1/T) sum_i FT_i, FT_i = (AUC_i − AUC^b_i) / (1 − AUC^b_i),
                         AUC_i = (1/Δ) ∫ over task i's interval of p_i,  AUC^b_i = the same for a reference
                         run that learns task i alone from scratch (the trapezoid rule over the points)

FT_i is None where the reference is perfect from its start (AUC^b_i = 1): there is nothing to transfer.
With T x T rows of the curve at the task ends, P is `lifelong.metrics.average_accuracy` of that matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import metrics as cl_metrics

Curve = Sequence[Sequence[float]] | np.ndarray  # (points, tasks): p_i at each evaluation point


def normalise(returns: float | Sequence[float] | np.ndarray, low: float, high: float) -> np.ndarray:
    """(R − low) / (high − low), clipped to [0, 1] as a success rate is."""
    if not high > low:
        raise ValueError(f"the score bounds need high > low, got {low}, {high}")
    return np.clip((np.asarray(returns, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def _points(curve: Curve, steps: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    p, s = np.asarray(curve, dtype=np.float64), np.asarray(steps, dtype=np.int64)
    if p.ndim != 2 or len(s) != len(p) or len(p) == 0:
        raise ValueError(f"the curve must be (points, tasks) with one step per point, got {p.shape} and {len(s)} steps")
    if np.any(np.diff(s) <= 0):
        raise ValueError("the evaluation steps must increase")
    return p, s


def _at(steps: np.ndarray, step: int) -> int:
    hit = np.flatnonzero(steps == step)
    if not len(hit):
        raise ValueError(f"no evaluation point at step {step}: evaluate at 0 and at each task's end")
    return int(hit[0])


def task_end_matrix(curve: Curve, steps: Sequence[int], per_task: int) -> np.ndarray:
    """R[i, j] = p_j((i+1)Δ): performance on task j at the end of task i (T x T)."""
    p, s = _points(curve, steps)
    return np.stack([p[_at(s, (i + 1) * per_task)] for i in range(p.shape[1])])


def average_performance(curve: Curve, steps: Sequence[int], per_task: int) -> float:
    """P = (1/T) sum_i p_i(TΔ)."""
    return cl_metrics.average_accuracy(task_end_matrix(curve, steps, per_task))


def forgetting_per_task(curve: Curve, steps: Sequence[int], per_task: int) -> list[float]:
    """F_i = p_i((i+1)Δ) − p_i(TΔ) for every task."""
    r = task_end_matrix(curve, steps, per_task)
    return [float(r[i, i] - r[-1, i]) for i in range(len(r))]


def forgetting(curve: Curve, steps: Sequence[int], per_task: int) -> float:
    """F = (1/T) sum_i F_i."""
    return float(np.mean(forgetting_per_task(curve, steps, per_task)))


def auc(values: Sequence[float] | np.ndarray, steps: Sequence[int] | np.ndarray, start: int, end: int) -> float:
    """(1/(end − start)) ∫ from start to end of the curve through (steps, values), by the trapezoid rule;
    `start` and `end` must be evaluation points."""
    v, s = np.asarray(values, dtype=np.float64), np.asarray(steps, dtype=np.int64)
    lo, hi = _at(s, start), _at(s, end)
    x, y = s[lo:hi + 1].astype(np.float64), v[lo:hi + 1]
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2 / (end - start))


def forward_transfer_per_task(curve: Curve, steps: Sequence[int], per_task: int,
                              references: Sequence[tuple[Sequence[float], Sequence[int]]]) -> list[float | None]:
    """FT_i for every task; `references[i]` = (p^b_i at its points, the points' steps from 0 to Δ) of the
    single-task run of task i."""
    p, s = _points(curve, steps)
    if len(references) != p.shape[1]:
        raise ValueError(f"one reference run per task: {p.shape[1]} tasks, {len(references)} references")
    out: list[float | None] = []
    for i, (ref, ref_steps) in enumerate(references):
        mine = auc(p[:, i], s, i * per_task, (i + 1) * per_task)
        base = auc(ref, ref_steps, 0, per_task)
        out.append(None if base >= 1 else (mine - base) / (1 - base))
    return out


def forward_transfer(curve: Curve, steps: Sequence[int], per_task: int,
                     references: Sequence[tuple[Sequence[float], Sequence[int]]]) -> float | None:
    """FT = the mean of the defined FT_i (None if none is)."""
    values = [v for v in forward_transfer_per_task(curve, steps, per_task, references) if v is not None]
    return float(np.mean(values)) if values else None
