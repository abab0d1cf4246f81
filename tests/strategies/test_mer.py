import pytest
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.strategies import MER, Naive

from ..conftest import small_mlp
from .steps import in_step


def attached(stream, **options):
    torch.manual_seed(0)
    model = ll.models.mlp(64, stream.n_outputs, hidden=(3,)).double()
    strategy = MER(**options)
    strategy.attach(ll.Trainer(model, strategy), stream)
    return strategy


def rows(stream, idx):
    x, y = stream[0].train.batch(idx)
    return x.double(), y, torch.zeros(len(y), dtype=torch.long)


def test_update_is_within_and_across_batch_reptile_over_sgd_steps(digits_stream):
    strategy = attached(digits_stream, lr=0.2, beta=0.3, gamma=0.5, batches=2, inner_steps=2)
    batches = [rows(digits_stream, torch.arange(0, 5)), rows(digits_stream, torch.arange(5, 9))]
    strategy.reptile_batches = batches
    theta = [p.detach().clone() for p in strategy.model.parameters()]

    def sgd(w, x, y):  # one step of plain SGD on the cross-entropy, by hand
        h = F.relu(x.flatten(1) @ w[0].T + w[1])
        g = torch.autograd.grad(F.cross_entropy(h @ w[2].T + w[3], y), w)
        return [(v - 0.2 * gv).detach().requires_grad_() for v, gv in zip(w, g)]

    w = [v.clone().requires_grad_() for v in theta]
    for (x, y, _), cut in zip(batches, (3, 2)):  # 5 rows: chunks of 3 and 2; 4 rows: 2 and 2
        start = [v.detach() for v in w]
        w = sgd(sgd(w, x[:cut], y[:cut]), x[cut:], y[cut:])
        w = [(s + 0.3 * (v.detach() - s)).requires_grad_() for s, v in zip(start, w)]  # within-batch Reptile
    expected = [t + 0.5 * (v.detach() - t) for t, v in zip(theta, w)]  # across-batch Reptile
    for p in strategy.model.parameters():
        p.grad = torch.ones_like(p)
    strategy.after_backward()
    for p, e in zip(strategy.model.parameters(), expected):
        assert torch.allclose(p, e)
        assert p.grad is None  # the Trainer's optimiser skips every parameter


def test_batches_mix_incoming_rows_first_with_fresh_memory_samples(digits_stream):
    strategy = attached(digits_stream, batches=3, replay_batch_size=4, buffer_size=50)
    x, y, t = rows(digits_stream, torch.arange(8))
    in_step(strategy.trainer, x, y, t)
    strategy.batch(x, y, t)
    assert [len(b[0]) for b in strategy.reptile_batches] == [8, 8, 8]  # empty memory: b alone, s times
    in_step(strategy.trainer, x[:2], y[:2], t[:2])
    strategy.batch(x[:2], y[:2], t[:2])
    for bx, _, _ in strategy.reptile_batches:  # the paper's loop with --batch-size 1 is B_i = {(x, y)} ∪ k-1 samples
        assert len(bx) == 6 and torch.equal(bx[:2], x[:2])
    assert len(strategy.memory) == 10


def test_mer_forgets_less_than_naive(digits_stream):
    fit = lambda s: ll.Trainer(small_mlp(digits_stream), s, batch_size=16, seed=0).fit(digits_stream)  # noqa: E731
    assert fit(MER()).metrics["acc"] > fit(Naive()).metrics["acc"] + 0.2


@pytest.mark.parametrize("kwargs", [{"lr": -0.1}, {"beta": float("nan")}, {"batches": 0}, {"inner_steps": 1.5},
                                    {"buffer_size": 0}])
def test_bad_options_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        MER(**kwargs)
