import pytest
import torch

from lifelong.transfer.adaptation import MKMMD, gaussian_gram, mk_mmd, mmd2_from_gram


def sample(n, shift=0.0, seed=0, d=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


def test_same_distribution_near_zero_and_grows_with_mean_shift():
    same = mk_mmd(sample(400, seed=0), sample(400, seed=1))
    shifted = [mk_mmd(sample(400, seed=0), sample(400, shift, seed=1)).item() for shift in (0.25, 0.5, 1.0, 2.0)]
    assert 0 <= same < 0.01
    assert same < shifted[0] and all(a < b for a, b in zip(shifted, shifted[1:]))
    assert shifted[-1] > 20 * same


def test_linear_kernel_gives_squared_distance_of_means():
    s, t = sample(30, seed=0), sample(20, 0.7, seed=1)
    z = torch.cat([s, t])
    expected = (s.mean(0) - t.mean(0)).square().sum()
    assert torch.allclose(mmd2_from_gram(z @ z.T, 30), expected)


def test_gram_is_a_sum_of_gaussians_around_the_mean_squared_distance():
    z = sample(6, seed=2, d=3)
    d2 = torch.cdist(z, z).square()
    base = d2.sum() / 30
    expected = sum(torch.exp(-d2 / (2 * s * base)) for s in (0.125, 0.25, 0.5, 1.0, 2.0))  # summed, as TLlib
    gram = gaussian_gram(z)
    assert torch.allclose(gram, expected)
    assert torch.allclose(gram.diagonal(), torch.full((6,), 5.0, dtype=torch.float64))


def test_gradient_matches_finite_differences_at_fixed_bandwidth():
    s, t = sample(7, seed=3).requires_grad_(), sample(5, 0.5, seed=4).requires_grad_()

    def f(a, b):
        return mmd2_from_gram(gaussian_gram(torch.cat([a, b]), (0.5, 1.0, 2.0), sigma2=3.0), len(a))

    assert torch.autograd.gradcheck(f, (s, t))


def test_module_and_symmetry():
    s, t = sample(50, seed=5), sample(40, 1.0, seed=6)
    assert torch.allclose(MKMMD()(s, t), mk_mmd(t, s))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identical_samples_give_zero(dtype):
    s = sample(20, seed=7).to(dtype)
    assert abs(mk_mmd(s, s.clone()).item()) < 1e-6
