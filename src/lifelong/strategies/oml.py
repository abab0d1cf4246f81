"""OML: online-aware meta-learning of a representation for continual learning.

Javed & White 2019, "Meta-Learning Representations for Continual Learning" (NeurIPS), Algorithm 1
(the OML objective). The network is a representation phi_theta (every layer but the head: its output is
the pre-logits, `models.pre_logits`) and a linear prediction head W (`get_classifier()`) that learns online
by SGD. OML meta-learns theta (and W's starting point) so that online SGD on the head over a stream of
correlated samples leaves the loss low on the samples seen so far. In a continual stream: for each incoming
batch b (the trajectory S_traj, one task's samples) and a memory sample m (S_rand, earlier tasks, reservoir),

    W_0 = W;  W_{j+1} = W_j - beta * grad_W l(phi_theta(b[j]), W_j)     for j = 0..k-1  (online head)
    (theta, W) <- (theta, W) - step(grad_{theta, W} L(phi_theta(b ∪ m), W_k))         (meta-update)

where `step` is the Trainer's optimiser (the paper's meta-update is Adam, as `--optimizer adam`), l
and L the cross-entropy (masked by each sample's task id in task-incremental streams) and the meta
gradient flows through the head's k online steps into theta (second order unless `first_order`;
only the head's steps are differentiated, so this is cheap). The paper meta-trains on Omniglot
trajectories and then freezes theta while the head learns; here the stream is both, so the
representation keeps being meta-trained on the memory of earlier tasks while the head is adapted.
The Trainer's own gradient on b is replaced by the meta-gradient (so `Compose` refuses partners whose
loss or gradient terms would be dropped).

Hyper-parameters: `inner_lr` beta 0.03 (the authors' `update_lr` in khurramjaved96/mrcl),
`inner_steps` 5 (as La-MAML's), `buffer_size` 200 and `replay_batch_size` 128 (as La-MAML's and
MER's, so the three compare with ER at one memory), `first_order` False.

Data-parallel training: the head's online steps are sequential and the meta-gradient flows through
them, so every rank computes the meta-gradient on the whole global batch (`Trainer.global_batch`) and
the same replayed samples, in place of the Trainer's averaged gradient: the ranks stay identical and
step as one process, but OML gains no speed from them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..errors import ConfigError
from ..models import Contract, contract_error, pre_logits
from .la_maml import split_batch
from .base import TASK_BASED
from .replay import Rehearsal, check_non_negative, check_whole

if TYPE_CHECKING:
    from ..data import Stream
    from ..training import Trainer


class OML(Rehearsal):
    """A representation meta-learned so that online SGD on the linear head does not interfere."""

    name = "oml"
    summary = "online-aware meta-learning: representation meta-learned for an online head (Javed & White 2019)"
    own_update = True
    scenarios = TASK_BASED | {"task-free"}  # online updates from a reservoir: no task boundary
    option_names: ClassVar[dict[str, str]] = {"replay_batch_size": "batch_size"}

    def __init__(self, inner_lr: float = 0.03, inner_steps: int = 5, buffer_size: int = 200,
                 replay_batch_size: int = 128, first_order: bool = False) -> None:
        check_whole(self, inner_steps=inner_steps, buffer_size=buffer_size, replay_batch_size=replay_batch_size)
        check_non_negative(self, inner_lr=inner_lr)
        self.inner_lr, self.inner_steps, self.first_order = inner_lr, inner_steps, first_order
        self.buffer_size, self.replay_batch_size = buffer_size, replay_batch_size

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        if not isinstance(trainer.model, Contract):
            raise contract_error(trainer.model, self.name)
        head = trainer.model.get_classifier()
        if not (isinstance(head, nn.Linear) and head.bias is not None):
            raise ConfigError(f"oml needs a model whose classifier is a linear layer with a bias, got "
                              f"{type(head).__name__}: use mlp, cnn, conv4 or resnet18", "model")
        super().attach(trainer, stream)
        self.head = head  # W, the classifier (in place: growing heads and checkpoints keep it)

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        memory = self.memory
        m = memory.sample(self.replay_batch_size) if memory.filled else None
        self.incoming = self.trainer.global_batch()  # every rank meta-learns on the whole global batch
        self.replayed = None if m is None else (m.x, m.y, m.t)
        memory.add(*self.incoming)
        return x, y, t

    def _loss(self, z: Tensor, head: list[Tensor], y: Tensor, t: Tensor) -> Tensor:
        """Cross-entropy of the head with weight and bias `head`, through the head's own forward (so a
        growing head still masks the units of classes not arrived yet)."""
        logits = functional_call(self.head, dict(zip(("weight", "bias"), head)), (z,))
        return self.trainer.criterion(self.stream.mask(logits, t), y)

    def meta_loss(self) -> Tensor:
        """L(phi_theta(b ∪ m), W_k) after the head's k online steps on the chunks of b, as a function of
        theta and W_0."""
        x, y, t = self.incoming
        features = functools.partial(pre_logits, self.model)
        z = features(x)
        fast = [self.head.weight, self.head.bias]
        for zc, yc, tc in split_batch((z, y, t), self.inner_steps):
            grads = torch.autograd.grad(self._loss(zc, fast, yc, tc), fast, create_graph=not self.first_order)
            fast = [w - self.inner_lr * g for w, g in zip(fast, grads)]
        if self.replayed is not None:
            xm, ym, tm = self.replayed
            z, y, t = torch.cat([z, features(xm)]), torch.cat([y, ym]), torch.cat([t, tm])
        return self._loss(z, fast, y, t)

    def after_backward(self) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        for p, g in zip(params, torch.autograd.grad(self.meta_loss(), params, materialize_grads=True)):
            p.grad = g  # the Trainer's optimiser steps on the meta-gradient
