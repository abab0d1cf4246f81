"""Naive fine-tuning: train on each task in turn with nothing against forgetting (the lower bound)."""

from __future__ import annotations

from .base import TASK_BASED, Strategy


class Naive(Strategy):
    """Plain sequential fine-tuning; the baseline every continual method must beat."""

    name = "naive"
    summary = "sequential fine-tuning, nothing against forgetting (lower bound)"
    scenarios = TASK_BASED | {"task-free"}  # it uses no task boundary
