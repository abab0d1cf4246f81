import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.transfer.adaptation import TCA


def toy(n=200, seed=0):
    """2-D: coordinate 0 carries the signal in both domains; the target is shifted by 6 along coordinate 1."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.3], dtype=torch.float64)
    t = torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.3], dtype=torch.float64)
    return s, t + torch.tensor([0.0, 6.0], dtype=torch.float64)


def test_component_ignores_the_shift_and_keeps_the_signal():
    s, t = toy()
    tca = TCA(n_components=1, mu=1.0).fit(s, t)
    zs, zt = tca.transform(s), tca.transform(t)
    gap, spread = (zs.mean(0) - zt.mean(0)).abs().item(), torch.cat([zs, zt]).std().item()
    assert gap < 0.05 * spread
    corr = torch.corrcoef(torch.stack([torch.cat([zs, zt])[:, 0], torch.cat([s, t])[:, 0]]))[0, 1]
    assert abs(corr) > 0.99
    # plain PCA of the pooled sample would pick the shift direction instead
    pooled = torch.cat([s, t]) - torch.cat([s, t]).mean(0)
    assert torch.linalg.eigh(pooled.T @ pooled).eigenvectors[:, -1].abs().argmax() == 1


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_solution_solves_the_generalized_eigenproblem(kernel):
    s, t = toy(30, seed=1)
    tca = TCA(n_components=5, mu=0.5, kernel=kernel).fit(s, t)
    x = torch.cat([s, t])
    n = 60
    k = x @ x.T if kernel == "linear" else torch.exp(-torch.cdist(x, x).square() / (2 * tca.sigma2))
    e = torch.cat([torch.full((30,), 1 / 30), torch.full((30,), -1 / 30)]).double()
    big_l, h = torch.outer(e, e), torch.eye(n, dtype=torch.float64) - 1 / n
    a, b = k @ h @ k, k @ big_l @ k + 0.5 * torch.eye(n, dtype=torch.float64)
    w, lam = tca.components, tca.eigenvalues
    assert torch.allclose(a @ w, b @ w * lam, atol=1e-6 * lam.max())
    assert torch.allclose(w.T @ b @ w, torch.eye(5, dtype=torch.float64), atol=1e-8)
    assert torch.all(lam[:-1] >= lam[1:])
    # no other generalized eigenvalue beats the ones kept
    others = torch.linalg.eigvals(torch.linalg.solve(b, a)).real
    assert torch.isclose(others.max(), lam[0], rtol=1e-6)
    assert torch.allclose(tca.transform(x), k @ w)


def test_mu_trades_domain_distance_against_variance():
    """Small μ (against the kernel's scale) closes the gap between the domains' embeddings; large μ
    leaves kernel PCA, whose leading component is the domain split itself."""
    s, t = toy(100, seed=2)
    rel = lambda a, b: (a.mean(0) - b.mean(0)).norm() / torch.cat([a, b]).std(0).norm()  # noqa: E731
    close = TCA(n_components=2, mu=0.1, kernel="rbf").fit(s, t)
    far = TCA(n_components=2, mu=100.0, kernel="rbf").fit(s, t)
    assert rel(close.transform(s), close.transform(t)) < 0.01 * rel(s, t)
    assert rel(far.transform(s), far.transform(t)) > 0.5 * rel(s, t)


def test_bad_input():
    with pytest.raises(ConfigError, match="kernel"):
        TCA(kernel="poly")
    with pytest.raises(ConfigError, match="n_components"):
        TCA(n_components=0)
    with pytest.raises(ConfigError, match="not fitted"):
        TCA().transform(torch.zeros(2, 2))
    s, t = toy(3)
    with pytest.raises(ConfigError, match="n_components"):
        TCA(n_components=10).fit(s, t)
    with pytest.raises(ConfigError, match="fitted on 2 features"):
        TCA(n_components=1).fit(s, t).transform(torch.zeros(2, 3))
