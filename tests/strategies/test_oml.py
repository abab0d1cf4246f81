import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lifelong as ll
from lifelong.strategies import OML, Naive

from ..conftest import small_mlp
from .test_la_maml import finite_differences


def attached(stream, **options):
    torch.manual_seed(0)
    model = ll.models.mlp(64, stream.n_outputs, hidden=(3,)).double()
    strategy = OML(inner_lr=0.5, inner_steps=2, **options)
    strategy.attach(ll.Trainer(model, strategy), stream)
    x, y = stream[0].train.batch(torch.arange(10))
    t = torch.zeros(10, dtype=torch.long)
    strategy.incoming = (x[:6].double(), y[:6], t[:6])
    strategy.replayed = (x[6:].double(), y[6:], t[6:])
    return strategy


def test_meta_loss_is_the_loss_after_online_sgd_on_the_head(digits_stream):
    strategy = attached(digits_stream)
    w1, b1, w2, b2 = strategy.model.parameters()
    (x, y, _), (xm, ym, _) = strategy.incoming, strategy.replayed
    z = F.relu(x.flatten(1) @ w1.T + b1)
    w, b = w2, b2
    for rows in (slice(0, 3), slice(3, 6)):  # two online steps on the head, on the incoming rows only
        gw, gb = torch.autograd.grad(F.cross_entropy(z[rows] @ w.T + b, y[rows]), (w, b), create_graph=True)
        w, b = w - 0.5 * gw, b - 0.5 * gb
    zm = torch.cat([z, F.relu(xm.flatten(1) @ w1.T + b1)])
    by_hand = F.cross_entropy(zm @ w.T + b, torch.cat([y, ym]))
    assert torch.allclose(strategy.meta_loss(), by_hand)
    # the meta-gradient reaches the representation also through the head's online steps (second order)
    strategy.first_order = True
    first = torch.autograd.grad(strategy.meta_loss(), w1)[0]
    assert (torch.autograd.grad(by_hand, w1)[0] - first).norm() > 1e-3 * first.norm()


def test_meta_gradients_match_finite_differences(digits_stream):
    strategy = attached(digits_stream)
    params = list(strategy.model.parameters())
    analytic = torch.cat([g.flatten()[:8] for g in torch.autograd.grad(strategy.meta_loss(), params)])
    assert torch.allclose(analytic, finite_differences(strategy.meta_loss, params), rtol=1e-5, atol=1e-8)


def test_the_optimiser_steps_on_the_meta_gradient(digits_stream):
    strategy = attached(digits_stream)
    params = list(strategy.model.parameters())
    expected = torch.autograd.grad(strategy.meta_loss(), params)
    for p in params:
        p.grad = torch.ones_like(p)  # the Trainer's own gradient on b: replaced
    strategy.after_backward()
    assert all(torch.allclose(p.grad, g) for p, g in zip(params, expected))


def test_oml_forgets_less_than_naive_and_refuses_a_model_without_a_linear_head(digits_stream):
    fit = lambda s: ll.Trainer(small_mlp(digits_stream), s, batch_size=16, seed=0).fit(digits_stream)  # noqa: E731
    assert fit(OML()).metrics["acc"] > fit(Naive()).metrics["acc"] + 0.2
    with pytest.raises(ll.ConfigError, match="timm's contract"):
        ll.Trainer(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), OML()).fit(digits_stream)
    no_bias = ll.models.Net(nn.Flatten(), nn.Linear(64, 10, bias=False))
    with pytest.raises(ll.ConfigError, match="classifier is a linear layer with a bias"):
        ll.Trainer(no_bias, OML()).fit(digits_stream)


def test_the_representation_is_the_pre_logits_and_the_head_the_classifier_of_a_pooling_model():
    """resnet18 pools in forward_head and holds its classifier in `fc`: with inner_lr 0 (the head unchanged
    by its online steps) the meta-loss is the cross-entropy of fc on the pooled pre-logits of b and m."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 4, 4), torch.arange(8) % 4
    stream = ll.data.from_tasks([(ll.data.Split(x, y), ll.data.Split(x, y))], scenario="class")
    model = ll.models.resnet18(4, in_channels=1).eval()
    strategy = OML(inner_lr=0.0, inner_steps=2)
    strategy.attach(ll.Trainer(model, strategy), stream)
    t = torch.zeros(8, dtype=torch.long)
    strategy.incoming, strategy.replayed = (x[:5], y[:5], t[:5]), (x[5:], y[5:], t[5:])
    expected = F.cross_entropy(model.fc(ll.models.pre_logits(model, x)), y)
    assert torch.allclose(strategy.meta_loss(), expected, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"inner_lr": -1.0}, {"inner_steps": 0}, {"replay_batch_size": 0}])
def test_bad_options_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        OML(**kwargs)


def test_a_growing_head_keeps_the_rows_of_classes_not_arrived_yet(digits_stream):
    """The head's online steps and the meta-loss go through the head's own forward, so a growing head's
    inactive units take no gradient (their rows stay as initialised)."""
    torch.manual_seed(0)
    model = ll.models.with_head(small_mlp(digits_stream), "growing")
    start = model.head.weight.detach().clone()
    stream = ll.data.from_tasks([(digits_stream[0].train, digits_stream[0].test)], scenario="class")
    stream.n_outputs = digits_stream.n_outputs
    ll.Trainer(model, OML(), epochs=1, batch_size=32).fit(stream)
    active = model.head.active
    assert active.sum() == 2
    assert torch.equal(model.head.weight[~active], start[~active])
    assert not torch.equal(model.head.weight[active], start[active])
