"""Experience replay (ER), and what every memory-based strategy shares.

Chaudhry, Rohrbach, Elhoseiny, Ajanthan, Dokania, Torr & Ranzato 2019, "On Tiny Episodic Memories
in Continual Learning" (arXiv:1902.10486), Algorithm 1 (ER with reservoir sampling): each training
batch B_n is joined by a batch B_M drawn uniformly from the memory M, one step is taken on

    L = CE(f(x), y) over (x, y) in B_n ∪ B_M,

and B_n is then offered to M (reservoir sampling, so M stays a uniform sample of the stream).

Hyper-parameters: `buffer_size` (the paper studies tiny memories, 1-5 samples per class; 500 is
this project's benchmark), `replay_batch_size` (the paper uses 10, equal to its stream batch size;
128 here, equal to the Trainer's default batch, so a step sees twice the samples), `policy`
(`reservoir` as in the paper, or `class_balanced` / `per_task`, see `lifelong.memory`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from ..checkpoint import strip_prefix
from ..configs import whole_numbers
from ..errors import ConfigError
from ..memory import POLICIES, Buffer, Samples
from .base import TASK_BASED, Strategy

if TYPE_CHECKING:
    from ..data import Stream
    from ..training import Trainer


def check_whole(strategy: Strategy, **values: object) -> None:
    """Raise ConfigError unless every value is a whole number >= 1."""
    whole_numbers(values, owner=strategy.name)


def check_non_negative(strategy: Strategy, **values: object) -> None:
    """Raise ConfigError unless every value is a finite number >= 0."""
    for arg, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
            raise ConfigError(f"`{arg}` of {strategy.name} must be a number >= 0, got {v!r}",
                              f"{strategy.name}.{arg}")


class Rehearsal(Strategy):
    """Base of the memory-based strategies: a `Buffer` of `buffer_size` samples made at `attach`
    (keys: labels, or task ids for `per_task`), its checkpoint state, and the cross-entropy of
    memory samples, each masked by its own task id."""

    policy: str = "reservoir"
    buffer_size: int
    buffer: Buffer | None = None

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        keys = len(stream) if self.policy == "per_task" else stream.n_outputs
        self.buffer = Buffer(self.buffer_size, self.policy, keys, seed=trainer.seed)
        self.unit_masks = stream.masks.to(trainer.device)  # (tasks, outputs): each task's units

    @property
    def device(self) -> torch.device:
        return self.trainer.device if hasattr(self, "trainer") else torch.device("cpu")

    @property
    def memory(self) -> Buffer:
        if self.buffer is None:
            raise RuntimeError(f"{self.name}: the strategy is not attached to a Trainer yet")
        return self.buffer

    def replay_loss(self, m: Samples) -> Tensor:
        return self.trainer.criterion(self.stream.mask(self.model(m.x), m.t), m.y)

    def state_dict(self) -> dict[str, Any]:
        return {f"buffer.{k}": v for k, v in self.buffer.state_dict().items()} if self.buffer else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        own = strip_prefix(state, "buffer.")
        if own:
            self.buffer = Buffer.from_state(own, self.device)


class Replay(Rehearsal):
    """ER: each batch is joined by `replay_batch_size` memory samples; the batch then enters the
    memory. Replayed samples keep their own task ids, so task-incremental masking stays right."""

    name = "replay"
    summary = "experience replay: mix memory samples into every batch (Chaudhry et al. 2019)"
    option_names: ClassVar[dict[str, str]] = {"replay_batch_size": "batch_size"}
    scenarios = TASK_BASED | {"task-free"}  # reservoir sampling needs no task boundary (the paper's setting)

    def __init__(self, buffer_size: int = 500, replay_batch_size: int = 128, policy: str = "reservoir") -> None:
        check_whole(self, buffer_size=buffer_size, replay_batch_size=replay_batch_size)
        if policy not in POLICIES:
            raise ConfigError(f"`policy` must be one of {', '.join(POLICIES)}, got {policy!r}", "replay.policy")
        self.buffer_size, self.replay_batch_size, self.policy = buffer_size, replay_batch_size, policy

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        memory = self.memory
        m = memory.sample(self.replay_batch_size) if memory.filled else None
        memory.add(x, y, t)
        if m is None:
            return x, y, t
        return torch.cat([x, m.x]), torch.cat([y, m.y]), torch.cat([t, m.t])
