import numpy as np
import torch

from lifelong.transfer.adaptation import CORALLoss, coral


def sample(n, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)


def test_zero_for_equal_covariances():
    s = sample(50)
    assert coral(s, s + torch.arange(6.0, dtype=torch.float64)) < 1e-24  # a mean shift keeps the covariance
    assert coral(s, s[torch.randperm(50)]) < 1e-24
    assert coral(s, -s) < 1e-24


def test_value_is_the_papers_equation():
    s, t = sample(40, seed=1), sample(30, seed=2)
    d = 6
    expected = ((np.cov(s.numpy().T) - np.cov(t.numpy().T)) ** 2).sum() / (4 * d * d)
    assert np.isclose(coral(s, t).item(), expected)
    assert coral(s, 2 * t) > coral(s, t)


def test_gradient_is_the_papers_hand_derived_one():
    """Sun & Saenko eq. 4: dℓ/dD_S = 1/(d² (n_S − 1)) (D_S − 1/n_S 1 1ᵀ D_S)(C_S − C_T), and the opposite
    sign for D_T."""
    s, t = sample(40, seed=3).requires_grad_(), sample(30, seed=4).requires_grad_()
    CORALLoss()(s, t).backward()
    d, ns, nt = 6, 40, 30
    cs, ct = np.cov(s.detach().numpy().T), np.cov(t.detach().numpy().T)
    centred_s = s.detach().numpy() - s.detach().numpy().mean(0)
    centred_t = t.detach().numpy() - t.detach().numpy().mean(0)
    assert np.allclose(s.grad.numpy(), centred_s @ (cs - ct) / (d * d * (ns - 1)))
    assert np.allclose(t.grad.numpy(), -centred_t @ (cs - ct) / (d * d * (nt - 1)))
