"""HAT: old outputs stay put once gates saturate; regulariser, compensation and conditioning maths."""

import warnings

import pytest
import torch
from torch import nn

import lifelong as ll
from lifelong.strategies import HAT

from ..conftest import small_mlp
from .test_pnn import (assert_earlier_outputs_kept, assert_refuses_bad_setups, assert_same_predictions, first_tasks,
                       fit_and_restore, fit_recording)
from .test_pnn import task_stream  # noqa: F401 (a fixture)


def attached(stream, net, **options):
    strategy = HAT(**options)
    strategy.attach(ll.Trainer(net, strategy), stream)
    return strategy


def test_default_optimiser_is_the_papers_sgd_and_an_adaptive_one_warns(task_stream):
    def trainer(strategy, **options):
        return ll.Trainer(small_mlp(task_stream), strategy, **options)

    assert (trainer(HAT()).optimizer_name, trainer(HAT()).lr) == ("sgd", 0.05)  # Serra et al.'s code: SGD lr 0.05
    assert isinstance(trainer(ll.Compose(HAT(), ll.strategies.Naive())).make_optimizer(), torch.optim.SGD)
    assert (trainer(HAT(), lr=0.01).optimizer_name, trainer(HAT(), lr=0.01).lr) == ("sgd", 0.01)
    assert (trainer(None).optimizer_name, trainer(None).lr) == ("adam", 1e-3)  # other strategies: the library's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HAT().attach(trainer(HAT()), task_stream)
    for name in ("adam", "adam-fused"):
        adam = trainer(HAT(), optimizer=name)
        assert adam.lr == 1e-3  # the paper's lr goes with its SGD only
        with pytest.warns(UserWarning, match="assume SGD") as caught:
            HAT().attach(adam, task_stream)
        assert len(caught) == 1 and "\n" not in str(caught[0].message)


def test_earlier_outputs_within_1e6_with_saturated_gates(task_stream):
    strategy = HAT()  # the paper's optimiser: SGD, lr 0.05
    _, result, record = fit_recording(strategy, task_stream, epochs=3, optimizer="sgd", lr=0.05)
    gates = strategy.gated.gates(torch.arange(5), strategy.s_max).detach()
    assert ((gates < 1e-6) | (gates > 1 - 1e-6)).float().mean() > 0.99
    assert_earlier_outputs_kept(record, atol=1e-6)
    assert result.metrics["forgetting"] == 0.0 and result.metrics["acc"] > 0.75
    assert len(set(record.params)) == 1  # embeddings for every task exist from the start: no growth


def test_regulariser_gradient_and_compensation_on_a_toy_layer(task_stream):
    strategy = attached(task_stream, ll.models.Net(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)), nn.Linear(4, 10)))
    gated, s = strategy.gated, 2.0
    with torch.no_grad():
        gated.embedding.copy_(torch.tensor([[0.3, -1.0, 2.0, 0.1]]).repeat(5, 1))
    strategy.mask = torch.tensor([1.0, 0.0, 0.5, 0.0])
    strategy.tasks = 1
    strategy.before_task(task_stream[1])
    gated.s = s
    reg = strategy.regulariser()
    reg.backward()
    e, free = gated.embedding.detach()[1], 1 - strategy.mask
    a = torch.sigmoid(s * e)
    assert torch.allclose(reg, (a * free).sum() / free.sum())
    expected = free * s * a * (1 - a) / free.sum()  # d/de of sum a (1 - a<t) / sum (1 - a<t)
    assert torch.allclose(gated.embedding.grad[1], expected)
    assert torch.all(gated.embedding.grad[[0, 2, 3, 4]] == 0)
    strategy.after_backward()
    compensation = strategy.s_max / s * (torch.cosh(s * e) + 1) / (torch.cosh(e) + 1)
    assert torch.allclose(gated.embedding.grad[1], expected * compensation)


def test_gradient_conditioning_blocks_units_used_before(task_stream):
    net = ll.models.Net(nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU()),
                        nn.Linear(3, 10))
    strategy = attached(task_stream, net)
    first, second = net.features[1], net.features[3]
    strategy.mask = torch.tensor([1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.25])
    strategy.tasks = 1
    strategy.before_task(task_stream[1])
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    strategy.after_backward()
    pre, post = strategy.mask[:4], strategy.mask[4:]
    assert torch.equal(first.weight.grad, (1 - pre).view(-1, 1).expand(4, 64))
    assert torch.equal(first.bias.grad, 1 - pre)
    assert torch.equal(second.weight.grad, 1 - torch.minimum(post.view(-1, 1), pre.view(1, -1)))
    assert torch.equal(second.bias.grad, 1 - post)
    assert torch.equal(net.head.weight.grad, torch.ones(10, 3))  # each task's head is its own


def test_conditioning_of_a_linear_layer_after_flattened_convolutions(task_stream):
    net = ll.models.cnn((1, 8, 8), task_stream.n_outputs, channels=(2, 3))
    strategy = attached(task_stream, net)
    units = strategy.gated.embedding.shape[1]
    assert units == 2 + 3 + 128
    strategy.mask = torch.rand(units, generator=torch.Generator().manual_seed(0))
    strategy.tasks = 1
    strategy.before_task(task_stream[1])
    factors = dict((id(p), f) for p, f in strategy.factors)
    conv2, linear = strategy.gated.layers[1:]
    channel = strategy.mask[2:5].repeat_interleave(2 * 2)  # 3 channels of 2x2 maps, flattened channel-major
    expected = 1 - torch.minimum(strategy.mask[5:].view(-1, 1), channel.view(1, -1))
    assert torch.equal(factors[id(linear.weight)], expected)
    assert factors[id(conv2.weight)].shape == conv2.weight.shape


def test_checkpoint_restores_the_gates(task_stream, tmp_path):
    stream = first_tasks(task_stream, 3)
    trainer, again = fit_and_restore(HAT, stream, tmp_path / "ck", epochs=1)
    for task in stream:
        assert_same_predictions(trainer, again, task)
    assert torch.equal(again.strategy.mask, trainer.strategy.mask) and again.strategy.tasks == 3
    other = HAT()
    other.load_state_dict(trainer.strategy.state_dict())
    with pytest.raises(ll.ConfigError, match="3 tasks"):
        other.attach(ll.Trainer(small_mlp(task_stream), other), task_stream)  # a 5-task stream


def test_refuses_bad_setups(digits, task_stream):
    assert_refuses_bad_setups(HAT, digits)
    with pytest.raises(ll.ConfigError, match="`hidden`"):
        ll.Trainer(small_mlp(task_stream, hidden=()), HAT()).fit(task_stream)
