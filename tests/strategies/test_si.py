"""Synaptic Intelligence: the path integral on a quadratic toy problem, and the surrogate's gradient."""

import pytest
import torch
from torch import nn

from lifelong.strategies import SI


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
        si.after_step()
        trajectory.append(model.theta.detach().clone())
    return trajectory


def test_path_integral_on_quadratic_matches_analytic():
    a = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    model = Vector([1.0, -2.0, 3.0])
    si = SI(c=0.1, xi=0.1)
    si.attach(FakeTrainer(model), None)
    theta0 = model.theta.detach().clone()
    traj = run_task(si, model, lambda th: 0.5 * (a * th**2).sum(), steps=3000, lr=1e-3)
    omega = si._omega_path[0]
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
    assert si._omega_path[0].abs().max() < 1e-12  # ... but no task-loss progress is credited


def test_bad_options():
    with pytest.raises(ValueError):
        SI(xi=0.0)
