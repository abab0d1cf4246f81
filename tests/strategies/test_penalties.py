"""EWC, online EWC, MAS and L2: the quadratic penalty, its gradient, merging, state, and effect."""

import dataclasses

import pytest
import torch

import lifelong as ll
from lifelong.strategies import EWC, L2, MAS, OnlineEWC

from ..conftest import small_mlp


class FakeTrainer:
    def __init__(self, model, seed=0):
        self.model, self.seed, self.device = model, seed, torch.device("cpu")


def attached(strategy, model, stream):
    strategy.attach(FakeTrainer(model), stream)
    return strategy


def penalty(strategy):
    return strategy.penalty()


def added_grad(strategy, model):
    """What `add_grad` adds to gradients that already hold something (a stand-in for the task loss)."""
    base = {n: torch.randn_like(p) * 1e-4 for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = base[n].clone()
    strategy.add_grad()
    return {n: p.grad - base[n] for n, p in model.named_parameters()}


def test_penalty_zero_at_anchor_positive_away_and_gradient(digits_stream):
    model = small_mlp(digits_stream)
    ewc = attached(EWC(lam=7.0), model, digits_stream)
    ewc.after_task(digits_stream[0])
    fisher = ewc.estimate(digits_stream[0])
    assert all(f.sum() > 0 for f in fisher.values())  # never silently zero
    assert penalty(ewc).item() == 0.0
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    value = penalty(ewc)
    assert value.item() > 0
    added = added_grad(ewc, model)
    model.zero_grad()
    value.backward()
    for n, p in model.named_parameters():
        expected = 7.0 * fisher[n] * (p.detach() - anchor[n])  # λ F (θ − θ*)
        assert torch.allclose(p.grad, expected, rtol=1e-5, atol=1e-9), n  # the value's autograd gradient ...
        assert torch.allclose(added[n], expected, rtol=1e-4, atol=1e-9), n  # ... is what training adds
    want = sum((3.5 * fisher[n] * (p.detach() - anchor[n]) ** 2).sum() for n, p in model.named_parameters())
    assert value.item() == pytest.approx(want.item(), rel=1e-5)


def test_merged_terms_equal_sum_of_per_task_terms(digits_stream):
    model = small_mlp(digits_stream).double()
    ewc = attached(EWC(lam=2.0), model, digits_stream)
    terms = []
    tasks = [dataclasses.replace(t, train=ll.data.Split(t.train.x.double(), t.train.y))
             for t in digits_stream.tasks[:3]]
    for task in tasks:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        terms.append((ewc.estimate(task), {n: p.detach().clone() for n, p in model.named_parameters()}))
        ewc.consolidate(*terms[-1], keep_old_anchors=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    params = dict(model.named_parameters())
    want = sum((1.0 * f[n] * (params[n] - a[n]) ** 2).sum() for f, a in terms for n in f)
    got = penalty(ewc)
    assert got.item() == pytest.approx(want.item(), rel=1e-9)
    g_want = torch.autograd.grad(want, list(params.values()))
    g_got = added_grad(ewc, model).values()
    assert all(torch.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(g_got, g_want))


def test_online_ewc_decays_one_running_fisher(digits_stream):
    model = small_mlp(digits_stream)
    on = attached(OnlineEWC(lam=1.0, gamma=0.5), model, digits_stream)
    f0 = on.estimate(digits_stream[0])
    on.after_task(digits_stream[0])
    with torch.no_grad():
        model.head.bias.add_(0.3)
    f1 = on.estimate(digits_stream[1])
    on.after_task(digits_stream[1])
    for n in f0:
        assert torch.allclose(on.omega[n], 0.5 * f0[n] + f1[n])
    assert torch.equal(on.center["head.bias"], model.head.bias.detach())  # one anchor: the newest


def test_l2_gradient_is_lambda_times_displacement(digits_stream):
    model = small_mlp(digits_stream)
    l2 = attached(L2(lam=3.0), model, digits_stream)
    l2.after_task(digits_stream[0])
    with torch.no_grad():
        model.head.weight.add_(0.1)
    added = added_grad(l2, model)
    assert torch.allclose(added["head.weight"], torch.full_like(model.head.weight, 0.3))
    assert added["features.1.weight"].abs().max() == 0


def test_mas_importance_is_non_negative_and_label_free(digits_stream):
    model = small_mlp(digits_stream)
    mas = attached(MAS(), model, digits_stream)
    task = digits_stream[0]
    mas.after_task(task)
    first = {n: w.clone() for n, w in mas.omega.items()}
    assert all((w >= 0).all() and w.sum() > 0 for w in first.values())
    shuffled = ll.data.Task(0, ll.data.Split(task.train.x, task.train.y.flip(0)), task.test, task.classes, task.units)
    mas2 = attached(MAS(), model, digits_stream)
    mas2.after_task(shuffled)
    assert all(torch.allclose(first[n], mas2.omega[n]) for n in first)  # labels do not matter


@pytest.mark.parametrize("scenario", ["class", "task"])
def test_mas_output_norm_covers_the_classes_seen_so_far(digits, scenario):
    """Ω of the head's bias is (1/N) sum_n |2 F_c(x_n)|: class-IL over every class seen so far (the
    paper's whole output), task-IL over the task's own head."""
    stream = ll.data.split(digits, n_tasks=5, scenario=scenario, seed=0, class_order=list(range(10)))
    model = small_mlp(stream)
    mas = attached(MAS(), model, stream)
    mas.after_task(stream[1])
    with torch.no_grad():
        expect = (2 * model(stream[1].train.x)).abs().mean(0)
    units = [0, 1, 2, 3] if scenario == "class" else [2, 3]
    assert torch.allclose(mas.omega["head.bias"][units], expect[units], rtol=1e-4)
    assert mas.omega["head.bias"][[u for u in range(10) if u not in units]].abs().max() == 0


@pytest.mark.parametrize("make", [lambda: EWC(lam=5.0), lambda: OnlineEWC(lam=5.0), lambda: MAS(lam=2.0),
                                  lambda: L2(lam=1.0)])
def test_state_dict_round_trip(digits_stream, make):
    model = small_mlp(digits_stream)
    a = attached(make(), model, digits_stream)
    a.after_task(digits_stream[0])
    state = a.state_dict()
    assert a.memory_bytes() == sum(v.numel() * 4 for k, v in state.items() if isinstance(v, torch.Tensor)) > 0
    b = attached(make(), model, digits_stream)
    b.load_state_dict(state)
    with torch.no_grad():
        model.head.bias.add_(0.2)
    assert penalty(a).item() == penalty(b).item() > 0


@pytest.mark.parametrize("strategy", [EWC(lam=1e4), MAS(lam=100.0), L2(lam=10.0)])
def test_penalty_reduces_drift_from_first_task(digits, strategy):
    stream = ll.data.split(digits, n_tasks=2, scenario="task", seed=0)

    def drift(s):
        model = small_mlp(stream)
        trainer = ll.Trainer(model, s, epochs=3, batch_size=16, seed=0)
        snapshot = {}

        class Snap(ll.Strategy):
            def after_task(self, task):
                if task.id == 0:
                    snapshot.update({n: p.detach().clone() for n, p in model.named_parameters()})

        trainer.strategy = ll.Compose(Snap(), s)
        r = trainer.fit(stream)
        moved = sum((p.detach() - snapshot[n]).pow(2).sum() for n, p in model.named_parameters()
                    if n != "head.weight" and n != "head.bias")
        return moved.item(), r

    naive_drift, _ = drift(ll.strategies.Naive())
    reg_drift, result = drift(strategy)
    assert reg_drift < naive_drift / 3
    assert result.strategy_memory_bytes > 0


def test_huge_penalty_with_sgd_stops_with_clear_error(digits):
    stream = ll.data.split(digits, n_tasks=2, scenario="class", seed=0)
    trainer = ll.Trainer(small_mlp(stream), EWC(lam=1e14), optimizer="sgd", lr=1.0, epochs=2, seed=0)
    with pytest.raises(ll.TrainingError, match="non-finite"):
        trainer.fit(stream)


@pytest.mark.parametrize("bad", [lambda: EWC(lam=-1), lambda: EWC(fisher="exact"), lambda: EWC(samples=-2),
                                 lambda: OnlineEWC(gamma=1.5), lambda: MAS(lam=-1), lambda: L2(lam=-0.1)])
def test_bad_hyper_parameters(bad):
    with pytest.raises(ll.ConfigError):
        bad()


def test_samples_option_uses_a_subset(digits_stream):
    model = small_mlp(digits_stream)
    full = attached(EWC(), model, digits_stream).estimate(digits_stream[0])
    part = attached(EWC(samples=20), model, digits_stream).estimate(digits_stream[0])
    assert not torch.allclose(full["head.weight"], part["head.weight"])
