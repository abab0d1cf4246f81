"""Maximally interfered retrieval (MIR), experience replay that replays what the next step would hurt most.

Aljundi, Caccia, Belilovsky, Caccia, Lin, Charlin & Tuytelaars 2019, "Online Continual Learning with
Maximally Interfered Retrieval" (NeurIPS), Section 3.1 and Algorithm 1 (ER-MIR). For the incoming batch
B_n, a virtual SGD step on its loss gives

    θ_v = θ - α ∇_θ L(f_θ(B_n)),

C candidates drawn at random from the reservoir memory are scored by how much that step would raise
their loss,

    s(x, y) = l(f_θv(x), y) - l(f_θ(x), y),

and the k highest-scoring candidates join B_n for the real step on B_n ∪ B_k (the same step as ER's on
B_n ∪ B_M, `replay`: one mean over the joined batch, where the authors' code adds the two batches' mean
losses); B_n then enters the memory (reservoir sampling). The scores use the per-sample cross-entropy, as
the paper, with the model in training mode, as the authors' code (a BatchNorm model's running statistics
see the candidates); α is the optimiser's learning rate (its first parameter group's). While the memory
holds fewer than C samples, the candidates are all of them (the repeats are never preferred).

Hyper-parameters: `buffer_size` (500), `replay_batch_size` k (10: as many replayed as incoming samples in
the usual online batch of 10, as in the paper's experiments), `candidates` C (50, five times k). Task-free
streams, as in the paper, and every task-based scenario.

Data-parallel training: the virtual step is taken on the whole global batch (`Trainer.global_batch`) and
the candidates are drawn alike on every rank, so every rank scores and retrieves the same samples; each
trains on its share of them, as ER's ranks do.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from .. import distributed
from ..memory import Samples
from .base import TASK_BASED
from .replay import Replay, check_whole, each


class MIR(Replay):
    """ER whose replayed samples are the candidates a virtual step on the incoming batch would hurt most."""

    name = "mir"
    summary = "maximally interfered retrieval: replay what the next step would hurt most (Aljundi et al. 2019)"
    option_names: ClassVar[dict[str, str]] = {"replay_batch_size": "batch_size"}
    scenarios = TASK_BASED | {"task-free"}

    def __init__(self, buffer_size: int = 500, replay_batch_size: int = 10, candidates: int = 50) -> None:
        super().__init__(buffer_size, replay_batch_size)
        check_whole(self, candidates=candidates)
        self.candidates = candidates

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        memory, trainer = self.memory, self.trainer
        incoming = trainer.global_batch()
        m = self.retrieve(memory.sample(self.candidates), *incoming) if memory.filled else None
        memory.add(*incoming)
        if m is None:
            return x, y, t
        mine = each(m, distributed.shard)
        return torch.cat([x, mine.x]), torch.cat([y, mine.y]), torch.cat([t, mine.t])

    def retrieve(self, c: Samples, x: Tensor, y: Tensor, t: Tensor) -> Samples:
        """The `replay_batch_size` candidates of `c` whose loss a virtual SGD step on (x, y, t) raises most."""
        model, mask, opt = self.model, self.stream.mask, self.trainer.optimizer
        assert opt is not None
        named = {n: p for n, p in model.named_parameters() if p.requires_grad}
        loss = self.trainer.criterion(mask(model(x), t), y)
        grads = torch.autograd.grad(loss, list(named.values()), allow_unused=True)
        lr = opt.param_groups[0]["lr"]
        with torch.no_grad():
            virtual = {n: p if g is None else p - lr * g for (n, p), g in zip(named.items(), grads)}
            before = F.cross_entropy(mask(model(c.x), c.t), c.y, reduction="none")
            after = F.cross_entropy(mask(functional_call(model, virtual, (c.x,)), c.t), c.y, reduction="none")
            repeat = torch.arange(len(c.y), device=c.y.device) >= self.memory.size  # (a memory holding < C)
            top = (after - before).masked_fill(repeat, -torch.inf).topk(min(self.replay_batch_size, len(c.y))).indices
        return each(c, lambda v: v[top])
