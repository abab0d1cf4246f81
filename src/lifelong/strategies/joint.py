"""Joint (offline) training on all tasks' data at once: the upper bound of every report."""

from __future__ import annotations

from ..data import Stream, Task
from .base import Strategy


class Joint(Strategy):
    """Trains once, during the first task, on the union of every task's training data (for the same
    number of epochs), then no more. Its accuracy-matrix rows are therefore all the same: ACC is the
    joint model's accuracy and BWT/forgetting are 0 by construction."""

    name = "joint"
    summary = "offline training on all tasks at once (upper bound)"

    def training_tasks(self, task: Task, stream: Stream) -> list[Task]:
        return list(stream) if task.id == 0 else []
