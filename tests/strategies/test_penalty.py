"""The quadratic penalty's implicit (proximal) step, `step="implicit"`, against its explicit gradient (the
penalty itself, its merging and state: test_penalties.py)."""

import pytest
import torch

import lifelong as ll
from lifelong.strategies import EWC, L2, MAS, SI, OnlineEWC

from ..conftest import small_mlp


class FakeTrainer:
    def __init__(self, model, optimizer=None):
        self.model, self.optimizer, self.seed, self.device = model, optimizer, 0, torch.device("cpu")


def with_terms(strategy, model, groups, seed=0):
    """`strategy` attached to `model` with an SGD optimiser over `groups` (lists of its parameters, with
    their learning rates) and one random term: Ω > 0 and θ* for every parameter."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD([{"params": ps, "lr": lr} for ps, lr in groups], lr=1.0)
    strategy.attach(FakeTrainer(model, opt), None)
    named = dict(model.named_parameters())
    omega = {n: torch.rand(p.shape, generator=g, dtype=p.dtype) * 3 for n, p in named.items()}
    center = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in named.items()}
    strategy.consolidate(omega, center, keep_old_anchors=True)
    return strategy


def test_proximal_step_minimises_penalty_plus_distance(digits_stream):
    """θ = argmin s Σ Ω(θ − θ*)² + |θ − θ~|²/(2η): the objective's gradient 2sΩ(θ − θ*) + (θ − θ~)/η is 0,
    with each parameter's own group's η; a parameter the optimiser does not train is left alone; a new
    learning rate is picked up at the next step."""
    model = small_mlp(digits_stream, hidden=(8,)).double()
    (w0, b0), w1 = model.features[1].parameters(), model.head.weight
    ewc = with_terms(EWC(lam=6.0, step="implicit"), model, [([w0, b0], 0.01), ([w1], 0.3)])
    s = ewc.scale
    for lr_head in (0.3, 0.05):
        ewc.trainer.optimizer.param_groups[1]["lr"] = lr_head
        before = {n: p.detach().clone() for n, p in model.named_parameters()}  # θ~
        ewc.after_step()
        lrs = {"features.1.weight": 0.01, "features.1.bias": 0.01, "head.weight": lr_head}
        for n, p in model.named_parameters():
            if n in lrs:
                grad = 2 * s * ewc.omega[n] * (p.detach() - ewc.center[n]) + (p.detach() - before[n]) / lrs[n]
                assert grad.abs().max() < 1e-10, n
                assert not torch.equal(p.detach(), before[n]), n
            else:
                assert torch.equal(p.detach(), before[n]), n  # head.bias: in no group


@pytest.mark.parametrize("sgd", [{}, {"momentum": 0.9}, {"momentum": 0.9, "dampening": 0.5},
                                 {"momentum": 0.5, "nesterov": True}])
def test_fixed_point_is_that_of_the_penalised_loss(sgd):
    """Under a constant task gradient g, SGD (with or without momentum) followed by the implicit step
    settles where g + 2sΩ(θ − θ*) = 0, as the explicit gradient does: η includes momentum's 1 / (1 − β)."""
    model = torch.nn.Linear(4, 3).double()
    ewc = with_terms(EWC(lam=4.0, step="implicit"), model, [(list(model.parameters()), 0.05)])
    ewc.trainer.optimizer = opt = torch.optim.SGD(model.parameters(), lr=0.05, **sgd)
    g = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    for _ in range(3000):
        for n, p in model.named_parameters():
            p.grad = g[n].clone()
        opt.step()
        ewc.after_step()
    for n, p in model.named_parameters():
        residual = g[n] + 2 * ewc.scale * ewc.omega[n] * (p.detach() - ewc.center[n])
        assert residual.abs().max() < 1e-8, n


