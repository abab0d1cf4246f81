import pytest
import torch

import lifelong as ll
from lifelong.strategies import LaMAML, Naive

from ..conftest import small_mlp


def attached(digits_stream, first_order=False, inner_steps=2):
    torch.manual_seed(0)
    model = ll.models.mlp(64, digits_stream.n_outputs, hidden=(3,)).double()
    strategy = LaMAML(inner_steps=inner_steps, alpha_init=0.2, alpha_lr=0.5, first_order=first_order)
    strategy.attach(ll.Trainer(model, strategy), digits_stream)
    x, y = digits_stream[0].train.batch(torch.arange(6))
    xm, ym = digits_stream[0].train.batch(torch.arange(6, 10))
    t = torch.zeros(6, dtype=torch.long)
    strategy.incoming = (x.double(), y, t)
    strategy.mixed = (torch.cat([x, xm]).double(), torch.cat([y, ym]), torch.zeros(10, dtype=torch.long))
    return strategy


def gradients(strategy):
    theta = [p for k, p in strategy.model.named_parameters() if k in strategy.alpha]
    return torch.autograd.grad(strategy.meta_loss(), theta + list(strategy.alpha.values()))


def test_meta_gradients_match_finite_differences_and_first_order_differs(digits_stream):
    strategy = attached(digits_stream)
    analytic = torch.cat([g.flatten()[:8] for g in gradients(strategy)])  # 8 entries of each tensor
    numeric = []
    for v in [p for _, p in strategy.model.named_parameters()] + list(strategy.alpha.values()):
        flat = v.data.view(-1)
        for i in range(min(8, len(flat))):
            old = flat[i].item()
            flat[i] = old + 1e-6
            up = strategy.meta_loss().detach()
            flat[i] = old - 1e-6
            down = strategy.meta_loss().detach()
            flat[i] = old
            numeric.append((up - down) / 2e-6)
    assert torch.allclose(analytic, torch.stack(numeric), rtol=1e-5, atol=1e-8)
    first = torch.cat([g.flatten()[:8] for g in gradients(attached(digits_stream, first_order=True))])
    assert (first - analytic).norm() > 1e-3 * analytic.norm()


def test_update_rule_clips_negative_learning_rates(digits_stream):
    strategy = attached(digits_stream, inner_steps=1)
    names = list(strategy.alpha)
    strategy.alpha[names[0]].data[0, 0] = -0.5  # a negative rate is learned, but not used to step
    before = {k: p.detach().clone() for k, p in strategy.model.named_parameters()}
    alpha0 = {k: a.detach().clone() for k, a in strategy.alpha.items()}
    grads = gradients(strategy)
    for p in strategy.model.parameters():
        p.grad = torch.ones_like(p)
    strategy.after_backward()
    for i, k in enumerate(names):
        new_alpha = alpha0[k] - 0.5 * grads[len(names) + i]
        assert torch.allclose(strategy.alpha[k], new_alpha)
        p = dict(strategy.model.named_parameters())[k]
        assert torch.allclose(p, before[k] - new_alpha.clamp(min=0) * grads[i])
        assert p.grad is None  # the Trainer's optimiser skips it
    if strategy.alpha[names[0]][0, 0] < 0:  # still negative after its update: that weight did not move
        assert dict(strategy.model.named_parameters())[names[0]][0, 0] == before[names[0]][0, 0]


def test_la_maml_forgets_less_than_naive_and_checkpoints_its_rates(digits_stream, tmp_path):
    fit = lambda s: ll.Trainer(small_mlp(digits_stream), s, epochs=1, batch_size=16, seed=0,  # noqa: E731
                               checkpoint=tmp_path / "ck").fit(digits_stream)
    naive = fit(Naive())
    strategy = LaMAML()
    r = fit(strategy)
    assert r.metrics["acc"] > naive.metrics["acc"] + 0.1
    restored = LaMAML()
    restored.attach(ll.Trainer(small_mlp(digits_stream), restored), digits_stream)
    ll.checkpoint.load(tmp_path / "ck", small_mlp(digits_stream), restored)
    assert all(torch.equal(restored.alpha[k], strategy.alpha[k].detach()) for k in strategy.alpha)
    assert len(restored.memory) == 200


@pytest.mark.parametrize("kwargs", [{"inner_steps": 0}, {"alpha_init": -1.0}, {"buffer_size": 0}])
def test_bad_options_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        LaMAML(**kwargs)
