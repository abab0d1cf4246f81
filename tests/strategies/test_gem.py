import itertools

import pytest
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.strategies import GEM, Naive
from lifelong.strategies.gem import nonnegative_qp

from ..conftest import small_mlp


def brute_force_qp(gram, lin):
    """The best KKT point over every active set (exact for tiny problems)."""
    best, n = None, len(lin)
    for size in range(n + 1):
        for free in itertools.combinations(range(n), size):
            u = torch.zeros(n, dtype=gram.dtype)
            if free:
                idx = torch.tensor(free)
                u[idx] = torch.linalg.lstsq(gram[idx][:, idx], -lin[idx, None]).solution.flatten()
            if (u >= -1e-9).all() and ((gram @ u + lin) >= -1e-9).all():
                value = 0.5 * u @ gram @ u + lin @ u
                best = value if best is None else min(best, value)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_dual_solver_meets_kkt_and_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(5, 30, dtype=torch.float64, generator=g)
    if seed % 3 == 0:
        rows[3] = rows[1]  # linearly dependent memory gradients: a singular Gram matrix
    gram, lin = rows @ rows.T, rows @ torch.randn(30, dtype=torch.float64, generator=g)
    u = nonnegative_qp(gram, lin)
    grad = gram @ u + lin
    assert (u >= 0).all() and (grad >= -1e-9).all() and (u * grad).abs().max() < 1e-9
    assert torch.isclose(0.5 * u @ gram @ u + lin @ u, brute_force_qp(gram, lin), atol=1e-9)


def test_projected_gradient_never_raises_a_memory_loss(digits):
    stream = ll.data.split(digits, n_tasks=3, scenario="task", seed=0)
    gem, checked = GEM(buffer_size=60, margin=0.0), {"projected": 0, "unchanged": 0}
    project = gem.after_backward

    def spy():
        params = [p for p in gem.model.parameters() if p.requires_grad]
        before = torch.cat([p.grad.flatten() for p in params])
        project()
        after = torch.cat([p.grad.flatten() for p in params])
        if gem.tasks_done:
            G = gem.memory_gradients(params).detach()
            scale = G.norm(dim=1) * before.norm()
            assert (G @ after >= -1e-4 * scale).all()  # no past task's memory loss rises
            if (G @ before >= 0).all():
                assert torch.equal(after, before)  # nothing violated: the gradient is left alone
                checked["unchanged"] += 1
            else:
                checked["projected"] += 1

    gem.after_backward = spy
    ll.Trainer(small_mlp(stream), gem, epochs=1, batch_size=32, seed=0).fit(stream)
    assert checked["projected"] > 0 and checked["unchanged"] > 0


def test_memory_gradients_are_the_per_task_gradients(digits):
    stream = ll.data.split(digits, n_tasks=3, scenario="task", seed=0)
    gem = GEM(buffer_size=30)
    ll.Trainer(small_mlp(stream), gem, epochs=1, batch_size=64, seed=0).fit(stream)
    params = list(gem.model.parameters())
    G = gem.memory_gradients(params)
    m = gem.memory.stored()
    for k in range(3):
        x, y, t = m.x[m.t == k], m.y[m.t == k], m.t[m.t == k]
        loss = F.cross_entropy(stream.mask(gem.model(x), t), y)
        expect = torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])
        assert torch.allclose(G[k], expect, atol=1e-6)


def test_gem_beats_naive_and_reports_its_memory(digits_stream):
    naive = ll.Trainer(small_mlp(digits_stream), Naive(), epochs=3, batch_size=16, seed=0).fit(digits_stream)
    r = ll.Trainer(small_mlp(digits_stream), GEM(buffer_size=200), epochs=3, batch_size=16, seed=0).fit(digits_stream)
    assert r.metrics["acc"] > naive.metrics["acc"] + 0.2
    assert r.strategy_memory_bytes >= 200 * 64 * 4


@pytest.mark.parametrize("kwargs", [{"buffer_size": 0}, {"margin": -0.1}])
def test_bad_options_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        GEM(**kwargs)
