import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lifelong.errors import ConfigError
from lifelong.meta import ANIL, FOMAML, MAML, TaskSet, evaluate, inner_loop, sinusoid
from lifelong.models import External, mlp

from ..models.standins import TinyTimm
from .conftest import regression_tasks, tiny_net


def meta_grads(learner, episodes):
    learner.model.zero_grad()
    learner.meta_loss(episodes).backward()
    return torch.cat([p.grad.flatten() for p in learner.model.parameters()])


def finite_difference(learner, episodes, eps=1e-6):
    out = []
    with torch.no_grad():
        for p in learner.model.parameters():
            flat = p.view(-1)
            for i in range(len(flat)):
                old = flat[i].item()
                flat[i] = old + eps
                up = learner.meta_loss(episodes)
                flat[i] = old - eps
                down = learner.meta_loss(episodes)
                flat[i] = old
                out.append((up - down) / (2 * eps))
    return torch.stack(out)


@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_meta_gradient_matches_finite_differences(toy_episodes, steps):
    learner = MAML(tiny_net(), regression_tasks(), inner_lr=0.3, inner_steps=steps, meta_batch=3)
    analytic = meta_grads(learner, toy_episodes)
    numeric = finite_difference(learner, toy_episodes)
    assert torch.allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_first_order_is_the_query_gradient_at_the_adapted_parameters_and_differs(toy_episodes):
    second = meta_grads(MAML(tiny_net(), regression_tasks(), inner_lr=0.3, inner_steps=2), toy_episodes)
    fo = FOMAML(tiny_net(), regression_tasks(), inner_lr=0.3, inner_steps=2)
    first = meta_grads(fo, toy_episodes)
    # by hand: mean over tasks of grad L_query(theta'_i), theta'_i from two plain gradient steps
    model, expected = fo.model, 0
    for xs, ys, xq, yq in zip(*toy_episodes):
        params = {k: v.detach().requires_grad_() for k, v in model.named_parameters()}
        fast = dict(params)
        for _ in range(2):
            g = torch.autograd.grad(F.mse_loss(torch.func.functional_call(model, fast, (xs,)), ys), list(fast.values()))
            fast = {k: (v - 0.3 * gi).detach().requires_grad_() for (k, v), gi in zip(fast.items(), g)}
        g = torch.autograd.grad(F.mse_loss(torch.func.functional_call(model, fast, (xq,)), yq), list(fast.values()))
        expected = expected + torch.cat([gi.flatten() for gi in g]) / 3
    assert torch.allclose(first, expected, rtol=1e-10)
    assert (first - second).norm() > 1e-3 * second.norm()  # the Hessian term is not negligible here


def test_linear_model_second_order_in_closed_form():
    # f(x) = w.x, MSE: L_s(w) = |Xs w - ys|^2 / n, H_s = 2 Xs^T Xs / n; w' = w - a grad L_s(w);
    # dL_q(w')/dw = (I - a H_s) grad L_q(w')
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False).double()
    xs, ys, xq, yq = (torch.randn(1, 5, 3).double(), torch.randn(1, 5, 1).double(),
                      torch.randn(1, 7, 3).double(), torch.randn(1, 7, 1).double())
    learner = MAML(model, regression_tasks(3), inner_lr=0.1, inner_steps=1, meta_batch=1)
    learner.meta_loss((xs, ys, xq, yq)).backward()
    w = model.weight.detach().flatten()
    X, Q = xs[0], xq[0]
    grad_s = 2 * X.T @ (X @ w - ys[0, :, 0]) / 5
    w1 = w - 0.1 * grad_s
    grad_q = 2 * Q.T @ (Q @ w1 - yq[0, :, 0]) / 7
    expected = (torch.eye(3, dtype=torch.float64) - 0.1 * 2 * X.T @ X / 5) @ grad_q
    assert torch.allclose(model.weight.grad.flatten(), expected, rtol=1e-10)


def test_inner_loop_leaves_the_module_untouched_and_descends(toy_episodes):
    model = tiny_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    xs, ys = toy_episodes.xs[0], toy_episodes.ys[0]
    params = dict(model.named_parameters())
    fast = inner_loop(model, params, xs, ys, F.mse_loss, 5, 0.1, first_order=False)
    loss = lambda p: F.mse_loss(torch.func.functional_call(model, p, (xs,)), ys)  # noqa: E731
    assert loss(fast) < loss(params)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_anil_adapts_only_the_head_but_meta_learns_the_body(toy_episodes):
    learner = ANIL(tiny_net(), regression_tasks(), inner_lr=0.3, inner_steps=2)
    assert set(learner.adapted()) == {"head.weight", "head.bias"}
    learner.meta_loss(toy_episodes).backward()
    assert learner.model.features[0].weight.grad.abs().sum() > 0  # through the head's inner updates
    numeric = finite_difference(learner, toy_episodes)
    analytic = torch.cat([p.grad.flatten() for p in learner.model.parameters()])
    assert torch.allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_anil_adapts_the_classifier_of_a_wrapped_timm_model_wherever_it_sits():
    """The head is `get_classifier()`, found by identity: a timm model wrapped in `External` holds it as
    `model.fc`, and its `head` attribute is a view of it that names no parameter."""
    model = External(TinyTimm(num_classes=1, in_chans=1), (1, 4, 4), in_channels=1)
    learner = ANIL(model, TaskSet("toy", "regression", None, None, (1, 4, 4), 1))
    assert set(learner.adapted()) == {"model.fc.weight", "model.fc.bias"}
    with pytest.raises(ConfigError, match="no get_classifier"):
        ANIL(nn.Sequential(nn.Linear(2, 1)), regression_tasks())


def test_meta_training_lowers_the_post_adaptation_mse():
    torch.manual_seed(0)
    tasks = sinusoid(shots=10, queries=10, seed=0)
    learner = MAML(mlp(1, 1, (40, 40)), tasks, meta_batch=10)
    before = evaluate(learner, steps=10, n_tasks=200)["mean"]
    learner.meta_train(300)
    after = evaluate(learner, steps=10, n_tasks=200)
    assert after["mean"] < 0.75 * before and after["ci95"] > 0


@pytest.mark.parametrize("bad", [{"inner_lr": 0}, {"inner_steps": 0}, {"inner_steps": 1.5}, {"meta_batch": -1},
                                 {"meta_lr": float("nan")}])
def test_bad_options_are_config_errors(bad):
    with pytest.raises(ConfigError):
        MAML(tiny_net(), regression_tasks(), **bad)