def test_zero_weight_leaves_parameters_and_huge_weight_reaches_anchor(digits_stream):
    model = small_mlp(digits_stream)
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    with_terms(EWC(lam=0.0, step="implicit"), model, [(params, 0.01)]).after_step()
    assert all(torch.equal(p.detach(), b) for p, b in zip(params, before))
    for lam in (1e12, 1e300):  # 1e300: 2ηsΩ overflows float32 to inf
        ewc = with_terms(EWC(lam=lam, step="implicit"), model, [(params, 0.01)])
        ewc.after_step()
        for n, p in model.named_parameters():
            assert torch.isfinite(p).all()
            assert torch.allclose(p.detach(), ewc.center[n], rtol=0, atol=1e-6), n


def test_explicit_step_is_the_exact_gradient_bit_for_bit(digits_stream):
    """The default adds 2sΩ(θ − θ*) to the gradient exactly as before and leaves the parameters to the
    optimiser; the implicit step adds nothing to the gradient."""
    model = small_mlp(digits_stream)
    params = list(model.parameters())
    explicit = with_terms(EWC(lam=7.0), model, [(params, 0.01)])
    assert explicit.step == "explicit" and explicit.options()["step"] == "explicit"
    grads = [torch.randn_like(p) for p in params]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    explicit.add_grad()
    before = [p.detach().clone() for p in params]
    explicit.after_step()
    for (n, p), g, b in zip(model.named_parameters(), grads, before):
        want = torch.addcmul(g, explicit.omega[n], p.detach() - explicit.center[n], value=7.0)
        assert torch.equal(p.grad, want), n
        assert torch.equal(p.detach(), b), n
    implicit = with_terms(EWC(lam=7.0, step="implicit"), model, [(params, 0.01)])
    for p, g in zip(params, grads):
        p.grad = g.clone()
    implicit.add_grad()
    assert all(torch.equal(p.grad, g) for p, g in zip(params, grads))
    assert implicit.state_dict().keys() == explicit.state_dict().keys()


def test_si_implicit_keeps_the_task_gradient(digits_stream):
    """SI's `add_grad` follows its path integral either way, but adds its surrogate's gradient only with
    the explicit step."""
    model = small_mlp(digits_stream)
    for step, changed in (("explicit", True), ("implicit", False)):
        si = with_terms(SI(c=5.0, step=step), model, [(list(model.parameters()), 0.01)])
        si.before_task(digits_stream[1])
        grads = [torch.randn_like(p) for p in model.parameters()]
        for p, g in zip(model.parameters(), grads):
            p.grad = g.clone()
        si.add_grad()
        assert any(not torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads)) is changed


@pytest.mark.parametrize("make", [lambda s: EWC(lam=1e6, step=s), lambda s: OnlineEWC(lam=1e6, step=s),
                                  lambda s: MAS(lam=1e6, step=s), lambda s: L2(lam=1e6, step=s)])
def test_implicit_step_trains_where_explicit_diverges(digits, make):
    """SGD 0.01 momentum 0.9 at λ = 1e6: the explicit gradient diverges, the implicit step trains to a
    finite loss and keeps the first task."""
    stream = ll.data.split(digits, n_tasks=2, scenario="task", seed=0)

    def fit(step):
        trainer = ll.Trainer(small_mlp(stream, hidden=(32,)), make(step), optimizer="sgd", lr=0.01, momentum=0.9,
                             epochs=3, batch_size=32, seed=0)
        return trainer.fit(stream)

    with pytest.raises(ll.TrainingError, match="non-finite"):
        fit("explicit")
    result = fit("implicit")
    assert all(torch.isfinite(torch.tensor(losses)).all() for losses in result.losses)
    assert result.matrix[1][0] >= result.matrix[0][0] - 0.1


@pytest.mark.parametrize("make", [lambda: EWC(step="prox"), lambda: OnlineEWC(step=""), lambda: SI(step="Implicit"),
                                  lambda: MAS(step=None), lambda: L2(step="adam")])
def test_bad_step(make):
    with pytest.raises(ll.ConfigError, match="`step` must be 'explicit' or 'implicit'") as err:
        make()
    assert err.value.argument.endswith(".step")
