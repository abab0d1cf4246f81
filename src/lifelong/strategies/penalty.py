"""The quadratic penalty shared by EWC, online EWC, SI, MAS and L2:

    penalty(θ) = scale · ( sum_i Ω_i (θ_i − θ*_i)^2 + const )

added to the training loss. Several per-task terms sum_k Ω_k (θ − θ*_k)^2 (EWC) are merged exactly
into one: Ω = sum_k Ω_k, θ* = sum_k Ω_k θ*_k / Ω, const = sum_k Ω_k θ*_k^2 − Ω θ*^2 (same value,
same gradient, memory independent of the number of tasks). With a single term, θ* is the anchor
itself, so the penalty is exactly 0 there.

The penalty enters training through its exact gradient, 2 · scale · Ω (θ − θ*), added to each
parameter's gradient in the `add_grad` hook (one subtraction and one fused multiply-add per
parameter and step, batched over the parameters with `torch._foreach_*`; no autograd graph): the
optimisation is the same as adding the value to the loss, at a
fraction of the cost. The logged training loss is therefore the task's loss; `penalty()` gives the value.

With `step="implicit"` the penalty is instead applied as a proximal step (forward-backward splitting:
Parikh & Boyd 2014, "Proximal Algorithms", sec. 4.2; Lions & Mercier 1979): the optimiser steps on the
task's loss alone to θ~, then `after_step` sets each parameter to the minimiser of

    scale · sum_i Ω_i (θ_i − θ*_i)^2 + |θ − θ~|^2 / (2η),     η = the step of its param group (below),

which, Ω being diagonal, is closed-form and element-wise: θ = (θ~ + 2ηsΩθ*) / (1 + 2ηsΩ), s = scale,
a convex combination of θ~ and θ*, so no weight can make it diverge (s → ∞ gives θ*). For plain SGD
η is the learning rate and this is the implicit (backward) Euler step of the penalised loss. With SGD
momentum β (dampening d) the buffer sees only the task's gradient g and moves θ by lr (1 − d) / (1 − β)
· g once it settles, so η = lr (1 − d) / (1 − β): then the iteration's fixed points are those of the
penalised loss, g + 2sΩ(θ − θ*) = 0, as with the explicit gradient (with η = lr they would be those of
a penalty (1 − β) times weaker). With Adam η is the learning rate and the prox follows Adam's own step:
the moments see only the task's gradient and the pull is not rescaled by Adam's preconditioner. The
default `step="explicit"` is the gradient above.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import distributed
from ..checkpoint import strip_prefix
from ..data import Task
from ..errors import ConfigError
from .base import Strategy

STEPS = ("explicit", "implicit")


def prox_step(opt: torch.optim.Optimizer, group: dict[str, Any]) -> float:
    """η of the implicit step for a param group of `opt`: its learning rate, times (1 − dampening) /
    (1 − momentum) for SGD with momentum (see the module doc); other optimisers: the learning rate."""
    lr = float(group["lr"])
    momentum = float(group["momentum"]) if isinstance(opt, torch.optim.SGD) else 0.0
    return lr * (1 - float(group["dampening"])) / (1 - momentum) if 0 < momentum < 1 else lr


class QuadraticPenalty(Strategy):
    """Holds Ω (importance), θ* (centre) and const per parameter name; subclasses decide Ω and θ*.
    step: "explicit" (the penalty's gradient is added to the task's) or "implicit" (its proximal step
    after the optimiser's; stable at any weight), see the module doc. In a task-free stream the penalty
    consolidates on a schedule (`scheduled`): each window of samples is a task."""

    scheduled = True

    def __init__(self, step: str = "explicit") -> None:
        if step not in STEPS:
            raise ConfigError(f"`step` must be 'explicit' or 'implicit', got {step!r}", f"{self.name}.step")
        self.step = step
        self.omega: dict[str, Tensor] = {}
        self.center: dict[str, Tensor] = {}
        self.const = 0.0
        self._named: tuple[list[Tensor], ...] | None = None  # (θ, Ω, θ*) lists of the penalised parameters
        # the implicit step's (optimiser, its groups' η, scale) and (θ, θ*, weight of θ*) lists
        self._prox_key: tuple[Any, ...] | None = None
        self._prox: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])

    @property
    def scale(self) -> float:
        raise NotImplementedError

    def parameters_now(self) -> dict[str, Tensor]:
        """A detached copy of the model's trainable parameters (the anchor θ*)."""
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def consolidate(self, omega: dict[str, Tensor], anchor: dict[str, Tensor], keep_old_anchors: bool,
                    decay: float = 1.0) -> None:
        """Fold a new term in. keep_old_anchors=True sums per-task terms exactly (EWC); False keeps
        one anchor, the newest, with Ω ← decay · Ω + Ω_new (online EWC, SI, MAS, L2)."""
        if not self.omega:
            self.omega, self.center, self.const = dict(omega), dict(anchor), 0.0
        elif keep_old_anchors:
            const = 0.0
            for n, w in omega.items():
                old_w, old_c, a = self.omega[n], self.center[n], anchor[n]
                total = old_w + w
                center = torch.where(total > 0, (old_w * old_c + w * a) / total.clamp_min(1e-38), a)
                const += float((old_w * old_c**2 + w * a**2 - total * center**2).sum())
                self.omega[n], self.center[n] = total, center
            self.const += const
        else:
            self.omega = {n: decay * self.omega[n] + w for n, w in omega.items()}
            self.center, self.const = dict(anchor), 0.0
        self._named = self._prox_key = None

    def penalty(self) -> Tensor:
        """The penalty's value at the current parameters (differentiable; 0 before the first task)."""
        params = dict(self.model.named_parameters())
        total = sum((((params[n] - c).pow(2) * self.omega[n]).sum() for n, c in self.center.items()),
                    torch.zeros((), device=self.trainer.device))
        return self.scale * (total + self.const)

    @torch.no_grad()
    def add_grad(self) -> None:
        """grad ← grad + 2 · scale · Ω (θ − θ*) for every penalised parameter (nothing with the implicit step)."""
        if not self.omega or self.step == "implicit":
            return
        if self._named is None:
            named = [(p, self.omega[n], self.center[n]) for n, p in self.model.named_parameters() if n in self.omega]
            self._named = tuple(list(a) for a in zip(*named))
        params, omegas, centers = self._named
        grads = []
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        torch._foreach_addcmul_(grads, omegas, torch._foreach_sub(params, centers),
                                value=2 * self.scale)

    @torch.no_grad()
    def after_step(self) -> None:
        """The implicit step: θ ← (θ~ + 2ηsΩθ*) / (1 + 2ηsΩ) for every penalised parameter the optimiser
        trains, written as θ ← θ~ + w (θ* − θ~), w = 2ηsΩ / (1 + 2ηsΩ) in [0, 1], one `lerp` per parameter."""
        if self.step == "explicit" or not self.omega:
            return
        opt = self.trainer.optimizer
        assert opt is not None, "after_step runs inside a training step"
        key = (opt, tuple(prox_step(opt, g) for g in opt.param_groups), self.scale)  # the optimiser by identity
        if key != self._prox_key:
            self._prox_key, self._prox = key, self._proximal_weights(opt)
        params, centers, weights = self._prox
        if params:
            torch._foreach_lerp_(params, centers, weights)

    def _proximal_weights(self, opt: torch.optim.Optimizer) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """(θ, θ*, w) for the penalised parameters in `opt`'s groups, w = x / (1 + x), x = 2 · η · scale · Ω
        (capped at 1e30 so that an infinite x gives w = 1, not inf/inf)."""
        eta = {id(p): prox_step(opt, g) for g in opt.param_groups for p in g["params"]}
        out: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
        for n, p in self.model.named_parameters():
            if n in self.omega and id(p) in eta:
                x = (self.omega[n] * (2 * eta[id(p)] * self.scale)).clamp_(max=1e30)
                for part, value in zip(out, (p, self.center[n], x / (1 + x))):
                    part.append(value)
        return out

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {f"omega.{n}": w for n, w in self.omega.items()}
        state.update({f"center.{n}": c for n, c in self.center.items()})
        state["const"] = self.const
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.omega = strip_prefix(state, "omega.")
        self.center = strip_prefix(state, "center.")
        self.const = float(state.get("const", 0.0))
        self._named = self._prox_key = None

    def task_mean(self, task: Task, samples: int, sums: Callable[[Tensor, Tensor, Tensor], dict[str, Tensor]]
                  ) -> dict[str, Tensor]:
        """The mean over `task`'s training samples (all of them, or `samples` drawn with the trainer's
        seed) of a per-sample statistic, given `sums(x, y, task ids)` of it over a batch, per parameter.
        Under data-parallel training each rank sums over its share of the samples, the sums are
        all-reduced and divided by the whole count, so every rank holds the same mean."""
        n = len(task.train)
        idx = torch.arange(n)
        if 0 < samples < n:
            idx = torch.randperm(n, generator=torch.Generator().manual_seed(self.trainer.seed))[:samples].sort().values
        count, idx = len(idx), distributed.shard(idx)
        x, y = task.train.batch(idx.to(task.train.y.device))
        dev = self.trainer.device
        total = sums(x.to(dev), y.to(dev), torch.full((len(y),), task.id, device=dev))
        distributed.all_reduce_sum(total.values())
        return {k: v / count for k, v in total.items()}
