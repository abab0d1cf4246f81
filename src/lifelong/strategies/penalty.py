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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import distributed
from ..checkpoint import strip_prefix
from ..data import Task
from .base import Strategy


class QuadraticPenalty(Strategy):
    """Holds Ω (importance), θ* (centre) and const per parameter name; subclasses decide Ω and θ*."""

    def __init__(self) -> None:
        self.omega: dict[str, Tensor] = {}
        self.center: dict[str, Tensor] = {}
        self.const = 0.0
        self._named: tuple[list[Tensor], ...] | None = None  # (θ, Ω, θ*) lists of the penalised parameters

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
        self._named = None

    def penalty(self) -> Tensor:
        """The penalty's value at the current parameters (differentiable; 0 before the first task)."""
        params = dict(self.model.named_parameters())
        total = sum((((params[n] - c).pow(2) * self.omega[n]).sum() for n, c in self.center.items()),
                    torch.zeros((), device=self.trainer.device))
        return self.scale * (total + self.const)

    @torch.no_grad()
    def add_grad(self) -> None:
        """grad ← grad + 2 · scale · Ω (θ − θ*) for every penalised parameter."""
        if not self.omega:
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

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {f"omega.{n}": w for n, w in self.omega.items()}
        state.update({f"center.{n}": c for n, c in self.center.items()})
        state["const"] = self.const
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.omega = strip_prefix(state, "omega.")
        self.center = strip_prefix(state, "center.")
        self.const = float(state.get("const", 0.0))
        self._named = None

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
