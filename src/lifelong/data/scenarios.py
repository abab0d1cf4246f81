"""Scenarios: functions from a data set to a Stream of tasks (van de Ven et al. 2022's three types).

- `split`: the classes are cut into groups, one group per task (Split MNIST, Zenke et al. 2017).
- `permuted`: every task applies its own fixed pixel permutation (Goodfellow et al. 2013).
- `rotated`: every task rotates the images by its own angle (Lopez-Paz & Ranzato 2017).
- `from_tasks`: the user's own tasks.

Class order, permutations and angles come from the seed and are recorded in `Stream.info`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import DataError
from .sources import check_arrays
from .stream import SCENARIOS, Dataset, Split, Stream, Task, stratified_split
from .transforms import Permute, Rotate, Transform, then


def _check_scenario(scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise DataError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")


def _check_n_tasks(n_tasks: int, most: int, what: str) -> None:
    if not isinstance(n_tasks, int) or n_tasks < 1 or n_tasks > most:
        raise DataError(f"n_tasks must be a whole number from 1 to {most} ({what}), got {n_tasks!r}")


def _valid(split: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    if fraction == 0:
        return split, None
    return stratified_split(split, fraction, seed)


def split(
    dataset: Dataset,
    n_tasks: int,
    scenario: str = "class",
    class_order: Sequence[int] | None = None,
    seed: int = 0,
    valid_fraction: float = 0.0,
) -> Stream:
    """Cut the classes (in `class_order`, else a random order drawn from `seed`) into `n_tasks`
    consecutive groups. Labels become the class's position in the order (class/task-incremental;
    task t owns the units of its group) or its position within its task (domain-incremental)."""
    _check_scenario(scenario)
    c = dataset.num_classes
    if class_order is None:
        order = torch.randperm(c, generator=torch.Generator().manual_seed(seed)).tolist()
    else:
        order = [int(k) for k in class_order]
        if len(set(order)) != len(order) or not all(0 <= k < c for k in order):
            raise DataError(f"class_order must list distinct class ids from 0 to {c - 1}, got {order}")
        if len(order) != c:
            missing = sorted(set(range(c)) - set(order))
            raise DataError(f"class_order must list all {c} classes of {dataset.name} once, got {len(order)} "
                            f"(missing {missing}): to train on fewer classes, select them first "
                            "(`data.select_classes`)")
    _check_n_tasks(n_tasks, len(order), f"{len(order)} classes to split")
    groups = [g.tolist() for g in np.array_split(np.array(order), n_tasks)]
    position = torch.full((c,), -1, dtype=torch.long)
    position[order] = torch.arange(len(order))
    tasks, start = [], 0
    for t, group in enumerate(groups):
        units = list(range(start, start + len(group)))
        offset = start if scenario == "domain" else 0
        parts = []
        for part in (dataset.train, dataset.test):
            idx = torch.isin(part.y, torch.tensor(group)).nonzero().flatten()
            if len(idx) == 0:
                raise DataError(f"task {t} (classes {group}) has no samples in {dataset.name}")
            sub = part.subset(idx)
            parts.append(dataclasses.replace(sub, y=position[sub.y] - offset))
        train, valid = _valid(parts[0], valid_fraction, seed)
        tasks.append(Task(t, train, parts[1], group, [u - offset for u in units], valid))
        start += len(group)
    n_out = max(len(g) for g in groups) if scenario == "domain" else len(order)
    info = {"kind": "split", "class_order": order, "task_classes": groups,
            "class_names": [dataset.class_names[k] for k in order]}
    return Stream(tasks, scenario, n_out, dataset.input_shape, f"split-{dataset.name}", info)


def _through(part: Split, offset: int, fn: Transform) -> Split:
    """`part`'s samples seen through `fn` after its own transform, labels shifted by `offset`."""
    return Split(part.x, part.y + offset if offset else part.y, then(part.transform, fn))


def _transformed(
    dataset: Dataset, n_tasks: int, scenario: str, seed: int, valid_fraction: float, kind: str,
    transforms: list[Transform], info: dict,
) -> Stream:
    """Tasks that all hold every class, each seeing the inputs through its own transform, applied per
    batch: every task shares the data set's tensors (and one validation cut), so memory does not grow
    with the number of tasks."""
    _check_scenario(scenario)
    c = dataset.num_classes
    train, valid = _valid(dataset.train, valid_fraction, seed)
    tasks = []
    for t, fn in enumerate(transforms):
        offset = 0 if scenario == "domain" else t * c
        tasks.append(Task(t, _through(train, offset, fn), _through(dataset.test, offset, fn), list(range(c)),
                          list(range(offset, offset + c)), _through(valid, offset, fn) if valid is not None else None))
    n_out = c if scenario == "domain" else n_tasks * c
    return Stream(tasks, scenario, n_out, dataset.input_shape, f"{kind}-{dataset.name}", {"kind": kind, **info})


