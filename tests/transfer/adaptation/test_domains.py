import pytest
import torch

from lifelong.data import fashion_mnist, mnist1d, rotate
from lifelong.data.sources import FASHION_MNIST_MEAN, FASHION_MNIST_STD, fashion_mnist_dirs
from lifelong.errors import ConfigError, DataError
from lifelong.transfer.adaptation import DOMAINS, domain_pair
from lifelong.transfer.adaptation.domains import NOISE_STD, _invert, _noise, scale

have_fmnist = any((d / "t10k-labels-idx1-ubyte.gz").exists() or (d / "t10k-labels-idx1-ubyte").exists()
                  for d in fashion_mnist_dirs())
needs_fmnist = pytest.mark.skipif(not have_fmnist, reason="Fashion-MNIST is not installed")


def test_invert_maps_pixels_to_one_minus_pixels():
    p = torch.rand(4, 1, 3, 3)
    x = (p - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
    assert torch.allclose(_invert(x, 0) * FASHION_MNIST_STD + FASHION_MNIST_MEAN, 1 - p, atol=1e-6)
    assert torch.allclose(_invert(_invert(x, 0), 0), x, atol=1e-6)


def test_noise_is_fixed_per_split_and_has_the_stated_strength():
    x = torch.zeros(2000, 1, 28, 28)
    a, b, c = _noise(x, 0), _noise(x, 0), _noise(x, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs((a * FASHION_MNIST_STD).std().item() - NOISE_STD) < 0.01


def test_scale_shrinks_about_the_centre_on_a_black_border():
    p = torch.zeros(1, 1, 28, 28)
    p[..., 6:22, 6:22] = 1.0  # a white 16x16 square in the middle
    small = scale((p - FASHION_MNIST_MEAN) / FASHION_MNIST_STD, 0.75) * FASHION_MNIST_STD + FASHION_MNIST_MEAN
    assert small.sum().item() == pytest.approx(0.75**2 * 256, rel=0.02)  # the area shrinks by 0.75^2
    assert torch.allclose(small[..., 10:18, 10:18], torch.ones(1, 1, 8, 8), atol=1e-5)  # the centre stays
    assert small[..., :8, :].abs().max().item() < 1e-5 and small[..., 20:, :].abs().max().item() < 1e-5
    assert torch.allclose(small, small.flip(-1).flip(-2), atol=1e-5)  # about the centre
    assert torch.allclose(scale(p, 1.0), p, atol=1e-5)


@needs_fmnist
def test_fmnist_pair_uses_disjoint_halves_and_shifted_test_sets():
    source, target = domain_pair("fmnist", "fmnist-rot30")
    plain_source, plain_target = domain_pair("fmnist", "fmnist")
    assert len(source.train) == len(target.train) == 30000
    assert torch.equal(torch.bincount(source.train.y), torch.full((10,), 3000))
    seen = {row.numpy().tobytes() for row in plain_source.train.x.flatten(1)}
    assert not any(row.numpy().tobytes() in seen for row in plain_target.train.x.flatten(1))
    full = fashion_mnist()
    assert torch.equal(source.test.x, full.test.x)
    assert torch.allclose(target.test.x, rotate(full.test.inputs(), 30.0))
    assert torch.allclose(target.train.x, rotate(plain_target.train.inputs(), 30.0))


def test_mnist1d_generation_settings_are_checked():
    with pytest.raises(DataError, match="unknown MNIST-1D generation setting 'noise'"):
        mnist1d(noise=0.5)


@pytest.mark.slow  # generating the two MNIST-1D data sets takes ~12 s
def test_cross_dataset_pair_shares_classes_not_samples():
    source, target = domain_pair("mnist1d", "mnist1d-noisy")
    assert source.class_names == target.class_names and source.input_shape == target.input_shape == (1, 40)
    assert not torch.equal(source.train.x[:100], target.train.x[:100])
    if have_fmnist:
        with pytest.raises(ConfigError, match="different classes"):
            domain_pair("mnist1d", "fmnist-rot30")


def test_unknown_domains_are_refused():
    with pytest.raises(ConfigError, match="unknown domain 'fmnist-rot45'"):
        domain_pair("fmnist", "fmnist-rot45")
    assert {"fmnist-rot30", "fmnist-invert", "fmnist-noise", "fmnist-scale75", "mnist1d-noisy"} <= set(DOMAINS.names())
