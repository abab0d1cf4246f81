"""La-MAML: look-ahead meta-learning for continual learning.

Gupta, Yadav & Paull 2020, "La-MAML: Look-ahead Meta Learning for Continual Learning" (NeurIPS),
Algorithm 1. With per-parameter learning rates alpha (a tensor the shape of each weight) and a
replay memory R filled by reservoir sampling, every incoming batch b is used as follows:

    b_m = Sample(R) ∪ b
    theta_0 = theta;  theta_{n+1} = theta_n - alpha ⊙ grad l(theta_n, b[n])      for n = 0..k-1  (inner loop)
    alpha <- alpha - eta * grad_alpha L(theta_k, b_m)                          (learning-rate update)
    theta <- theta - max(0, alpha) ⊙ grad_theta_0 L(theta_k, b_m)              (weight update)

where l and L are the cross-entropy (masked by each sample's task id in task-incremental streams).
The meta-loss on past samples (b_m) after looking ahead on the current ones aligns the gradients of
old and new tasks; a learning rate whose meta-gradient says "this update hurts" shrinks, and is
clipped at 0 for the weight update. Gradients flow through the inner loop (second order) unless
`first_order`.

The paper's inner loop takes one step per sample of its 10-sample batches; here the batch is cut
into `inner_steps` chunks, one step each (`--batch-size 10 --la-maml-inner-steps 10` is the paper's
loop), as in Avalanche's LaMAMLPlugin. La-MAML replaces the optimiser: the Trainer's own gradient
is discarded (its optimiser then skips every parameter), so `--lr`/`--optimizer` do not apply.

Hyper-parameters (defaults as Avalanche's LaMAMLPlugin): `inner_steps` 5, `alpha_init` 0.1,
`alpha_lr` eta 0.1, `buffer_size` 200, `replay_batch_size` 10, `first_order` False.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from .replay import Rehearsal, check_non_negative, check_whole

if TYPE_CHECKING:
    from ..data import Stream
    from ..training import Trainer


class LaMAML(Rehearsal):
    """Meta-learned per-parameter learning rates with a look-ahead on replayed samples."""

    name = "la-maml"
    summary = "look-ahead MAML: per-parameter learning rates meta-learned on replay (Gupta et al. 2020)"
    option_names: ClassVar[dict[str, str]] = {"replay_batch_size": "batch_size"}

    def __init__(self, inner_steps: int = 5, alpha_init: float = 0.1, alpha_lr: float = 0.1, buffer_size: int = 200,
                 replay_batch_size: int = 10, first_order: bool = False) -> None:
        check_whole(self, inner_steps=inner_steps, buffer_size=buffer_size, replay_batch_size=replay_batch_size)
        check_non_negative(self, alpha_init=alpha_init, alpha_lr=alpha_lr)
        self.inner_steps, self.alpha_init, self.alpha_lr = inner_steps, alpha_init, alpha_lr
        self.buffer_size, self.replay_batch_size, self.first_order = buffer_size, replay_batch_size, first_order
        self.alpha: dict[str, Tensor] = {}

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        self.alpha = {k: torch.full_like(p, self.alpha_init).requires_grad_()
                      for k, p in trainer.model.named_parameters() if p.requires_grad}

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        memory = self.memory
        m = memory.sample(self.replay_batch_size) if memory.filled else None
        self.incoming = (x, y, t)
        self.mixed = (x, y, t) if m is None else (torch.cat([x, m.x]), torch.cat([y, m.y]), torch.cat([t, m.t]))
        memory.add(x, y, t)
        return x, y, t

    def _loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        return F.cross_entropy(self.stream.mask(functional_call(self.model, params, (x,)), t), y)

    def meta_loss(self) -> Tensor:
        """L(theta_k, b_m) after the inner loop over the current batch's chunks, as a function of theta_0 and alpha."""
        theta = {k: p for k, p in self.model.named_parameters() if k in self.alpha}
        fast = theta
        x, y, t = self.incoming
        for xc, yc, tc in zip(x.chunk(self.inner_steps), y.chunk(self.inner_steps), t.chunk(self.inner_steps)):
            grads = torch.autograd.grad(self._loss(fast, xc, yc, tc), list(fast.values()),
                                        create_graph=not self.first_order, allow_unused=True)
            fast = {k: w if g is None else w - self.alpha[k] * g for (k, w), g in zip(fast.items(), grads)}
        return self._loss(fast, *self.mixed)

    def after_backward(self) -> None:
        theta = [p for k, p in self.model.named_parameters() if k in self.alpha]
        alpha = list(self.alpha.values())
        grads = torch.autograd.grad(self.meta_loss(), theta + alpha, allow_unused=True)
        with torch.no_grad():
            for a, g in zip(alpha, grads[len(theta):]):
                if g is not None:
                    a.sub_(self.alpha_lr * g)
            for p, a, g in zip(theta, alpha, grads[: len(theta)]):
                if g is not None:
                    p.sub_(a.clamp(min=0) * g)
                p.grad = None  # the update is done: the Trainer's optimiser step skips this parameter

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **{f"alpha.{k}": a.detach() for k, a in self.alpha.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for k, v in state.items():
            if k.startswith("alpha."):
                self.alpha[k.removeprefix("alpha.")] = v.clone().requires_grad_()
