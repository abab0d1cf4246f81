"""Tasks and streams: the tensors every other part of the library trains on.

A split's inputs are a tensor (in memory, on the training device when they fit) or a lazily
loaded collection (`LazyInputs`, e.g. an image folder) that loads a batch when indexed; labels are
always an int64 tensor. Code above `data/` only uses `Split.batch`, `Split.subset` and `Split.cat`,
so it never needs to know which one it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

import torch
from torch import Tensor

from ..errors import DataError

SCENARIOS = {
    "class": "class-incremental: one head over all classes, no task id at test time",
    "task": "task-incremental: a head per task, the task id is given at train and test time",
    "domain": "domain-incremental: same labels in every task, the input distribution shifts, no task id",
}


@runtime_checkable
class LazyInputs(Protocol):
    """Inputs kept on disk: `load(idx)` returns a float tensor batch, `subset(idx)` a smaller view."""

    shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def load(self, idx: Tensor) -> Tensor: ...

    def subset(self, idx: Tensor) -> Self: ...

    def cat(self, others: Sequence[Self]) -> Self: ...


Inputs = Tensor | LazyInputs


@dataclass
class Split:
    """Inputs `x` and int64 labels `y` of one part (train, test or validation) of a task."""

    x: Inputs
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        x = self.x[idx] if isinstance(self.x, Tensor) else self.x.load(idx)
        return x, self.y[idx]

    def batches(self, chunks: Iterable[Tensor]) -> Iterator[tuple[Tensor, Tensor]]:
        """`batch(idx)` for each index tensor of `chunks` in turn (the training loop's batches)."""
        for idx in chunks:
            yield self.batch(idx)

    def subset(self, idx: Tensor) -> Split:
        x = self.x[idx] if isinstance(self.x, Tensor) else self.x.subset(idx)
        return Split(x, self.y[idx])

    def to(self, device: torch.device | str) -> Split:
        x = self.x.to(device) if isinstance(self.x, Tensor) else self.x
        return Split(x, self.y.to(device))

    @staticmethod
    def cat(splits: Sequence[Split]) -> Split:
        first = splits[0].x
        if isinstance(first, Tensor):
            x: Inputs = torch.cat([s.x for s in splits])  # type: ignore[misc]
        else:
            x = first.cat([s.x for s in splits[1:]])  # type: ignore[misc]
        return Split(x, torch.cat([s.y for s in splits]))


@dataclass
class Features(Split):
    """A Split whose inputs are one tensor in memory: features computed once (`models.extract`)."""

    x: Tensor

    def subset(self, idx: Tensor) -> Features:
        return Features(self.x[idx], self.y[idx])


@dataclass
class Dataset:
    """A labelled data set with a train and a test split; labels are 0..num_classes-1."""

    name: str
    train: Split
    test: Split
    class_names: list[str]
    input_shape: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class Task:
    """One task of a stream. `classes` are the data set's class ids it holds; `units` the model
    outputs its labels use (see Stream)."""

    id: int
    train: Split
    test: Split
    classes: list[int]
    units: list[int]
    valid: Split | None = None


@dataclass
class Stream:
    """A sequence of tasks and the scenario that says how outputs are shared between them.

    - class-incremental: one head over all classes seen so far; no task id at test time.
    - task-incremental: each task owns a block of output units (a head of its own); the task id
      selects the head at train and test time, which `mask` applies.
    - domain-incremental: all tasks share the same output units; no task id.
    """

    tasks: list[Task]
    scenario: str
    n_outputs: int
    input_shape: tuple[int, ...]
    name: str = "stream"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise DataError(f"unknown scenario {self.scenario!r}: choose one of {', '.join(SCENARIOS)}")
        masks = torch.zeros(len(self.tasks), self.n_outputs, dtype=torch.bool)
        for task in self.tasks:
            if self.scenario == "task" and len(task.units) < 2:
                raise DataError(f"task {task.id} has a single class: in a task-incremental stream its head would "
                                "have one output (loss 0, accuracy 100% whatever is learnt); give every task >= 2 "
                                "classes or use the class-incremental scenario")
            masks[task.id, task.units] = True
        self.masks = masks

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __getitem__(self, i: int) -> Task:
        return self.tasks[i]

    def mask(self, logits: Tensor, t: Tensor) -> Tensor:
        """Task-incremental: keep only the outputs of each sample's task; other scenarios: as is."""
        if self.scenario != "task":
            return logits
        keep = self.masks.to(logits.device)[t]
        return logits.masked_fill(~keep, torch.finfo(logits.dtype).min)


def stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out `fraction` of each class (chosen with `seed`): returns (rest, held out)."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    g = torch.Generator().manual_seed(seed)
    held = []
    for c in torch.unique(split.y):
        idx = (split.y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n = int(round(len(idx) * fraction))
        if n == 0 or n == len(idx):
            raise DataError(f"class {int(c)} has {len(idx)} samples: too few to hold out {fraction:.0%} of them")
        held.append(idx[:n])
    out = torch.cat(held).sort().values
    keep = torch.ones(len(split), dtype=torch.bool)
    keep[out] = False
    return split.subset(keep.nonzero().flatten()), split.subset(out)
