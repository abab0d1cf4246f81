import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import lifelong as ll
from lifelong.strategies import LaMAML, Naive, Replay

from ..conftest import small_mlp
from .steps import in_step


def attached(digits_stream, first_order=False, inner_steps=2, **options):
    torch.manual_seed(0)
    model = ll.models.mlp(64, digits_stream.n_outputs, hidden=(3,)).double()
    strategy = LaMAML(inner_steps=inner_steps, alpha_init=0.2, alpha_lr=0.5, first_order=first_order, **options)
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


def finite_differences(loss, tensors, n=8, eps=1e-6):
    """Central differences of `loss()` in the first `n` entries of each tensor, concatenated."""
    numeric = []
    for v in tensors:
        flat = v.data.view(-1)
        for i in range(min(n, len(flat))):
            old = flat[i].item()
            flat[i] = old + eps
            up = loss().detach()
            flat[i] = old - eps
            down = loss().detach()
            flat[i] = old
            numeric.append((up - down) / (2 * eps))
    return torch.stack(numeric)


def test_meta_gradients_match_finite_differences_and_first_order_differs(digits_stream):
    strategy = attached(digits_stream)
    analytic = torch.cat([g.flatten()[:8] for g in gradients(strategy)])  # 8 entries of each tensor
    tensors = [p for _, p in strategy.model.named_parameters()] + list(strategy.alpha.values())
    assert torch.allclose(analytic, finite_differences(strategy.meta_loss, tensors), rtol=1e-5, atol=1e-8)
    first = torch.cat([g.flatten()[:8] for g in gradients(attached(digits_stream, first_order=True))])
    assert (first - analytic).norm() > 1e-3 * analytic.norm()


def clip(grads, max_norm):
    norm = torch.cat([g.flatten() for g in grads]).norm()
    return [g * min(1.0, max_norm / (norm.item() + 1e-6)) for g in grads]


@pytest.mark.parametrize("clip_norm", [0.0, 1e-3])  # 1e-3: below the meta-gradients' norms, so they are clipped
def test_update_rule_clips_negative_learning_rates_and_the_meta_gradients_norm(digits_stream, clip_norm):
    strategy = attached(digits_stream, inner_steps=1, clip_norm=clip_norm)
    names = list(strategy.alpha)
    strategy.alpha[names[0]].data[0, 0] = -0.5  # a negative rate is learned, but not used to step
    before = {k: p.detach().clone() for k, p in strategy.model.named_parameters()}
    alpha0 = {k: a.detach().clone() for k, a in strategy.alpha.items()}
    grads = gradients(strategy)
    g_theta, g_alpha = grads[: len(names)], grads[len(names):]
    if clip_norm:
        assert min(torch.cat([g.flatten() for g in part]).norm() for part in (g_theta, g_alpha)) > 10 * clip_norm
        g_theta, g_alpha = clip(g_theta, clip_norm), clip(g_alpha, clip_norm)
    for p in strategy.model.parameters():
        p.grad = torch.ones_like(p)
    strategy.after_backward()
    for i, k in enumerate(names):
        new_alpha = alpha0[k] - 0.5 * g_alpha[i]
        assert torch.allclose(strategy.alpha[k], new_alpha)
        p = dict(strategy.model.named_parameters())[k]
        assert torch.allclose(p, before[k] - new_alpha.clamp(min=0) * g_theta[i])
        assert p.grad is None  # the Trainer's optimiser skips it
    if strategy.alpha[names[0]][0, 0] < 0:  # still negative after its update: that weight did not move
        assert dict(strategy.model.named_parameters())[names[0]][0, 0] == before[names[0]][0, 0]


@pytest.mark.parametrize(("rows", "steps"), [(16, 5), (3, 5), (6, 2)])
def test_inner_loop_takes_inner_steps_steps_also_when_the_batch_does_not_divide(digits_stream, rows, steps):
    strategy = attached(digits_stream, inner_steps=steps)
    x, y = digits_stream[0].train.batch(torch.arange(rows))
    strategy.incoming = (x.double(), y, torch.zeros(rows, dtype=torch.long))
    sizes, loss = [], strategy._loss
    strategy._loss = lambda params, x, y, t: sizes.append(len(x)) or loss(params, x, y, t)
    assert torch.isfinite(strategy.meta_loss())
    expected = [len(c) for c in torch.arange(rows).tensor_split(min(steps, rows))]  # 16 / 5: 4, 3, 3, 3, 3
    assert sizes == [*expected, 10]  # one look-ahead step per chunk, then the meta-loss on b_m


def test_average_meta_loss_is_the_mean_over_the_look_ahead_steps(digits_stream):
    strategy = attached(digits_stream, inner_steps=3, average_meta_loss=True)
    params = dict(strategy.model.named_parameters())

    def loss(w, x, y, t):
        return F.cross_entropy(digits_stream.mask(functional_call(strategy.model, w, (x,)), t), y)

    x, y, t = strategy.incoming  # 6 rows: steps on rows 0-1, 2-3, 4-5
    fast, by_hand = dict(params), []
    for rows in (slice(0, 2), slice(2, 4), slice(4, 6)):
        g = torch.autograd.grad(loss(fast, x[rows], y[rows], t[rows]), list(fast.values()), create_graph=True)
        fast = {k: w - strategy.alpha[k] * gk for (k, w), gk in zip(fast.items(), g)}
        by_hand.append(loss(fast, *strategy.mixed))
    assert torch.allclose(strategy.meta_loss(), torch.stack(by_hand).mean())
    strategy.average_meta_loss = False
    assert torch.allclose(strategy.meta_loss(), by_hand[-1])


def test_replay_batch_defaults_to_the_trainer_batch_as_replay(digits_stream):
    strategy = LaMAML()
    trainer = ll.Trainer(small_mlp(digits_stream), strategy)
    strategy.attach(trainer, digits_stream)
    x, y = digits_stream[0].train.batch(torch.arange(trainer.batch_size))
    t = torch.zeros(len(y), dtype=torch.long)
    in_step(trainer, x, y, t)
    strategy.batch(x, y, t)  # fills the memory (200 samples)
    strategy.batch(x, y, t)
    assert strategy.replay_batch_size == Replay().replay_batch_size == trainer.batch_size
    assert len(strategy.mixed[0]) == 2 * trainer.batch_size  # b_m: half memory, half current data


def test_la_maml_forgets_less_than_naive_and_checkpoints_its_rates(digits_stream, tmp_path):
    fit = lambda s: ll.Trainer(small_mlp(digits_stream), s, epochs=1, batch_size=16, seed=0,  # noqa: E731
                               checkpoint=tmp_path / "ck").fit(digits_stream)
    naive = fit(Naive())
    strategy = LaMAML(replay_batch_size=16)  # as the stream's batch
    r = fit(strategy)
    assert r.metrics["acc"] > naive.metrics["acc"] + 0.1
    restored = LaMAML()
    restored.attach(ll.Trainer(small_mlp(digits_stream), restored), digits_stream)
    ll.checkpoint.load(tmp_path / "ck", small_mlp(digits_stream), restored)
    assert all(torch.equal(restored.alpha[k], strategy.alpha[k].detach()) for k in strategy.alpha)
    assert len(restored.memory) == 200


@pytest.mark.parametrize("kwargs", [{"inner_steps": 0}, {"alpha_init": -1.0}, {"buffer_size": 0}, {"clip_norm": -1.0}])
def test_bad_options_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        LaMAML(**kwargs)
