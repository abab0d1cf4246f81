"""Task-free online streams: the tasks of a stream as one sequence of samples, seen once, without boundaries.

`online(stream)` keeps the stream's tasks (their test sets measure what is learnt) and draws the order in
which the learner meets the training samples. Each sample gets a key on a time axis measured in tasks,

    key = k + U(0, 1)                          (sample of task k: task k's samples come in segment k),

and the samples are met in increasing order of key. Two options blur the boundaries:

- `blurry` = M: a fraction M of each task's samples is moved to a neighbouring task's segment (k - 1 or
  k + 1, drawn evenly among those that exist), so classes of neighbouring tasks are mixed, a task's classes
  may appear before their task, and no boundary is sharp (blurry streams: Bang et al. 2021, "Rainbow
  Memory"; Koh et al. 2022, "Online Continual Learning on Class Incremental Blurry Task Configuration
  with Anytime Inference", whose i-Blurry also keeps some classes disjoint, not done here).
- `drift` = W: each key is shifted by W · (U(0, 1) - 1/2), so over a window W tasks wide around each
  boundary the share of the next task's samples rises linearly from 0 to 1 (gradual drift).

The hidden boundaries (`ends`: the number of samples met when segment k is over) are known to the
evaluation, never to the learner: rows of the accuracy matrix are measured there. The learner sees no
task id (`scenario` "task-free"); the outputs are those of the underlying stream (`base`: class- or
domain-incremental).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import ConfigError
from .stream import TASK_FREE, Split, Stream, Task, training_split


@dataclass
class OnlineStream(Stream):
    """A stream whose training samples are met once in `order` (positions in the concatenation of the
    tasks' training splits, in task order), with the hidden boundaries `ends` (samples met when each
    task's segment is over) and the scenario of the underlying stream (`base`)."""

    order: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    ends: list[int] = field(default_factory=list)
    base: str = "class"

    def training_data(self) -> tuple[Split, Tensor]:
        """The concatenated training splits and each sample's task of origin (for the evaluation only)."""
        return training_split(self.tasks)


def online(stream: Stream, blurry: float = 0.0, drift: float = 0.0, seed: int = 0) -> OnlineStream:
    """`stream` (class- or domain-incremental) as a task-free online stream; see the module's docstring."""
    if stream.scenario not in ("class", "domain"):
        raise ConfigError(f"an online stream is made from a class- or domain-incremental stream (no task id), got "
                          f"{stream.scenario}-incremental", "scenario")
    for name, value, most in (("blurry", blurry, 1.0), ("drift", drift, 1.0)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= most):
            raise ConfigError(f"`{name}` must be a number from 0 to {most:g}, got {value!r}", name)
    g = torch.Generator().manual_seed(seed)
    task = torch.cat([torch.full((len(t.train),), k, dtype=torch.float64) for k, t in enumerate(stream.tasks)])
    n, last = len(task), len(stream.tasks) - 1
    if blurry and last > 0:
        moved = torch.rand(n, generator=g, dtype=torch.float64) < blurry
        up = torch.rand(n, generator=g, dtype=torch.float64) < 0.5
        step = torch.where((up & (task < last)) | (task == 0), 1.0, -1.0)
        task = torch.where(moved, task + step, task)
    keys = task + torch.rand(n, generator=g, dtype=torch.float64)
    if drift:
        keys += drift * (torch.rand(n, generator=g, dtype=torch.float64) - 0.5)
    order = keys.argsort(stable=True)
    ends = [int((keys < k + 1).sum()) for k in range(last)] + [n]
    info = {**stream.info, "online": {"base": stream.scenario, "blurry": blurry, "drift": drift, "seed": seed,
                                      "ends": ends}}
    fields = {f.name: getattr(stream, f.name) for f in dataclasses.fields(Stream)}
    return OnlineStream(**fields | {"scenario": TASK_FREE, "info": info}, order=order, ends=ends, base=stream.scenario)


def window(train: Split, order: Tensor, start: int, end: int, task_id: int) -> Task:
    """The samples met from position `start` to `end` of a stream's `order` over its concatenated training
    data `train` (`OnlineStream.training_data`) as a pseudo-task (a consolidation window for strategies
    that consolidate on a schedule), with the units of the classes it holds."""
    part = train.subset(order[start:end])
    classes = part.y.unique().tolist()
    empty = part.subset(torch.zeros(0, dtype=torch.long, device=part.y.device))
    return Task(task_id, part, empty, classes, classes)


def served(input_shape: tuple[int, ...], n_outputs: int, name: str = "served") -> OnlineStream:
    """The task-free stream of a learner that is handed its batches one by one (`Trainer.learn`, `lifelong
    serve`): no data of its own, `n_outputs` classes, inputs of `input_shape`."""
    empty = Split(torch.zeros(0, *input_shape), torch.zeros(0, dtype=torch.long))
    task = Task(0, empty, empty, list(range(n_outputs)), list(range(n_outputs)))
    return OnlineStream([task], TASK_FREE, n_outputs, tuple(input_shape), name, ends=[0])
