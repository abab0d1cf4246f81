"""Tasks and streams: the tensors every other part of the library trains on.

A split's inputs are a tensor (in memory as they come, e.g. uint8 images, on the training device when
they fit) or a lazily loaded collection (`LazyInputs`, e.g. an image folder) that loads a batch when
indexed; labels are always an int64 tensor. A split's `transform` (`transforms`) turns each batch into
the float inputs the model sees: a permuted or rotated task shares its data set's tensors. Code above
`data/` only uses `Split.batch`, `Split.batches`, `Split.subset` and `Split.cat` (`Split.inputs` for small
sets needed at once), so it never needs to know which one it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from ..errors import DataError
from .transforms import Transform

SCENARIOS = {
    "class": "class-incremental: one head over all classes, no task id at test time",
    "task": "task-incremental: a head per task, the task id is given at train and test time",
    "domain": "domain-incremental: same labels in every task, the input distribution shifts, no task id",
}
TASK_FREE = "task-free"  # a stream met once without boundaries or task ids (`data.online`)


@runtime_checkable
class LazyInputs(Protocol):
    """Inputs kept on disk: `load(idx)` returns a tensor batch, `subset(idx)` a smaller view. An optional
    `batches(chunks)` yields the batches of a sequence of index tensors in order (e.g. decoded in worker
    processes)."""

    shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def load(self, idx: Tensor) -> Tensor: ...

    def subset(self, idx: Tensor) -> Self: ...

    def cat(self, others: Sequence[Self]) -> Self: ...


Inputs = Tensor | LazyInputs


def _load(x: Inputs, transform: Transform | None, idx: Tensor) -> Tensor:
    xb = x[idx] if isinstance(x, Tensor) else x.load(idx)
    return transform(xb) if transform is not None else xb


def _to(x: Inputs, device: torch.device | str) -> Inputs:
    """In-memory inputs on `device`; a tensor that several splits share (a permuted stream's images) is
    moved only once. Inputs loaded from disk stay where they are."""
    if isinstance(x, Concat):
        return x.to(device)
    if not isinstance(x, Tensor) or x.device == torch.device(device):
        return x
    moved = _MOVED.setdefault(x, {})
    if str(device) not in moved:
        moved[str(device)] = x.to(device)
    return moved[str(device)]


_MOVED: WeakIdKeyDictionary = WeakIdKeyDictionary()


@dataclass
class Split:
    """Inputs `x` and int64 labels `y` of one part (train, test or validation) of a task.

    `x` holds the inputs as stored (uint8 images, say); `transform`, when given, turns each batch into
    what the model sees (`Split.batch`), so `x` is not the model's input: read it through `batch`,
    `batches` or `inputs`."""

    x: Inputs
    y: Tensor
    transform: Transform | None = None

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """The inputs (transformed) and labels of the samples `idx`."""
        return _load(self.x, self.transform, idx), self.y[idx]

    def batches(self, chunks: Iterable[Tensor]) -> Iterator[tuple[Tensor, Tensor]]:
        """`batch(idx)` for each index tensor of `chunks` in turn (the training loop's batches). Lazy
        inputs with worker processes (`image_folder(workers=N)`) decode them in parallel, reading
        `chunks` ahead."""
        many = getattr(self.x, "batches", None) if not isinstance(self.x, Tensor) else None
        if many is None:
            for idx in chunks:
                yield self.batch(idx)
            return
        chunks = list(chunks)
        for idx, xb in zip(chunks, many(chunks)):
            yield (self.transform(xb) if self.transform is not None else xb), self.y[idx]

    def inputs(self) -> Tensor:
        """Every input, transformed, as one tensor: for small sets that are needed at once (features,
        few-shot pools), never for a whole training stream."""
        if isinstance(self.x, Tensor) and self.transform is None:
            return self.x
        return self.batch(torch.arange(len(self), device=self.y.device))[0]

    def subset(self, idx: Tensor) -> Split:
        x = self.x[idx] if isinstance(self.x, Tensor) else self.x.subset(idx)
        return Split(x, self.y[idx], self.transform)

    def to(self, device: torch.device | str) -> Split:
        transform = self.transform.to(device) if self.transform is not None else None
        return Split(_to(self.x, device), self.y.to(device), transform)

    @staticmethod
    def cat(splits: Sequence[Split]) -> Split:
        """The samples of `splits` in order. Splits that share one transform are concatenated as stored;
        others (the tasks of a permuted stream) become a `Concat` that loads each part's rows through its
        own transform, so nothing is converted or copied up front."""
        first = splits[0]
        y = torch.cat([s.y for s in splits])
        if all(s.transform is first.transform for s in splits):
            if all(isinstance(s.x, Tensor) for s in splits):
                return Split(torch.cat([s.x for s in splits]), y, first.transform)  # type: ignore[misc]
            if all(type(s.x) is type(first.x) and not isinstance(s.x, Concat) for s in splits):
                rest = [s.x for s in splits[1:]]
                return Split(first.x.cat(rest), y, first.transform)  # type: ignore[union-attr, arg-type]
        return Split(Concat([(s.x, s.transform) for s in splits]), y)


class Concat:
    """Several splits' inputs as one, each part loaded through its own transform (`Split.cat`); `rows`
    (when given) are the positions in the concatenation that this view holds, in order."""

    def __init__(self, parts: Sequence[tuple[Inputs, Transform | None]], rows: Tensor | None = None) -> None:
        self.parts = list(parts)
        self.starts = torch.tensor([0] + [len(x) for x, _ in self.parts]).cumsum(0)
        self.rows = rows
        n = len(rows) if rows is not None else int(self.starts[-1])
        self.shape: tuple[int, ...] = (n, *self.parts[0][0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def load(self, idx: Tensor) -> Tensor:
        rows = idx if self.rows is None else self.rows[idx]
        part = torch.bucketize(rows, self.starts.to(rows.device), right=True) - 1
        out: Tensor | None = None
        for k in part.unique().tolist():
            where = (part == k).nonzero().flatten()
            x, transform = self.parts[k]
            xb = _load(x, transform, rows[where] - int(self.starts[k]))
            if out is None:
                out = xb.new_empty((len(rows), *xb.shape[1:]))
            out[where] = xb
        if out is None:  # no rows
            x, transform = self.parts[0]
            return _load(x, transform, rows)
        return out

    def subset(self, idx: Tensor) -> Concat:
        return Concat(self.parts, idx if self.rows is None else self.rows[idx])

    def cat(self, others: Sequence[Concat]) -> Concat:
        return Concat([(c, None) for c in (self, *others)])

    def to(self, device: torch.device | str) -> Concat:
        parts = [(_to(x, device), t.to(device) if t is not None else None) for x, t in self.parts]
        return Concat(parts, self.rows.to(device) if self.rows is not None else None)


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
        if self.scenario not in SCENARIOS and self.scenario != TASK_FREE:
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


def training_split(tasks: Sequence[Task]) -> tuple[Split, Tensor]:
    """The training splits of `tasks` as one split (in order), with each sample's task id."""
    train = tasks[0].train if len(tasks) == 1 else Split.cat([t.train for t in tasks])
    return train, torch.cat([torch.full_like(t.train.y, t.id) for t in tasks])


def per_class(split: Split, n: int | None, seed: int, at_most: bool = False) -> Tensor:
    """Sorted indices of `n` samples of every class of `split`, drawn from `seed` (all of them for None). A
    class with fewer samples is refused, or, with `at_most`, keeps all of its own."""
    if n is None:
        return torch.arange(len(split))
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in torch.unique(split.y).tolist():
        idx = (split.y == c).nonzero().flatten()
        if len(idx) < n and not at_most:
            raise DataError(f"class {c} has {len(idx)} training samples, fewer than the {n} shots asked for")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    return torch.cat(picks).sort().values


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
