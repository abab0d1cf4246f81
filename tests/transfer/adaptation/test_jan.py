import itertools

import torch

from lifelong.transfer.adaptation import JMMD, jmmd, mk_mmd


def gauss(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_one_layer_is_mk_mmd():
    s, t = gauss(30, 4, 0), gauss(20, 4, 1) + 0.5
    assert torch.allclose(jmmd([s], [t], [None]), mk_mmd(s, t))


def test_product_kernel_estimate_matches_the_formula_written_out():
    zs, zt = [gauss(4, 3, 2), gauss(4, 2, 3)], [gauss(3, 3, 4), gauss(3, 2, 5)]
    sigma2 = [0.7, 1.3]

    def k(a, b):  # ∏_l exp(−‖a_l − b_l‖² / (2 σ_l²))
        terms = [torch.exp(-(x - y).square().sum() / (2 * s2)) for x, y, s2 in zip(a, b, sigma2)]
        return torch.prod(torch.stack(terms))

    s_rows = [[z[i] for z in zs] for i in range(4)]
    t_rows = [[z[i] for z in zt] for i in range(3)]
    expected = (sum(k(a, b) for a, b in itertools.product(s_rows, s_rows)) / 16
                + sum(k(a, b) for a, b in itertools.product(t_rows, t_rows)) / 9
                - 2 * sum(k(a, b) for a, b in itertools.product(s_rows, t_rows)) / 12)
    assert torch.allclose(jmmd(zs, zt, sigma2), expected)


def test_joint_shift_invisible_to_marginals_is_detected():
    """Features and outputs have the same marginals in both domains, but their pairing differs."""
    fs, ft = gauss(300, 2, 6), gauss(300, 2, 7)
    ls, lt = 3 * fs, -3 * ft  # logits: the same distribution in both domains, opposite relation
    marginal = max(mk_mmd(fs, ft), mk_mmd(ls.softmax(1), lt.softmax(1)))
    joint = JMMD()((fs, ls), (ft, lt))
    same = JMMD()((fs, ls), (ft, 3 * ft))
    assert marginal < 0.02 and same < 0.02
    assert joint > 5 * max(marginal, same)


def test_gradient_matches_finite_differences():
    zs, zt = [gauss(5, 3, 8).requires_grad_(), gauss(5, 2, 9).requires_grad_()], [gauss(4, 3, 10), gauss(4, 2, 11)]
    assert torch.autograd.gradcheck(lambda a, b: jmmd([a, b], zt, [0.8, 1.5]), tuple(zs))
