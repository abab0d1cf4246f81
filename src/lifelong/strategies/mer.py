"""MER: meta-experience replay.

Riemer, Cases, Ajemian, Liu, Rish, Tu & Tesauro 2019, "Learning to Learn without Forgetting by
Maximizing Transfer and Minimizing Interference" (ICLR), Algorithm 1. Reptile (Nichol et al. 2018)
over batches that mix the incoming data with reservoir samples of the past: for each incoming batch b,

    theta_A0 = theta
    for i = 1..s:                                    (`batches`)
        B_i = b ∪ Sample(M, r)                       (`replay_batch_size` r)
        theta_Wi0 = theta
        for each of k chunks c of B_i:               (`inner_steps` k)
            theta <- theta - alpha * grad l(theta, c)                       (`lr` alpha)
        theta <- theta_Wi0 + beta * (theta - theta_Wi0)                     (within-batch Reptile)
    theta <- theta_A0 + gamma * (theta - theta_A0)                         (across-batch Reptile)
    M <- reservoir(M, b)

To second order in alpha, a Reptile step on k sequential SGD steps follows the batch's gradient plus
the gradient of the dot products between the gradients of its chunks (the paper's MER objective): MER
favours updates where old (memory) and new samples agree and penalises those where they interfere.
The paper streams one sample at a time and steps on each sample of B_i (r = k - 1, one current
sample); here b is the Trainer's batch and B_i is cut into k near-equal chunks (`--batch-size 1
--mer-batch-size 9 --mer-inner-steps 10` is the paper's loop), current rows first as in its
Algorithm 1. MER replaces the optimiser (plain SGD steps, as the paper's): the Trainer's gradient is
discarded, so `--lr`, `--optimizer`, `--momentum` and `--weight-decay` do not apply, and MER runs
alone or with strategies that only change batches (`Compose` refuses partners whose loss terms it
would drop). The Reptile interpolations move the parameters; BatchNorm running statistics (which the
authors' code interpolates with the rest of the state) keep their values after the inner steps.

Hyper-parameters: `gamma` 1.0 (the paper's Algorithm 1 runs), `buffer_size` 200 (its smallest
memory), `replay_batch_size` 128 (the Trainer's default batch, as Replay), `batches` s 1 and
`inner_steps` k 4 (set for cost, about twice ER's, not tuned); `lr` alpha 0.1 and `beta` 0.3 were
chosen on a validation split of Split Fashion-MNIST's training data (grid alpha in {0.03, 0.1}, beta
in {0.1, 0.3, 1}; `benchmarks/meta_continual.py select`, docs/meta.md): the paper's per-sample values
(alpha 0.03-0.1, beta 0.01-0.03) barely move the weights once a step averages a 64-sample chunk.

Data-parallel training: the batches B_i are cut from the whole global batch (`Trainer.global_batch`) and
the same replayed samples on every rank; each inner SGD step takes the gradient on this rank's share
of its chunk and averages it over the ranks (`_sgd_step`), so every rank takes the same steps.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from .. import distributed
from .la_maml import split_batch
from .base import TASK_BASED
from .replay import Rehearsal, check_non_negative, check_whole


class MER(Rehearsal):
    """Within-batch and across-batch Reptile over incoming + replayed samples."""

    name = "mer"
    summary = "meta-experience replay: Reptile over batches mixing new and memory samples (Riemer et al. 2019)"
    own_update = True
    scenarios = TASK_BASED | {"task-free"}  # a reservoir and Reptile steps: no task boundary (the paper's setting)
    option_names: ClassVar[dict[str, str]] = {"replay_batch_size": "batch_size"}

    def __init__(self, lr: float = 0.1, beta: float = 0.3, gamma: float = 1.0, batches: int = 1, inner_steps: int = 4,
                 buffer_size: int = 200, replay_batch_size: int = 128) -> None:
        check_whole(self, batches=batches, inner_steps=inner_steps, buffer_size=buffer_size,
                    replay_batch_size=replay_batch_size)
        check_non_negative(self, lr=lr, beta=beta, gamma=gamma)
        self.lr, self.beta, self.gamma, self.batches, self.inner_steps = lr, beta, gamma, batches, inner_steps
        self.buffer_size, self.replay_batch_size = buffer_size, replay_batch_size

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        memory = self.memory
        gx, gy, gt = incoming = self.trainer.global_batch()  # B_i is cut from the whole global batch
        self.reptile_batches = [incoming] * self.batches
        if memory.filled:
            samples = [memory.sample(self.replay_batch_size) for _ in range(self.batches)]
            self.reptile_batches = [(torch.cat([gx, m.x]), torch.cat([gy, m.y]), torch.cat([gt, m.t]))
                                    for m in samples]
        memory.add(gx, gy, gt)
        return x, y, t

    def _sgd_step(self, params: list[nn.Parameter], x: Tensor, y: Tensor, t: Tensor) -> None:
        """One SGD step on the chunk (x, y, t): each rank takes the gradient on its share of the chunk and
        the gradients are averaged over the ranks (`distributed.average_gradients`), so all take the same step."""
        x, y, t = (distributed.shard(v) for v in (x, y, t))
        if len(y):
            loss = self.trainer.criterion(self.stream.mask(self.model(x), t), y)
            for p, g in zip(params, torch.autograd.grad(loss, params, materialize_grads=True)):
                p.grad = g
        distributed.average_gradients(params, len(y))
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p.sub_(self.lr * p.grad)
                p.grad = None

    def after_backward(self) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        for p in params:
            p.grad = None  # MER makes its own update: the Trainer's optimiser step skips every parameter
        start = [p.detach().clone() for p in params]
        for batch in self.reptile_batches:
            before = [p.detach().clone() for p in params]
            for chunk in split_batch(batch, self.inner_steps):
                self._sgd_step(params, *chunk)
            with torch.no_grad():
                for p, b in zip(params, before):
                    p.lerp_(b, 1 - self.beta)  # theta_Wi0 + beta (theta - theta_Wi0)
        with torch.no_grad():
            for p, a in zip(params, start):
                p.lerp_(a, 1 - self.gamma)  # theta_A0 + gamma (theta - theta_A0)
