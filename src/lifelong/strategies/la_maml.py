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
into `inner_steps` near-equal chunks (`torch.tensor_split`: 16 samples in 5 steps of 4, 3, 3, 3, 3;
a batch smaller than `inner_steps` takes one step per sample), one step each (`--batch-size 10
--la-maml-inner-steps 10` is the paper's loop), as in Avalanche's LaMAMLPlugin. La-MAML replaces the
optimiser: the Trainer's own gradient is discarded (its optimiser then skips every parameter), so
`--lr`, `--optimizer`, `--momentum` and `--weight-decay` do not apply, and it runs alone or with
strategies that only change batches (`Compose` refuses partners whose loss terms it would drop).

As in the authors' code (montrealrobotics/La-MAML, `lamaml_cifar.py`), the meta-gradients with
respect to the weights and to the rates are each clipped to a global norm of at most `clip_norm`
before they are used (0: no clipping), and with `average_meta_loss` the meta-loss is the mean of
L(theta_n, b_m) over the look-ahead steps n = 1..k (their code's choice) instead of Algorithm 1's
L(theta_k, b_m) alone. Their code also clamps each inner-loop gradient elementwise to
±`grad_clip_norm`; Algorithm 1 does not, and neither does this file.

Hyper-parameters: `inner_steps` 5, `alpha_init` 0.1, `alpha_lr` eta 0.1, `buffer_size` 200 (as
Avalanche's LaMAMLPlugin and the paper's MNIST runs), `replay_batch_size` 128 (the Trainer's default
batch, as Replay: b_m is then half memory, half current data; the paper's 10 matched its 10-sample
batches), `clip_norm` 1.0 (the authors' La-MAML runs, `--grad_clip_norm 1.0`), `average_meta_loss`
False (Algorithm 1), `first_order` False.

Data-parallel training: the inner loop's steps are sequential and the meta-gradient flows through them,
so every rank computes the whole update on the whole global batch (`Trainer.global_batch`) and the same
replayed samples: the ranks stay identical and step as one process, but La-MAML gains no speed from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor
from torch.func import functional_call

from ..checkpoint import strip_prefix
from .replay import Rehearsal, check_non_negative, check_whole

if TYPE_CHECKING:
    from ..data import Stream
    from ..training import Trainer


def split_batch(batch: tuple[Tensor, ...], steps: int) -> list[tuple[Tensor, ...]]:
    """`batch` (tensors of equal length) cut into `steps` near-equal chunks, fewer (one row each) when it
    has fewer rows."""
    n = min(steps, len(batch[0]))
    return list(zip(*(v.tensor_split(n) for v in batch)))


def clipped(grads: list[Tensor], max_norm: float) -> list[Tensor]:
    """`grads` scaled down to a global L2 norm of at most `max_norm` (as `clip_grad_norm_`; 0: unchanged)."""
    if not max_norm:
        return grads
    scale = (max_norm / (torch.nn.utils.get_total_norm(grads) + 1e-6)).clamp(max=1.0)
    return [g * scale for g in grads]


class LaMAML(Rehearsal):
    """Meta-learned per-parameter learning rates with a look-ahead on replayed samples."""

    name = "la-maml"
    summary = "look-ahead MAML: per-parameter learning rates meta-learned on replay (Gupta et al. 2020)"
    own_update = True
    option_names: ClassVar[dict[str, str]] = {"replay_batch_size": "batch_size"}

    def __init__(self, inner_steps: int = 5, alpha_init: float = 0.1, alpha_lr: float = 0.1, buffer_size: int = 200,
                 replay_batch_size: int = 128, clip_norm: float = 1.0, average_meta_loss: bool = False,
                 first_order: bool = False) -> None:
        check_whole(self, inner_steps=inner_steps, buffer_size=buffer_size, replay_batch_size=replay_batch_size)
        check_non_negative(self, alpha_init=alpha_init, alpha_lr=alpha_lr, clip_norm=clip_norm)
        self.inner_steps, self.alpha_init, self.alpha_lr = inner_steps, alpha_init, alpha_lr
        self.buffer_size, self.replay_batch_size, self.first_order = buffer_size, replay_batch_size, first_order
        self.clip_norm, self.average_meta_loss = clip_norm, average_meta_loss
        self.alpha: dict[str, Tensor] = {}

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        self.alpha = {k: torch.full_like(p, self.alpha_init).requires_grad_()
                      for k, p in trainer.model.named_parameters() if p.requires_grad}

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        memory = self.memory
        m = memory.sample(self.replay_batch_size) if memory.filled else None
        gx, gy, gt = self.incoming = self.trainer.global_batch()  # every rank updates on the whole global batch
        self.mixed = self.incoming if m is None else (torch.cat([gx, m.x]), torch.cat([gy, m.y]), torch.cat([gt, m.t]))
        memory.add(gx, gy, gt)
        return x, y, t

    def _loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        return self.trainer.criterion(self.stream.mask(functional_call(self.model, params, (x,)), t), y)

    def meta_loss(self) -> Tensor:
        """L(theta_k, b_m) after the inner loop over the current batch's chunks (with `average_meta_loss`,
        the mean of L(theta_n, b_m) over n = 1..k), as a function of theta_0 and alpha."""
        fast: dict[str, Tensor] = {k: p for k, p in self.model.named_parameters() if k in self.alpha}
        losses = []
        for chunk in split_batch(self.incoming, self.inner_steps):
            grads = torch.autograd.grad(self._loss(fast, *chunk), list(fast.values()),
                                        create_graph=not self.first_order, materialize_grads=True)
            fast = {k: w - self.alpha[k] * g for (k, w), g in zip(fast.items(), grads)}
            if self.average_meta_loss:
                losses.append(self._loss(fast, *self.mixed))
        return torch.stack(losses).mean() if losses else self._loss(fast, *self.mixed)

    def after_backward(self) -> None:
        theta = [p for k, p in self.model.named_parameters() if k in self.alpha]
        alpha = list(self.alpha.values())
        grads = torch.autograd.grad(self.meta_loss(), theta + alpha, materialize_grads=True)
        n = len(theta)
        g_theta, g_alpha = (clipped(list(part), self.clip_norm) for part in (grads[:n], grads[n:]))
        with torch.no_grad():
            for a, g in zip(alpha, g_alpha):
                a.sub_(self.alpha_lr * g)
            for p, a, g in zip(theta, alpha, g_theta):
                p.sub_(a.clamp(min=0) * g)
                p.grad = None  # the update is done: the Trainer's optimiser step skips this parameter

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **{f"alpha.{k}": a.detach() for k, a in self.alpha.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for k, v in strip_prefix(state, "alpha.").items():
            self.alpha[k] = v.clone().requires_grad_()
