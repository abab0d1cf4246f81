"""Cumulative training: retrain on every task seen so far (an upper bound that grows with time)."""

from __future__ import annotations

from ..data import Stream, Task
from .base import Strategy


class Cumulative(Strategy):
    """While learning task t, train on the union of tasks 0..t (all data seen so far), continuing
    from the current weights. Costs O(t) data per task; memory grows without bound."""

    name = "cumulative"
    summary = "retrain on all data seen so far at every task"

    def training_tasks(self, task: Task, stream: Stream) -> list[Task]:
        return list(stream)[: task.id + 1]
