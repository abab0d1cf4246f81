"""Experience replay with asymmetric cross-entropy (ER-ACE).

Caccia, Aljundi, Asadi, Tuytelaars, Pineau & Belilovsky 2022, "New Insights on Reducing Abrupt
Representation Change in Online Continual Learning" (ICLR), Section 4 (ER-ACE): incoming and
replayed samples get different losses,

    L = CE_{C_in}(f(x_in), y_in) + CE(f(x_M), y_M),

where CE_{C_in} is the cross-entropy over the logits of C_in only: the classes present in the
incoming batch, plus (as in the authors' code) the classes never seen so far. So learning new classes
does not push down the logits of old classes; the replayed batch (drawn uniformly from a reservoir
memory) uses all logits. The first term is the Trainer's `criterion` (a softmax loss such as the
default cross-entropy) on the logits outside C_in set to the dtype's minimum (`task_loss`), the second
the same criterion on the replayed batch (`loss`).

Class-incremental streams, with or without task boundaries (task-free: the incoming batch alone while
the memory is empty, as on the first task): with a task id (task-IL) or shared labels
(domain-IL) the logits of old classes are not in competition with the new ones and ER-ACE reduces to
ER (`replay`), so the Trainer refuses those (`scenarios`). Hyper-parameters: `buffer_size`,
`replay_batch_size` (128, the Trainer's batch size: as many replayed as incoming samples, as in the paper).

Data-parallel training: C_in is taken from the whole global batch (`Trainer.global_batch`), which also
enters every rank's memory; the replayed samples are drawn alike on every rank and each computes the
replay term on its share (`Rehearsal.loss_share`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..data.stream import TASK_FREE
from .replay import Rehearsal, check_whole

if TYPE_CHECKING:
    from ..data import Stream, Task
    from ..training import Trainer


class ERACE(Rehearsal):
    """ER with the incoming batch's cross-entropy restricted to its own (and unseen) classes."""

    name = "er-ace"
    summary = "ER with asymmetric cross-entropy, class-incremental (Caccia et al. 2022)"
    scenarios = frozenset({"class", "task-free"})

    def __init__(self, buffer_size: int = 500, replay_batch_size: int = 128) -> None:
        check_whole(self, buffer_size=buffer_size, replay_batch_size=replay_batch_size)
        self.buffer_size, self.replay_batch_size = buffer_size, replay_batch_size

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        self.seen = torch.zeros(stream.n_outputs, dtype=torch.bool, device=trainer.device)
        self.first = True

    def before_task(self, task: Task) -> None:
        self.first = task.id == 0

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """C_in (the classes of the whole global batch, so every rank agrees), the replayed samples, and
        the global batch into the memory."""
        gx, gy, gt = self.trainer.global_batch()
        memory = self.memory
        if self.stream.scenario == TASK_FREE:  # no first task to tell: replay once the memory holds samples
            self.first = not memory.filled
        self.present = torch.zeros_like(self.seen).index_fill_(0, gy, True)
        self.seen |= self.present
        self.replayed = None if self.first else memory.sample(self.replay_batch_size)
        memory.add(gx, gy, gt)
        return x, y, t

    def task_loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor,
                  criterion: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """CE_{C_in}: the criterion over the classes present in the batch and those never seen."""
        if self.first:
            return criterion(out, y)
        keep = self.present | ~self.seen
        return criterion(out.masked_fill(~keep, torch.finfo(out.dtype).min), y)

    def loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor | None:
        if self.replayed is None:
            return None
        m, weight = self.loss_share(self.replayed)
        return self.replay_loss(m) * (len(m.y) / len(self.replayed.y)) * weight if len(m.y) else None

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "seen": self.seen} if self.buffer else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "seen" in state:
            self.seen = state["seen"].to(self.device)
