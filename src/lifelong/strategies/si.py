"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017, eqs. 3-5).

While task μ is learnt, each parameter's contribution to the drop in loss is accumulated along the
optimisation path, ω_k ← ω_k − g_k(t) Δθ_k(t) per step, with g the gradient of the task's own loss
(the surrogate's analytic gradient is subtracted from the total gradient, as in the paper). After
the task, with Δ_k the parameter's total change over the task,

    Ω_k ← Ω_k + ω_k / (Δ_k^2 + ξ),      θ̃ ← θ,      L(θ) = L_μ(θ) + c · sum_k Ω_k (θ_k − θ̃_k)^2
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..data import Task
from ..errors import ConfigError
from .penalty import QuadraticPenalty


class SI(QuadraticPenalty):
    """SI. c: the surrogate's strength (default 10, the best of 0.1-100 in the sweep in BENCHMARKS.md;
    the paper, with plain SGD: 0.1 on Permuted MNIST, 1 on Split MNIST); xi: the damping ξ (default
    0.1, the paper's Permuted MNIST value)."""

    name = "si"
    summary = "Synaptic Intelligence (Zenke et al. 2017): path-integral importance, quadratic surrogate"

    def __init__(self, c: float = 10.0, xi: float = 0.1) -> None:
        super().__init__()
        if c < 0 or xi <= 0:
            raise ConfigError(f"--si-c must be >= 0 and --si-xi > 0, got c={c}, xi={xi}")
        self.c, self.xi = c, xi
        self._params: list[tuple[str, Tensor]] = []  # while a task is learnt: the parameters and their path
        self._start: list[Tensor] = []
        self._prev: list[Tensor] = []
        self._omega_path: list[Tensor] = []

    @property
    def scale(self) -> float:
        return self.c

    def before_task(self, task: Task) -> None:
        self._params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self._start = [p.detach().clone() for _, p in self._params]
        self._prev = [p.detach().clone() for _, p in self._params]
        self._grads = [torch.zeros_like(p) for _, p in self._params]
        self._omega_path = [torch.zeros_like(p) for _, p in self._params]

    @torch.no_grad()
    def add_grad(self) -> None:
        """Keep g, the gradient of the task's loss, then add the surrogate's own gradient to it."""
        torch._foreach_copy_(self._grads, [torch.zeros_like(p) if p.grad is None else p.grad for _, p in self._params])
        super().add_grad()

    @torch.no_grad()
    def after_step(self) -> None:
        """ω ← ω − g Δθ, Δθ = θ_now − θ_prev (no allocation: −Δθ is formed in θ_prev's buffer)."""
        now = [p for _, p in self._params]
        torch._foreach_sub_(self._prev, now)
        torch._foreach_addcmul_(self._omega_path, self._grads, self._prev)
        torch._foreach_copy_(self._prev, now)

    def after_task(self, task: Task) -> None:
        omega = {}
        for (name, p), start, w in zip(self._params, self._start, self._omega_path):
            omega[name] = w / ((p.detach() - start) ** 2 + self.xi)
        self.consolidate(omega, self.parameters_now(), keep_old_anchors=False)
        self._params, self._start, self._prev, self._omega_path = [], [], [], []

    def state_dict(self) -> dict[str, Any]:
        """The penalty's state; while a task is learnt, also its path so far (start, latest θ, ω), so
        that a fit resumed in the middle of a task continues the path integral exactly."""
        state = super().state_dict()
        for (name, _), start, prev, path in zip(self._params, self._start, self._prev, self._omega_path):
            state |= {f"start.{name}": start, f"prev.{name}": prev, f"path.{name}": path}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if any(k.startswith("path.") for k in state):
            self._params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
            self._start, self._prev, self._omega_path = (
                [state[f"{kind}.{n}"].clone() for n, _ in self._params] for kind in ("start", "prev", "path"))
            self._grads = [torch.zeros_like(p) for _, p in self._params]