def permuted(
    dataset: Dataset, n_tasks: int, seed: int = 0, scenario: str = "domain", valid_fraction: float = 0.0
) -> Stream:
    """Task 0 sees the inputs as they are, task t > 0 through a fixed random permutation of the
    input features drawn from `seed`. Domain-incremental by default (one shared head)."""
    _check_n_tasks(n_tasks, 1000, "one permutation per task")
    d = math.prod(dataset.input_shape)
    g = torch.Generator().manual_seed(seed)
    perms = [torch.arange(d)] + [torch.randperm(d, generator=g) for _ in range(n_tasks - 1)]
    return _transformed(dataset, n_tasks, scenario, seed, valid_fraction, "permuted",
                        [Permute(p) for p in perms], {"permutations": [p.tolist() for p in perms]})


def rotated(
    dataset: Dataset,
    n_tasks: int,
    degrees: float | Sequence[float] = 180.0,
    seed: int = 0,
    scenario: str = "domain",
    valid_fraction: float = 0.0,
) -> Stream:
    """Task t sees the images rotated by `degrees[t]`, or by t * degrees / n_tasks when `degrees` is
    a number (0, 36, 72, 108, 144 for 5 tasks and 180). Domain-incremental by default."""
    _check_n_tasks(n_tasks, 1000, "one angle per task")
    if len(dataset.input_shape) != 3:
        raise DataError(f"rotated tasks need images (C, H, W); {dataset.name} inputs are {dataset.input_shape}")
    if isinstance(degrees, (int, float)):
        angles = [t * float(degrees) / n_tasks for t in range(n_tasks)]
    else:
        angles = [float(a) for a in degrees]
        if len(angles) != n_tasks:
            raise DataError(f"{len(angles)} angles given for {n_tasks} tasks")
    return _transformed(dataset, n_tasks, scenario, seed, valid_fraction, "rotated",
                        [Rotate(a) for a in angles], {"angles": angles})


def _as_split(part: Split | tuple, what: str) -> Split:
    if isinstance(part, Split):
        return part
    if not (isinstance(part, (tuple, list)) and len(part) == 2):
        raise DataError(f"{what} must be a Split or an (x, y) pair")
    x, y = check_arrays(part[0], part[1], what)
    if int(y.min()) < 0:
        raise DataError(f"{what} labels must be non-negative class ids")
    return Split(x, y)


def from_tasks(tasks: Sequence[Dataset | tuple], scenario: str = "class", name: str = "custom") -> Stream:
    """A stream from the user's tasks: each a Dataset or a (train, test) pair of Splits or (x, y) pairs.

    Labels are kept as given for class- and domain-incremental streams; for task-incremental ones
    each task's labels are shifted past the previous tasks' so that every task has its own head.
    """
    _check_scenario(scenario)
    if not tasks:
        raise DataError("from_tasks needs at least one task")
    out, offset, shape = [], 0, None
    for t, item in enumerate(tasks):
        if isinstance(item, Dataset):
            train, test = item.train, item.test
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            train, test = _as_split(item[0], f"task {t} train"), _as_split(item[1], f"task {t} test")
        else:
            raise DataError(f"task {t} must be a Dataset or a (train, test) pair")
        if len(train) == 0 or len(test) == 0:
            raise DataError(f"task {t} has an empty train or test split")
        task_shape = tuple(train.x.shape[1:])
        if tuple(test.x.shape[1:]) != task_shape:
            raise DataError(f"task {t} test inputs have shape {tuple(test.x.shape[1:])}, "
                            f"its training inputs {task_shape}")
        if shape is not None and task_shape != shape:
            raise DataError(f"task {t} inputs have shape {task_shape}, earlier tasks {shape}")
        shape = task_shape
        classes = torch.unique(torch.cat([train.y, test.y])).tolist()
        shift = offset if scenario == "task" else 0
        width = max(classes) + 1
        train, test = dataclasses.replace(train, y=train.y + shift), dataclasses.replace(test, y=test.y + shift)
        out.append(Task(t, train, test, classes, [k + shift for k in classes]))
        offset += width
    n_out = offset if scenario == "task" else max(max(task.units) for task in out) + 1
    return Stream(out, scenario, n_out, task_shape, name, {"kind": "custom"})
