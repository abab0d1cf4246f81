"""Dark experience replay: DER and DER++.

Buzzega, Boschini, Porrello, Abati & Calderara 2020, "Dark Experience for General Continual
Learning: a Strong, Simple Baseline" (NeurIPS), Section 3 (the DER and DER++ objectives). The memory
(reservoir sampling) stores each sample with the logits z the network gave it when it was trained on
(before the step). With h(x) the current logits:

    DER:    L = CE(y, f(x)) + alpha E_{(x', z') ~ M} |z' - h(x')|^2
    DER++:  L = CE(y, f(x)) + alpha E_{(x', z') ~ M} |z' - h(x')|^2
                                    + beta  E_{(x'', y'') ~ M} CE(y'', f(x''))

The squared error is averaged over output units, as in the authors' code (`F.mse_loss`), so their
alpha values carry over. DER++ estimates both expectations on the same memory batch (one forward
pass instead of two; same expected loss), which keeps it at the cost of DER.

Masked logits are never stored or regressed on: in task-incremental streams the logits the Trainer
passes in hold the dtype's minimum outside the sample's task (as do units a growing head has not
grown yet). Those are stored as NaN ("no value") and left out of the squared error, which is
averaged over the stored units; the CE term masks per task id. With a plain linear head in class- or
domain-incremental streams every unit is regressed on (the dark knowledge of other classes).

Data-parallel training: every rank draws the same memory batch for the whole global batch and computes
the terms on its share of it (`Rehearsal.loss_share`); the global batch enters every rank's memory
with its logits gathered from the ranks (`distributed.all_gather_rows`, in the batch's order).

Hyper-parameters: `buffer_size`, `replay_batch_size`, `alpha`, `beta`. The paper tunes them per
benchmark; for Seq-MNIST with 500 samples (SGD) its best are alpha = 1.0 (DER) and alpha = 1.0,
beta = 0.5 (DER++). The defaults are those values; a sweep on validation data held out of
training (BENCHMARKS.md, docs/defaults.md) ranks them within a few points of its best.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import distributed
from ..memory import Samples
from .base import TASK_BASED
from .replay import Rehearsal, check_non_negative, check_whole


class DER(Rehearsal):
    """Replay memory logits: an MSE between stored and current logits of memory samples."""

    name = "der"
    summary = "dark experience replay: match stored logits of memory samples (Buzzega et al. 2020)"
    beta: float = 0.0  # DER++'s label term
    replayed: Samples | None = None  # the step's memory batch, drawn for the whole global batch
    stored_logits: Tensor | None = None  # the logits of this rank's rows of the step's batch, for the memory
    scenarios = TASK_BASED | {"task-free"}  # general continual learning: no task boundary (the paper's setting)

    def __init__(self, buffer_size: int = 500, replay_batch_size: int = 128, alpha: float = 1.0) -> None:
        check_whole(self, buffer_size=buffer_size, replay_batch_size=replay_batch_size)
        check_non_negative(self, alpha=alpha)
        self.buffer_size, self.replay_batch_size, self.alpha = buffer_size, replay_batch_size, alpha

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        memory = self.memory
        self.replayed = memory.sample(self.replay_batch_size) if memory.filled else None
        self.stored_logits = None
        return x, y, t

    def loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor | None:
        z = out[: len(self.trainer.batch_index)].detach()  # the logits of this rank's rows of the global batch
        self.stored_logits = z.masked_fill(z == torch.finfo(z.dtype).min, torch.nan)
        if self.replayed is None:
            return None
        m, weight = self.loss_share(self.replayed)
        if not len(m.y):
            return None
        assert m.logits is not None and self.replayed.logits is not None
        h = self.model(m.x)
        known = ~m.logits.isnan()
        count = (~self.replayed.logits.isnan()).sum().clamp(min=1)  # the stored units of all replayed samples
        extra = self.alpha * torch.where(known, h - m.logits, 0.0).pow(2).sum() / count
        if self.beta:
            share = len(m.y) / len(self.replayed.y)
            extra = extra + self.beta * self.trainer.criterion(self.stream.mask(h, m.t), m.y) * share
        return extra * weight

    def after_step(self) -> None:
        """The global batch enters the memory with the logits it was trained with (all ranks' rows, gathered)."""
        z = self.stored_logits
        if z is None:  # this rank's share of the batch was empty: the Trainer ran no `loss`
            z = torch.zeros(0, self.stream.n_outputs, dtype=next(self.model.parameters()).dtype, device=self.device)
        self.memory.add(*self.trainer.global_batch(), logits=distributed.all_gather_rows(z))


class DERpp(DER):
    """DER++: DER plus the cross-entropy of memory samples' labels."""

    name = "derpp"
    summary = "DER++: DER plus cross-entropy on memory labels (Buzzega et al. 2020)"

    def __init__(self, buffer_size: int = 500, replay_batch_size: int = 128, alpha: float = 1.0,
                 beta: float = 0.5) -> None:
        super().__init__(buffer_size, replay_batch_size, alpha)
        check_non_negative(self, beta=beta)
        self.beta = beta
