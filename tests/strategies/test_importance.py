"""Per-sample Fisher / MAS statistics: analytic values, two exact methods, the batch-gradient mistake."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lifelong as ll
from lifelong.strategies.importance import fisher_diagonal, grad_stats


def no_mask(logits, t):
    return logits


def data(n=40, d=6, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, c, (n,), generator=g)


def test_logistic_regression_fisher_is_analytic():
    torch.manual_seed(0)
    x, y = data()
    model = ll.models.mlp(6, 3, hidden=()).double()
    fisher = fisher_diagonal(model, x, y, torch.zeros_like(y), no_mask)
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    err = F.one_hot(y, 3).double() - p  # ∂ log p(y|x) / ∂ logits, per sample
    w_expected = (err[:, :, None] * x[:, None, :]).pow(2).mean(0)
    b_expected = err.pow(2).mean(0)
    assert torch.allclose(fisher["head.weight"], w_expected, atol=1e-6, rtol=0)
    assert torch.allclose(fisher["head.bias"], b_expected, atol=1e-6, rtol=0)


def per_sample_loop(model, x, y, stat=torch.square, objective=None):
    objective = objective or (lambda out, yy: F.cross_entropy(out, yy))
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    model.eval()
    for i in range(len(x)):
        model.zero_grad()
        objective(model(x[i : i + 1]), y[i : i + 1]).backward()
        for n, p in model.named_parameters():
            total[n] += stat(p.grad)
    return {n: v / len(x) for n, v in total.items()}


@pytest.mark.parametrize("method", ["layers", "vmap"])
def test_fisher_matches_per_sample_loop_and_not_batch_gradient(method):
    torch.manual_seed(1)
    x, y = data(n=32)
    model = ll.models.mlp(6, 3, hidden=(8, 5)).double()
    fisher = fisher_diagonal(model, x, y, torch.zeros_like(y), no_mask, method=method, chunk=7)
    loop = per_sample_loop(model, x, y)
    for n in loop:
        assert torch.allclose(fisher[n], loop[n], atol=1e-10)
    # the known mistake: squaring the gradient of the batch-mean loss
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    wrong = model.head.weight.grad.pow(2)
    assert not torch.allclose(wrong, fisher["head.weight"], rtol=0.1)
    assert wrong.sum() < fisher["head.weight"].sum() / 4


def small_cnn(shape):
    torch.manual_seed(2)
    return ll.models.cnn(shape, 4, channels=(3, 2) if len(shape) == 3 else (2, 2, 2)).double()


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 40)])
def test_layer_identity_equals_vmap_on_convolutions(shape):
    model = small_cnn(shape)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (10,), generator=g)
    t = torch.zeros_like(y)
    a = fisher_diagonal(model, x, y, t, no_mask, method="layers", chunk=4)
    b = fisher_diagonal(model, x, y, t, no_mask, method="vmap")
    assert a.keys() == b.keys() and any("features" in k and k.endswith("weight") for k in a)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-10), k


def test_expected_fisher_is_probability_weighted_sum():
    torch.manual_seed(4)
    x, y = data(n=12)
    model = ll.models.mlp(6, 3, hidden=(5,)).double()
    got = fisher_diagonal(model, x, y, torch.zeros_like(y), no_mask, kind="expected")
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    want = {n: torch.zeros_like(v) for n, v in got.items()}
    for c in range(3):
        model.eval()  # each sample's squared gradient for label c, weighted by p(c|x)
        for i in range(len(x)):
            model.zero_grad()
            F.cross_entropy(model(x[i : i + 1]), torch.tensor([c])).backward()
            for n, q in model.named_parameters():
                want[n] += p[i, c] * q.grad.pow(2) / len(x)
    for n in want:
        assert torch.allclose(got[n], want[n], atol=1e-10)


def test_fisher_pass_leaves_batchnorm_statistics_untouched():
    torch.manual_seed(5)
    model = ll.models.Net(nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5)),
                          nn.Linear(8, 3)).double()
    x, y = data(n=20)
    model.train()
    model(x)  # non-trivial running statistics
    before = {k: v.clone() for k, v in model.state_dict().items()}
    f1 = fisher_diagonal(model, x, y, torch.zeros_like(y), no_mask)  # falls back to vmap (BatchNorm)
    f2 = fisher_diagonal(model, x, y, torch.zeros_like(y), no_mask)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training  # mode restored
    assert all(torch.equal(f1[k], f2[k]) for k in f1)  # dropout was off: deterministic


def test_task_incremental_mask_restricts_fisher_to_the_task_head(digits):
    stream = ll.data.split(digits, n_tasks=5, scenario="task", seed=0)
    torch.manual_seed(0)
    model = ll.models.mlp(64, 10, hidden=(16,))
    task = stream[1]
    x, y = task.train.x, task.train.y
    fisher = fisher_diagonal(model, x, y, torch.full_like(y, 1), stream.mask)
    rows = fisher["head.weight"].abs().sum(1)
    assert (rows[task.units] > 0).all()
    others = [u for u in range(10) if u not in task.units]
    assert (rows[others] == 0).all()


def test_mas_statistic_is_mean_absolute_per_sample_gradient():
    torch.manual_seed(6)
    x, y = data(n=15)
    model = ll.models.mlp(6, 3, hidden=(4,)).double()

    def sq_norm(out, yy, tt=None):
        return out.pow(2).sum(1)

    got = grad_stats(model, x, y, torch.zeros_like(y), sq_norm, "abs")
    loop = per_sample_loop(model, x, y, stat=torch.abs, objective=lambda out, yy: sq_norm(out, yy).sum())
    for n in got:
        assert torch.allclose(got[n] / len(x), loop[n], atol=1e-10)


class Twice(nn.Module):
    """A hidden layer called twice per forward pass (registered once: see the note on tied modules below)."""

    def __init__(self):
        super().__init__()
        self.hidden, self.head = nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.hidden(torch.tanh(self.hidden(x)))))


def test_a_layer_run_twice_takes_vmap_and_matches_the_per_sample_loop():
    # (a module registered under two names, nn.Sequential(h, ..., h), is left out: torch's functional_call
    # does not restore its parameters, pytorch/pytorch#164759)
    torch.manual_seed(7)
    x, y = data(n=9)
    model = Twice().double()
    got = grad_stats(model, x, y, torch.zeros_like(y), lambda out, yy, tt: F.cross_entropy(out, yy, reduction="none"))
    loop = per_sample_loop(model, x, y)
    for n in got:
        assert torch.allclose(got[n] / len(x), loop[n], atol=1e-10), n


class _Branchy(nn.Module):
    """A model with data-dependent control flow, which torch.func's vmap refuses (as transformers' masks)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 2), nn.LayerNorm(2)

    def forward(self, x):
        h = self.b(self.a(x))
        return h * 2 if bool(x.sum() > 0) else h


def test_grad_stats_fall_back_to_one_backward_per_sample_where_vmap_cannot_go():
    torch.manual_seed(0)
    model, x, y = _Branchy(), torch.randn(6, 3), torch.tensor([0, 1, 1, 0, 1, 0])

    def ce(logits, labels, tasks):
        return F.cross_entropy(logits, labels, reduction="none")

    out = grad_stats(model, x, y, torch.zeros(6, dtype=torch.long), ce, "square", method="vmap")
    for name, p in model.named_parameters():
        expected = sum(torch.autograd.grad(ce(model(x[i:i + 1]), y[i:i + 1], None).sum(), p)[0] ** 2 for i in range(6))
        torch.testing.assert_close(out[name], expected)
