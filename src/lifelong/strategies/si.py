"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017, eqs. 3-5).

While task μ is learnt, each parameter's contribution to the drop in loss is accumulated along the
optimisation path, ω_k = −sum_t g_k(t) Δθ_k(t), Δθ(t) = θ(t+1) − θ(t), with g the gradient of the
task's own loss (the surrogate's analytic gradient is not counted, as in the paper). After the task,
with Δ_k the parameter's total change over the task,

    Ω_k ← max(0, Ω_k + ω_k / (Δ_k^2 + ξ)),      θ̃ ← θ,      L(θ) = L_μ(θ) + c · sum_k Ω_k (θ_k − θ̃_k)^2

The clamp at zero is the authors' code's (a ReLU on the accumulated Ω at each task's end): a parameter
whose path went uphill (ω < 0, e.g. with momentum or noisy steps) would otherwise get a negative
importance, and the surrogate would push it away from its anchor.

The sum is kept in its telescoped form (summation by parts; exact, not an approximation):

    ω = sum_{t<T} θ(t) (g(t) − g(t−1)) − θ(T) g(T−1),      g(−1) = 0,

so each step costs one subtraction and one multiply-add against the previous step's gradient, kept by
reference: the parameter's `.grad` is replaced by a new tensor (g plus the surrogate's gradient, which
is computed anyway; a copy of g in the first task or with the implicit step), so g itself stays untouched.
No copy of θ per step and, with the explicit step, no `after_step` work.

Data-parallel training needs nothing more: `add_grad` runs after the Trainer has averaged the
gradients over the ranks, so g(t) is the global batch's gradient, and the parameters move alike on
every rank: every rank accumulates the same ω and holds the same Ω and θ̃.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..data import Task
from ..configs import non_negative
from .penalty import QuadraticPenalty


class SI(QuadraticPenalty):
    """SI. c: the surrogate's strength (default 10, the best of 0.1-100 in the validation sweep in BENCHMARKS.md;
    the paper, with plain SGD: 0.1 on Permuted MNIST, 1 on Split MNIST); xi: the damping ξ (default
    0.1, the paper's Permuted MNIST value); step: as for EWC."""

    name = "si"
    summary = "Synaptic Intelligence (Zenke et al. 2017): path-integral importance, quadratic surrogate"

    def __init__(self, c: float = 10.0, xi: float = 0.1, step: str = "explicit") -> None:
        super().__init__(step)
        non_negative({"c": c}, "si")
        non_negative({"xi": xi}, "si", positive=True)
        self.c, self.xi = c, xi
        # while a task is learnt: the parameters, their values at its start, the telescoped sum and g(t−1)
        self._params: list[tuple[str, Tensor]] = []
        self._start: list[Tensor] = []
        self._path: list[Tensor] = []
        self._last: list[Tensor] | None = None
        self._aligned: tuple[list[Tensor], list[Tensor]] | None = None  # 2cΩ, 2cΩθ̃ in the order of _params

    @property
    def scale(self) -> float:
        return self.c

    def before_task(self, task: Task) -> None:
        self._params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self._start = [p.detach().clone() for _, p in self._params]
        self._path = [torch.zeros_like(p) for _, p in self._params]
        self._last, self._aligned = None, None

    @torch.no_grad()
    def add_grad(self) -> None:
        """Fold g(t), the gradient of the task's loss, into the sum; then give each parameter a new
        `.grad`, g(t) plus the surrogate's gradient, so that g(t) itself stays untouched for the next step."""
        params = [p for _, p in self._params]
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        if self._last is None:
            torch._foreach_addcmul_(self._path, params, grads)
        else:
            torch._foreach_sub_(self._last, grads)  # g(t−1) − g(t), in g(t−1)'s buffer
            torch._foreach_addcmul_(self._path, params, self._last, value=-1.0)
        self._last = grads
        if not self.omega or self.step == "implicit":  # the implicit step pulls in `after_step`
            for p, g in zip(params, grads):
                p.grad = g.clone()
            return
        scaled, shift = self._surrogate()
        new = torch._foreach_addcmul(grads, scaled, params)  # g + 2cΩθ − 2cΩθ̃, no temporary
        torch._foreach_sub_(new, shift)
        for p, g in zip(params, new):
            p.grad = g

    def _surrogate(self) -> tuple[list[Tensor], list[Tensor]]:
        """2cΩ and 2cΩθ̃ aligned with the trained parameters (0 for one the surrogate does not hold)."""
        if self._aligned is None:
            value = 2 * self.scale
            scaled = [value * self.omega[n] if n in self.omega else torch.zeros_like(p) for n, p in self._params]
            self._aligned = (scaled, [w * self.center[n] if n in self.center else torch.zeros_like(p)
                                      for w, (n, p) in zip(scaled, self._params)])
        return self._aligned

    def path_integral(self) -> list[Tensor]:
        """ω so far in the current task, one tensor per trainable parameter."""
        if self._last is None:
            return [w.clone() for w in self._path]
        return [torch.addcmul(w, p.detach(), g, value=-1.0)
                for w, (_, p), g in zip(self._path, self._params, self._last)]

    def after_task(self, task: Task) -> None:
        omega = {}
        for (name, p), start, w in zip(self._params, self._start, self.path_integral()):
            omega[name] = w / ((p.detach() - start) ** 2 + self.xi)
        self.consolidate(omega, self.parameters_now(), keep_old_anchors=False)
        for w in self.omega.values():
            w.clamp_(min=0.0)
        self._params, self._start, self._path, self._last = [], [], [], None

    def state_dict(self) -> dict[str, Any]:
        """The penalty's state; while a task is learnt, also its path so far (start, sum, g(t−1)), so
        that a fit resumed in the middle of a task continues the path integral exactly."""
        state = super().state_dict()
        for i, ((name, _), start, path) in enumerate(zip(self._params, self._start, self._path)):
            state |= {f"start.{name}": start, f"path.{name}": path}
            if self._last is not None:
                state[f"last.{name}"] = self._last[i]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if any(k.startswith("path.") for k in state):
            self._params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
            self._start, self._path = (
                [state[f"{kind}.{n}"].clone() for n, _ in self._params] for kind in ("start", "path"))
            self._aligned = None
            last = [state.get(f"last.{n}") for n, _ in self._params]
            self._last = None if last[0] is None else [state[f"last.{n}"].clone() for n, _ in self._params]
