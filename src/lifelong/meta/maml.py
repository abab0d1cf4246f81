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

In your own loop (learn2learn's `MAML` / `clone` / `adapt` shape), on the same functional step:

    maml = MAMLModule(model, lr=0.01)                  # or MAML(model, tasks).clone() / ANIL(...).clone()
    opt = torch.optim.Adam(maml.parameters(), lr=1e-3)  # the meta-parameters: the model's own
    learner = maml.clone()
    learner.adapt(F.mse_loss(learner(x_support), y_support))   # Eq. 1, differentiable (second order)
    F.mse_loss(learner(x_query), y_query).backward()           # Eq. 2's gradient reaches the model
    opt.step()
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ..data.episodes import Episodes
from .base import MetaLearner, Params, adapt_and_predict, check_positive, inner_loop, sgd_step, shard
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
        mine = shard(episodes)
        return self.descend(self.meta_loss, mine, len(mine.yq), len(episodes.yq))

    def predict(self, episodes: Episodes, steps: int) -> Tensor:
        return adapt_and_predict(self, self.adapted(), episodes, steps, self.inner_lr)

    def clone(self, first_order: bool | None = None) -> MAMLModule:
        """A learner for your own loop: adapts the parameters this method's inner loop adapts (`adapted`)
        with `inner_lr`, first order as this method unless `first_order` says otherwise."""
        return MAMLModule(self.model, self.inner_lr, self.first_order if first_order is None else first_order,
                          self.adapted())


class MAMLModule(nn.Module):
    """MAML as a module, for a loop you write (learn2learn's shape): `clone()` a learner per task,
    `learner.adapt(loss)` takes an inner step, `learner(x)` runs the model with the adapted parameters.

    The module's `parameters()` are the wrapped model's own, the meta-parameters, for your optimiser; a
    clone holds the adapted tensors as a dictionary (`fast`) and calls the model through
    `torch.func.functional_call`, so the model is never overwritten and a loss on a clone's output
    differentiates back to the meta-parameters through every `adapt` (second order; `first_order=True`:
    the inner gradients are constants, FOMAML). `adapted`: the names of the parameters to adapt
    (default all that require gradients; ANIL: the head's)."""

    def __init__(self, model: nn.Module, lr: float, first_order: bool = False,
                 adapted: Iterable[str] | None = None) -> None:
        check_positive(type(self).__name__, lr=lr)
        super().__init__()
        self.module, self.lr, self.first_order = model, lr, first_order
        names = set(adapted) if adapted is not None else None
        self.fast: Params = {k: v for k, v in model.named_parameters()
                             if v.requires_grad and (names is None or k in names)}

    def clone(self, first_order: bool | None = None) -> MAMLModule:
        """A learner starting from this one's parameters (the meta-parameters for the root module); adapting
        it leaves this one as it is."""
        twin = MAMLModule(self.module, self.lr, self.first_order if first_order is None else first_order, self.fast)
        twin.fast = dict(self.fast)
        return twin

    def adapt(self, loss: Tensor, first_order: bool | None = None) -> None:
        """One gradient step on `loss` (a scalar computed from this learner's outputs): theta' = theta - lr * grad.
        A parameter that `loss` does not depend on stays as it is."""
        first = self.first_order if first_order is None else first_order
        names = list(self.fast)
        grads = torch.autograd.grad(loss, [self.fast[k] for k in names], create_graph=not first, allow_unused=True,
                                    materialize_grads=True)
        self.fast = sgd_step(self.fast, dict(zip(names, grads)), self.lr, first)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return functional_call(self.module, self.fast, args, kwargs)


class FOMAML(MAML):
    """First-order MAML: MAML with `first_order=True`."""

    name = "fomaml"
    summary = "first-order MAML: inner gradients treated as constants (Finn et al. 2017, Sec. 5.2)"

    def __init__(self, model: nn.Module, tasks: TaskSet, inner_lr: float = 0.01, inner_steps: int = 1,
                 meta_lr: float = 1e-3, meta_batch: int = 25) -> None:
        super().__init__(model, tasks, inner_lr, inner_steps, meta_lr, meta_batch, first_order=True)
