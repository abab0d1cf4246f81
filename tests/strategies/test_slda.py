"""Deep SLDA (Hayes & Kanan 2020): batched updates against the paper's per-sample recursion, and the
LDA prediction against its formula."""

import pytest
import torch

import lifelong as ll
from lifelong.errors import ConfigError
from lifelong.strategies import SLDA


def paper_loop(z, y, n_classes):
    """The paper's updates of the class means and the covariance, one sample at a time."""
    d = z.shape[1]
    mu, c = torch.zeros(n_classes, d, dtype=z.dtype), torch.zeros(n_classes, dtype=z.dtype)
    sigma, t = torch.zeros(d, d, dtype=z.dtype), 0
    for zi, k in zip(z, y.tolist()):
        diff = (zi - mu[k])[:, None]
        sigma = (t * sigma + t / (t + 1) * diff @ diff.T) / (t + 1)
        mu[k] = (c[k] * mu[k] + zi) / (c[k] + 1)
        c[k] += 1
        t += 1
    return mu, c, sigma


def attached(n_outputs=4, shrinkage=1e-4):
    slda = SLDA(shrinkage)
    stream = ll.data.from_tasks([(ll.data.Split(torch.zeros(n_outputs, 3), torch.arange(n_outputs)),) * 2])
    slda.attach(ll.Trainer(ll.models.mlp(3, n_outputs, hidden=(5,))), stream)
    return slda


def test_batched_updates_equal_the_per_sample_recursion():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, 3, generator=g, dtype=torch.float64) + 2
    y = torch.randint(0, 4, (50,), generator=g)
    slda = attached()
    for lo, hi in ((0, 7), (7, 8), (8, 31), (31, 50)):  # uneven batches, classes first seen mid-batch
        slda.update(z[lo:hi], y[lo:hi])
    mu, c, sigma = paper_loop(z, y, 4)
    assert torch.allclose(slda.means, mu) and torch.equal(slda.counts, c.float())
    assert torch.allclose(slda.sigma, sigma) and int(slda.seen) == 50


def test_prediction_is_the_shrunk_lda_rule():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y = torch.arange(40) % 3
    slda = attached(n_outputs=4, shrinkage=0.1)
    slda.update(z, y)
    lam = torch.linalg.inv(0.9 * slda.sigma + 0.1 * torch.eye(3, dtype=torch.float64))
    q = torch.randn(6, 3, generator=g, dtype=torch.float64)
    want = torch.stack([q @ lam @ m - 0.5 * m @ lam @ m for m in slda.means[:3]], 1)
    assert torch.allclose(slda.scores(q)[:, :3], want)
    slda.model.features = torch.nn.Identity()  # predict goes through the (frozen) features
    out = slda.predict(q, None)
    assert (out[:, 3] == torch.finfo(out.dtype).min).all()  # class 3 never seen, never predicted


def test_never_trains_the_model_and_learns_the_stream(digits_stream):
    torch.manual_seed(0)
    model = ll.models.mlp(64, 10, hidden=(256,))
    before = [p.clone() for p in model.parameters()]
    result = ll.Trainer(model, SLDA(), seed=0).fit(digits_stream)
    assert all(torch.equal(p, p0) for p, p0 in zip(model.parameters(), before))
    assert result.samples_seen == 0 and result.metrics["acc"] > 0.85  # random ReLU features, class-IL


def test_shrinkage_is_checked():
    with pytest.raises(ConfigError, match="shrinkage"):
        SLDA(shrinkage=0)
