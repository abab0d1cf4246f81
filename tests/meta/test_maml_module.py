"""MAMLModule / MAML.clone: learn2learn's clone-adapt loop, written by the user, on the library's functional step."""

import copy

import pytest
import torch
import torch.nn.functional as F

from lifelong.errors import ConfigError
from lifelong.meta import ANIL, FOMAML, MAML, MAMLModule

from .conftest import regression_tasks, tiny_net


def user_meta_loss(maml, episodes, steps):
    """What a learn2learn user writes: per task, clone, adapt on the support set, loss on the query set."""
    total = 0
    for xs, ys, xq, yq in zip(*episodes):
        learner = maml.clone()
        for _ in range(steps):
            learner.adapt(F.mse_loss(learner(xs), ys))
        total = total + F.mse_loss(learner(xq), yq)
    return total / len(episodes.xs)


def grads(model, loss):
    return torch.autograd.grad(loss, list(model.parameters()))


@pytest.mark.parametrize("method, steps", [(MAML, 1), (MAML, 3), (FOMAML, 2), (ANIL, 2)])
def test_a_user_written_meta_step_has_the_library_meta_gradient(toy_episodes, method, steps):
    learner = method(tiny_net(), regression_tasks(), inner_lr=0.3, inner_steps=steps, meta_batch=3)
    library = grads(learner.model, learner.meta_loss(toy_episodes))
    user = grads(learner.model, user_meta_loss(learner, toy_episodes, steps))
    for a, b in zip(library, user, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    assert any(g.abs().sum() > 0 for g in user)


def test_the_standalone_wrapper_with_the_users_optimiser_takes_the_librarys_meta_step(toy_episodes):
    learner = MAML(tiny_net(), regression_tasks(), inner_lr=0.3, inner_steps=2, meta_lr=0.01, meta_batch=3)
    model = copy.deepcopy(learner.model)
    learner.meta_step(toy_episodes)
    maml = MAMLModule(model, lr=0.3)
    assert list(maml.parameters()) == list(model.parameters())
    opt = torch.optim.Adam(maml.parameters(), lr=0.01)
    opt.zero_grad()
    user_meta_loss(maml, toy_episodes, 2).backward()
    opt.step()
    for a, b in zip(learner.model.parameters(), model.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("first_order", [False, True])
def test_one_step_on_a_linear_model_by_hand(first_order):
    # f(x) = w x (scalar), L(w) = (w x - y)^2: w' = w - a 2 x (w xs - ys) = w (1 - 2 a xs^2) + 2 a xs ys;
    # dL_q(w')/dw = 2 (w' xq - yq) xq (1 - 2 a xs^2), without the last factor to first order.
    w, a, xs, ys, xq, yq = 0.7, 0.1, 1.5, -0.4, -2.0, 0.9
    model = torch.nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(w)
    learner = MAMLModule(model, lr=a, first_order=first_order).clone()
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
    learner.adapt((learner(t(xs)) - t(ys)).pow(2).sum())
    w1 = w - a * 2 * xs * (w * xs - ys)
    assert learner.fast["weight"].item() == pytest.approx(w1, rel=1e-14)
    (learner(t(xq)) - t(yq)).pow(2).sum().backward()
    expected = 2 * (w1 * xq - yq) * xq * (1 if first_order else 1 - 2 * a * xs**2)
    assert model.weight.grad.item() == pytest.approx(expected, rel=1e-12)


def test_adapting_a_clone_leaves_the_model_and_other_clones_alone(toy_episodes):
    model = tiny_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    maml = MAMLModule(model, lr=0.3)
    first, second = maml.clone(), maml.clone()
    xs, ys = toy_episodes.xs[0], toy_episodes.ys[0]
    loss = F.mse_loss(first(xs), ys)
    first.adapt(loss)
    assert F.mse_loss(first(xs), ys) < loss
    assert torch.equal(second(xs), model(xs)) and torch.equal(maml(xs), model(xs))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    again = first.clone()  # a clone of an adapted learner starts where it is
    assert torch.equal(again(xs), first(xs))


def test_anil_clone_adapts_the_head_only(toy_episodes):
    learner = ANIL(tiny_net(), regression_tasks(), inner_lr=0.3).clone()
    assert set(learner.fast) == {"head.weight", "head.bias"}
    learner.adapt(F.mse_loss(learner(toy_episodes.xs[0]), toy_episodes.ys[0]))
    assert set(learner.fast) == {"head.weight", "head.bias"}


def test_frozen_parameters_are_not_adapted_and_unused_ones_stay():
    model = tiny_net()
    model.features[0].bias.requires_grad_(False)
    learner = MAMLModule(model, lr=0.1).clone()
    assert "features.0.bias" not in learner.fast
    x = torch.randn(4, 2, dtype=torch.float64)
    learner.adapt(learner.module.features(x).sum())  # the head is unused: its gradient is zero
    assert torch.equal(learner.fast["head.weight"], model.head.weight)


@pytest.mark.parametrize("lr", [0, -1.0, float("nan")])
def test_a_bad_learning_rate_names_the_argument(lr):
    with pytest.raises(ConfigError, match="`lr` must be a positive number") as err:
        MAMLModule(tiny_net(), lr=lr)
    assert err.value.argument == "MAMLModule.lr"
