import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lifelong as ll
from lifelong.strategies import GEM, Naive
from lifelong.strategies.gem import nonnegative_qp
from lifelong.strategies.importance import identity_layers

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


class Twice(nn.Module):
    """A hidden layer applied twice: its input is not one per forward pass (the identity does not apply)."""

    def __init__(self, n_outputs):
        super().__init__()
        self.hidden, self.head = nn.Linear(64, 64), nn.Linear(64, n_outputs)

    def forward(self, x):
        return self.head(torch.relu(self.hidden(torch.relu(self.hidden(x.flatten(1))))))


def models(kind, n_outputs):
    torch.manual_seed(0)
    return {
        "mlp": lambda: ll.models.mlp(64, n_outputs, hidden=(32, 16)),
        # a conv, a Linear on (B, 4, 16) inputs (positions inside each sample), a Linear on (B, in)
        "cnn": lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, stride=2), nn.ReLU(), nn.Flatten(2),
                                     nn.Linear(16, 8), nn.ReLU(), nn.Flatten(), nn.Linear(32, n_outputs)),
        "layernorm": lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.LayerNorm(32), nn.ReLU(),
                                           nn.Linear(32, n_outputs)),
        "batchnorm": lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32, affine=False),
                                           nn.ReLU(), nn.Linear(32, n_outputs)),
        "twice": lambda: Twice(n_outputs),
    }[kind]()


def gem_with_memory(digits, kind, margin=0.5):
    """GEM after 3 tasks (task-incremental) with 9, 4 and 14 samples of them stored, interleaved in the memory."""
    stream = ll.data.split(digits, n_tasks=3, scenario="task", seed=0)
    model, gem = models(kind, stream.n_outputs), GEM(buffer_size=60, margin=margin)
    gem.attach(ll.Trainer(model, gem, seed=0), stream)
    parts = [stream[k].train.batch(torch.arange(n)) + (torch.full((n,), k),) for k, n in enumerate((9, 4, 14))]
    order = torch.randperm(27, generator=torch.Generator().manual_seed(0))
    gem.memory.add(*(torch.cat(v)[order] for v in zip(*parts)))
    gem.tasks_done = 3
    gem.index_memory()
    return gem, stream


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_layer_identity_gives_the_batched_backward_pass_rows(digits, kind):
    gem, _ = gem_with_memory(digits, kind)
    params = [p for p in gem.model.parameters() if p.requires_grad]
    layers = identity_layers(gem.model)
    rows = gem.layer_rows(layers, params)
    assert rows is not None and torch.equal(gem.memory_gradients(params), rows)  # the identity is the one taken
    batched = gem.batched(params)
    assert torch.allclose(rows, batched, rtol=1e-5, atol=1e-6)
    assert (batched.norm(dim=1) > 1e-3).all()  # every task has a gradient to compare


def test_whole_step_projects_as_with_the_batched_backward_pass(digits, monkeypatch):
    gem, stream = gem_with_memory(digits, "cnn")
    params = [p for p in gem.model.parameters() if p.requires_grad]
    x, y = stream[2].train.batch(torch.arange(32))
    loss = F.cross_entropy(stream.mask(gem.model(x), torch.full_like(y, 2)), y)
    current = torch.autograd.grad(loss, params)
    task0 = gem.batched(params)[0]

    def step():
        for p, c, m in zip(params, current, task0.split([p.numel() for p in params])):
            p.grad = c - 10 * m.view_as(p)  # task 0's memory loss would rise: the step is projected
        gem.after_backward()
        return torch.cat([p.grad.flatten() for p in params])

    identity = step()
    monkeypatch.setattr(gem, "layer_rows", lambda layers, params: None)  # force the batched backward pass
    fallback = step()
    unprojected = torch.cat([(c - 10 * m.view_as(c)).flatten() for c, m in zip(current, task0.split(
        [p.numel() for p in params]))])
    assert not torch.allclose(identity, unprojected, atol=1e-3)
    assert torch.allclose(identity, fallback, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["layernorm", "batchnorm", "twice"])
def test_models_outside_the_identity_take_the_batched_backward_pass(digits, kind):
    gem, stream = gem_with_memory(digits, kind)
    params = [p for p in gem.model.parameters() if p.requires_grad]
    assert torch.equal(gem.memory_gradients(params), gem.batched(params))
    r = ll.Trainer(models(kind, stream.n_outputs), GEM(buffer_size=30), epochs=1, batch_size=64, seed=0).fit(stream)
    assert r.metrics["acc"] > 0.5  # far above chance (3 or 4 classes a task, task-incremental)
