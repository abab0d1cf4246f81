"""MAML and first-order MAML.

Finn, Abbeel & Levine 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks"
(ICML), Algorithm 2 with Eqs. 1-2. For each task T_i of a meta-batch, adapt with `inner_steps`
gradient steps on its support set,

    theta'_i = theta - alpha * grad_theta L_{T_i}^{support}(theta)      (Eq. 1, repeated),

then update the initialisation on the query losses of the adapted parameters,

    theta <- theta - beta * grad_theta sum_i L_{T_i}^{query}(theta'_i)   (Eq. 2),

differentiating through the inner steps (second order: Hessian-vector products of the support
loss). `first_order=True` (FOMAML, Section 5.2) treats the inner gradients as constants, so the
meta-gradient is the query gradient at theta'_i. The outer step is Adam with learning rate beta.

Hyper-parameters (paper, sinusoid): `inner_lr` alpha = 0.01, `inner_steps` = 1 (10 at test),
`meta_lr` beta = 1e-3 (Adam), `meta_batch` = 25 tasks; few-shot classification: alpha = 0.4 (1 step,
Omniglot) or 0.01 (5 steps, MiniImagenet), meta-batch 4-32.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ..data.episodes import Episodes
from .base import MetaLearner, Params, adapt_and_predict, check_positive, inner_loop
from .tasks import TaskSet


class MAML(MetaLearner):
    """Second-order MAML (`first_order=False`) or FOMAML (`first_order=True`) over all parameters."""

    name = "maml"
    summary = "model-agnostic meta-learning, second order through the inner loop (Finn et al. 2017)"
    classification_defaults: ClassVar[dict[str, Any]] = {"inner_lr": 0.1, "meta_batch": 4}

    def __init__(self, model: nn.Module, tasks: TaskSet, inner_lr: float = 0.01, inner_steps: int = 1,
                 meta_lr: float = 1e-3, meta_batch: int = 25, first_order: bool = False) -> None:
        check_positive(self.name, ("inner_steps", "meta_batch"), inner_lr=inner_lr, inner_steps=inner_steps,
                       meta_lr=meta_lr, meta_batch=meta_batch)
        super().__init__(model, tasks)
        self.inner_lr, self.inner_steps, self.meta_lr, self.meta_batch = inner_lr, inner_steps, meta_lr, meta_batch
        self.first_order = first_order
        self.optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)

    def adapted(self) -> Params:
        """The parameters the inner loop changes (all of them; ANIL: the head only)."""
        return self.params()

    def meta_loss(self, episodes: Episodes) -> Tensor:
        """Mean over the episodes of the query loss after adaptation (Eq. 2's sum, averaged)."""
        model, loss = self.model, self.loss

        def one(p: Params, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
            fast = inner_loop(model, p, xs, ys, loss, self.inner_steps, self.inner_lr, self.first_order)
            return loss(functional_call(model, fast, (xq,)), yq)

        return vmap(one, in_dims=(None, 0, 0, 0, 0))(self.adapted(), *episodes).mean()

    def meta_step(self, episodes: Episodes) -> Tensor:
        loss = self.meta_loss(episodes)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def predict(self, episodes: Episodes, steps: int) -> Tensor:
        return adapt_and_predict(self, self.adapted(), episodes, steps, self.inner_lr)


class FOMAML(MAML):
    """First-order MAML: MAML with `first_order=True`."""

    name = "fomaml"
    summary = "first-order MAML: inner gradients treated as constants (Finn et al. 2017, Sec. 5.2)"

    def __init__(self, model: nn.Module, tasks: TaskSet, inner_lr: float = 0.01, inner_steps: int = 1,
                 meta_lr: float = 1e-3, meta_batch: int = 25) -> None:
        super().__init__(model, tasks, inner_lr, inner_steps, meta_lr, meta_batch, first_order=True)
