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

Data-parallel training (`lifelong.distributed`): every rank holds the same whole memory (not a
reservoir of its own shard), updated from the whole global batch (`Trainer.global_batch`) with the
same generator, so every rank makes the same update; replayed samples are drawn alike on every rank
for the whole global batch, and each rank trains on its share of them. N ranks then step as one
process with the global batch. (Per-rank reservoirs of 1/N of the memory would each sample a
different 1/N of the stream, and a rank's replay batch would come from its own reservoir: not the
single-process algorithm, and the ranks' states would differ.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from .. import distributed
from ..checkpoint import strip_prefix
from ..configs import non_negative, whole_numbers
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
    non_negative(values, owner=strategy.name)


def each(m: Samples, f: Callable[[Tensor], Tensor]) -> Samples:
    """`f` applied to every tensor of the samples `m` (their logits too, if stored)."""
    return Samples(f(m.x), f(m.y), f(m.t), None if m.logits is None else f(m.logits))


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

    def loss_share(self, m: Samples) -> tuple[Samples, float]:
        """This rank's share of the replay samples `m` (drawn alike on every rank for the whole global
        batch) for a term that `loss` adds, and the weight that makes the term right. Only ranks holding
        rows of the global batch run `loss` (the Trainer skips an empty share), so the samples are split
        among those; the Trainer averages the ranks' gradients weighted by their rows (n_r of the global
        batch's B), so the term, a sum over the share divided by the count of all of `m`, is multiplied by
        B / n_r. Exact unless another strategy of a Compose appends rows to the batch. In one process: `m`
        and 1."""
        trainer, rank = self.trainer, distributed.rank()
        holders = min(distributed.world_size(), len(trainer.global_index))

        def part(v: Tensor) -> Tensor:
            return v.tensor_split(holders)[rank] if rank < holders else v[:0]

        return each(m, part), len(trainer.global_index) / max(len(trainer.batch_index), 1)

    def replay_gradient(self, m: Samples, params: Sequence[Tensor]) -> list[Tensor]:
        """The gradient of `replay_loss` over all of `m` (samples drawn alike on every rank), the same on
        every rank: each computes it on its share of `m`, weighted by the share's fraction of the rows, and
        the results are summed over the ranks. For `after_backward`, which every rank runs."""
        share = each(m, distributed.shard)
        raw: list[Tensor | None] = [None] * len(params)
        if len(share.y):
            raw = list(torch.autograd.grad(self.replay_loss(share) * (len(share.y) / len(m.y)), params,
                                           allow_unused=True))
        grads = [torch.zeros_like(p) if r is None else r for p, r in zip(params, raw)]
        distributed.all_reduce_sum(grads)
        return grads

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
        memory.add(*self.trainer.global_batch())
        if m is None:
            return x, y, t
        mine = each(m, distributed.shard)  # this rank's share of the replayed rows
        return torch.cat([x, mine.x]), torch.cat([y, mine.y]), torch.cat([t, mine.t])
