"""GDumb: greedy sampler and dumb learner.

Prabhu, Torr & Dokania 2020, "GDumb: A Simple Approach that Questions Our Progress in Continual
Learning" (ECCV), Section 3:
- Sampler: the stream goes into a memory of k samples, greedily class-balanced: a sample of class y
  is stored while y holds fewer than k / (classes seen) samples; when the memory is full, a sample
  of the largest class makes room (`lifelong.memory`, policy `class_balanced`).
- Learner: at inference time a network is trained from scratch on the memory alone (cross-entropy;
  with task-incremental streams the logits are masked to each sample's task), for GDumb's own
  number of epochs rather than the stream's single pass.

Class- and task-incremental streams only: in a domain-incremental stream every class arrives with the
first task, so the class-balanced memory is full of first-task samples and no later task ever enters
it (measured: ACC 28% on Permuted Fashion-MNIST, below naive); the Trainer refuses such streams
(`scenarios`). GDumb never trains on the stream itself. After every task the model's parameters are re-initialised
(each module's `reset_parameters()`) and `Trainer.train` fits it on the memory for `epochs` with the
Trainer's optimiser, learning rate and batch size (the paper: SGD, lr 0.05 with warm restarts down to
0.0005, batch 16), clipping the gradient's norm at `clip` as the authors' code does.
Hyper-parameters: `buffer_size` k (the paper's MNIST runs use 300-4400; 500 here, this project's
benchmark), `epochs` (128 for the paper's MNIST runs), `clip` (10.0 in the authors' code; 0: off).

Data-parallel training: every rank fills the same memory (the same data, the same generator) and
retrains through `Trainer.train`, which shards it; the re-initialised parameters are broadcast from
rank 0 (the global random generator may have drifted between ranks, e.g. with dropout on shares of
different sizes), and the gradient is clipped after it is averaged, so the ranks stay identical.
"""

from __future__ import annotations

import torch

from .. import distributed
from ..data import Split, Stream, Task
from .replay import Rehearsal, check_non_negative, check_whole


class GDumb(Rehearsal):
    """Store a class-balanced memory of the stream; retrain from scratch on it after every task."""

    name = "gdumb"
    summary = "class-balanced memory, retrain from scratch on it for evaluation (Prabhu et al. 2020)"
    policy = "class_balanced"
    # not domain-incremental: its memory is balanced over classes, which all come with the first task there
    scenarios = frozenset({"task", "class"})

    def __init__(self, buffer_size: int = 500, epochs: int = 128, clip: float = 10.0) -> None:
        check_whole(self, buffer_size=buffer_size, epochs=epochs)
        check_non_negative(self, clip=clip)
        self.buffer_size, self.epochs, self.clip = buffer_size, epochs, clip

    def training_tasks(self, task: Task, stream: Stream) -> list[Task]:
        return []  # the stream only feeds the memory

    def after_task(self, task: Task) -> None:
        self.memory.add_split(task.train, task.id, self.trainer.generator)
        for module in self.model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
        distributed.broadcast([*self.model.parameters(), *self.model.buffers()])  # one fresh start on every rank
        m = self.memory.stored()
        self.trainer.train(Split(m.x, m.y), m.t, self.epochs, f"gdumb memory after task {task.id + 1}")

    def after_backward(self) -> None:  # called only while retraining on the memory
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
