"""Synaptic Intelligence: the path integral on a quadratic toy problem, and the surrogate's gradient."""

from dataclasses import replace

import pytest
import torch
from torch import nn

import lifelong as ll
from lifelong.data.stream import Split
from lifelong.strategies import SI

from ..conftest import small_mlp


class Vector(nn.Module):
    def __init__(self, values):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(values, dtype=torch.float64))


class FakeTrainer:
    def __init__(self, model):
        self.model, self.device = model, torch.device("cpu")


def run_task(si, model, loss_fn, steps, lr):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    si.before_task(None)
    trajectory = [model.theta.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model.theta).backward()
        si.add_grad()
        opt.step()
        trajectory.append(model.theta.detach().clone())
    return trajectory


def test_path_integral_on_quadratic_matches_analytic():
    a = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    model = Vector([1.0, -2.0, 3.0])
    si = SI(c=0.1, xi=0.1)
    si.attach(FakeTrainer(model), None)
    theta0 = model.theta.detach().clone()
    traj = run_task(si, model, lambda th: 0.5 * (a * th**2).sum(), steps=3000, lr=1e-3)
    omega = si.path_integral()[0]
    # exact discrete sum: ω = Σ_t −g_t Δθ_t with g_t = a θ_t and Δθ_t = −lr g_t
    discrete = sum(1e-3 * (a * th) ** 2 for th in traj[:-1])
    assert torch.allclose(omega, discrete, rtol=1e-10)
    # continuous path integral −∫ g dθ = L(θ_0) − L(θ_T), per parameter
    analytic = 0.5 * a * (theta0**2 - traj[-1] ** 2)
    assert torch.allclose(omega, analytic, rtol=2e-3)
    si.after_task(None)
    delta = traj[-1] - theta0
    assert torch.allclose(si.omega["theta"], analytic / (delta**2 + 0.1), rtol=2e-3)
    assert torch.equal(si.center["theta"], traj[-1])


def test_surrogate_gradient_is_not_counted_as_task_progress():
    model = Vector([1.0, -1.0])
    si = SI(c=1.0, xi=0.1)
    si.attach(FakeTrainer(model), None)
    run_task(si, model, lambda th: 0.5 * (th**2).sum(), steps=200, lr=1e-2)
    si.after_task(None)
    with torch.no_grad():
        model.theta.add_(0.5)  # move away: only the surrogate pulls back
    traj = run_task(si, model, lambda th: 0.0 * th.sum(), steps=50, lr=1e-2)
    assert not torch.equal(traj[0], traj[-1])  # the penalty did move θ ...
    assert si.path_integral()[0].abs().max() < 1e-12  # ... but no task-loss progress is credited


class ClipInPlace(ll.Strategy):
    """Changes the gradient in place after SI has seen it (as a projection or a mask would)."""

    def after_backward(self):
        for p in self.model.parameters():
            p.grad.mul_(0.5)


def test_path_integral_equals_the_discrete_sum_under_adam_with_penalty_and_in_place_hooks(digits):
    """ω = −Σ g_t Δθ_t with g the task loss's own gradient (before the surrogate and before other
    strategies' in-place changes), checked against a sum kept step by step, on both tasks."""
    stream = ll.data.split(digits, n_tasks=2, scenario="task", seed=0)
    model = small_mlp(stream).double()
    si, clip = SI(c=1.0), ClipInPlace()
    record, checks = [], []

    class Record(ll.Strategy):
        def batch(self, x, y, t):
            self.before = [p.detach().clone() for p in model.parameters()]
            return x, y, t

        def add_grad(self):  # runs before SI's add_grad in the Compose: the task loss's gradient
            self.g = [p.grad.detach().clone() for p in model.parameters()]

        def after_step(self):
            record.append([-g * (p.detach() - b) for g, p, b in zip(self.g, model.parameters(), self.before)])

        def before_task(self, task):
            record.clear()

        def after_task(self, task):
            checks.append((si.path_integral(), [sum(r[i] for r in record) for i in range(len(record[0]))]))

    rec = Record()
    double = [replace(k, train=Split(k.train.x.double(), k.train.y), test=Split(k.test.x.double(), k.test.y))
              for k in stream.tasks]
    stream = replace(stream, tasks=double)
    ll.Trainer(model, ll.Compose(rec, si, clip), epochs=2, batch_size=32, seed=0).fit(stream)
    assert si.omega  # the second task trained with the surrogate active
    assert len(checks) == 2
    for task in checks:
        for got, expected in zip(*task):
            assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_bad_options():
    with pytest.raises(ValueError):
        SI(xi=0.0)


def test_importance_is_clamped_at_zero_after_each_task():
    """A path that climbs the task's loss (here the surrogate drags θ_0 back against the task's
    gradient) gives ω < 0; Ω = max(0, Ω + ω/(Δ² + ξ)) as in the authors' code, so the surrogate never
    pushes a parameter away from its anchor."""
    model = Vector([1.0, 1.0])
    si = SI(c=10.0, xi=0.1)
    si.attach(FakeTrainer(model), None)
    run_task(si, model, lambda th: 0.5 * (th**2).sum(), steps=100, lr=1e-2)  # downhill: Ω > 0
    si.after_task(None)
    first = si.omega["theta"].clone()
    assert (first > 0).all()
    with torch.no_grad():
        model.theta.add_(0.5)
    traj = run_task(si, model, lambda th: -5.0 * th[0] + 0.5 * th[1] ** 2, steps=500, lr=1e-2)
    w, delta = si.path_integral()[0], traj[-1] - traj[0]
    unclamped = first + w / (delta**2 + si.xi)
    assert unclamped[0] < 0 < unclamped[1]
    si.after_task(None)
    assert si.omega["theta"][0] == 0.0
    assert torch.allclose(si.omega["theta"][1], unclamped[1])
    model.theta.grad = torch.zeros_like(model.theta)
    with torch.no_grad():
        model.theta.add_(1.0)
    si.before_task(None)
    si.add_grad()  # the surrogate's gradient: none on the parameter whose importance is 0
    assert model.theta.grad[0] == 0.0 and model.theta.grad[1] > 0
