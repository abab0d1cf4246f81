"""Source and target domains for unsupervised domain adaptation, all built offline.

Fashion-MNIST shifts (the target is Fashion-MNIST seen differently; same ten classes):
- `fmnist-rot30`: every image rotated by 30 degrees about its centre;
- `fmnist-invert`: pixel intensities inverted, p -> 1 - p (white garments on black become black on white);
- `fmnist-noise`: additive Gaussian noise of standard deviation 0.5 (pixels in [0, 1]), fixed per sample;
- `fmnist-scale75`: every image shrunk to 75 % of its size about its centre (bilinear, a black border
  around it): a geometric shift, like the rotation, that keeps the garment whole.
When source and target come from the same images (`fmnist` -> `fmnist-rot30`), the 60,000 training
images are cut into two disjoint stratified halves: the source learns from one, the unlabelled target
samples come from the other, so no target input is a shifted copy of a labelled source input.
Test sets are the 10,000 test images under each domain's shift.

Cross-data-set pair: `mnist1d` -> `mnist1d-noisy`. This machine has no second image data set with
Fashion-MNIST's (or scikit-learn digits') label space (no MNIST, SVHN or USPS; digits 8x8 resized to
28x28 against Fashion-MNIST would pair digits with garments). MNIST-1D (Greydanus 2020) is a generator,
so a second data set with the same ten digit classes is one drawn from another generator setting:
`mnist1d-noisy` draws new signals (seed 7) with correlated noise 0.6 instead of 0.25 and i.i.d. noise
0.1 instead of 0.02, the way two recording set-ups of one phenomenon differ (MNIST -> USPS in spirit).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...data import Dataset, Split, dataset, rotate, stratified_split
from ...data.sources import FASHION_MNIST_MEAN, FASHION_MNIST_STD, mnist1d
from ...errors import ConfigError
from ...registry import Registry

DOMAINS = Registry("domain")
NOISE_STD = 0.5


@dataclass(frozen=True)
class Domain:
    """A data set (`base`, the name of a loader in BASES) seen through `shift(x, part)`; part 0 is
    the training split, 1 the test split (noise differs between them)."""

    base: str
    shift: Callable[[Tensor, int], Tensor] | None = None


def _invert(x: Tensor, part: int) -> Tensor:
    """p -> 1 - p on Fashion-MNIST's standardised pixels (x = (p - mean) / std)."""
    return (1 - 2 * FASHION_MNIST_MEAN) / FASHION_MNIST_STD - x


def _noise(x: Tensor, part: int) -> Tensor:
    g = torch.Generator().manual_seed(part)
    return x + torch.randn(x.shape, generator=g) * (NOISE_STD / FASHION_MNIST_STD)


def scale(x: Tensor, factor: float, chunk: int = 8192) -> Tensor:
    """Fashion-MNIST images (N, C, H, W), standardised, resized by `factor` about their centre; pixels from
    outside the original image are black (p = 0)."""
    background = -FASHION_MNIST_MEAN / FASHION_MNIST_STD
    theta = torch.tensor([[1 / factor, 0.0, 0.0], [0.0, 1 / factor, 0.0]], dtype=x.dtype)
    out = torch.empty_like(x)
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk] - background  # black is 0, the zero padding of grid_sample
        grid = F.affine_grid(theta.expand(len(xb), 2, 3), list(xb.shape), align_corners=False)
        out[i : i + chunk] = F.grid_sample(xb, grid, padding_mode="zeros", align_corners=False) + background
    return out


BASES: dict[str, Callable[[], Dataset]] = {
    "fmnist": lambda: dataset("fmnist"),
    "mnist1d": lambda: dataset("mnist1d"),
    "mnist1d-noisy": functools.lru_cache(maxsize=1)(
        lambda: mnist1d(seed=7, corr_noise_scale=0.6, iid_noise_scale=0.1)),
}

for _name, _domain, _what in [
    ("fmnist", Domain("fmnist"), "Fashion-MNIST as it is"),
    ("fmnist-rot30", Domain("fmnist", lambda x, part: rotate(x, 30.0)), "Fashion-MNIST rotated by 30 degrees"),
    ("fmnist-invert", Domain("fmnist", _invert), "Fashion-MNIST with inverted intensities (1 - p)"),
    ("fmnist-noise", Domain("fmnist", _noise), f"Fashion-MNIST + Gaussian noise (std {NOISE_STD} on [0, 1] pixels)"),
    ("fmnist-scale75", Domain("fmnist", lambda x, part: scale(x, 0.75)), "Fashion-MNIST shrunk to 75 % about the "
     "centre"),
    ("mnist1d", Domain("mnist1d"), "MNIST-1D, Greydanus's generator settings"),
    ("mnist1d-noisy", Domain("mnist1d-noisy"), "MNIST-1D from a noisier generator (new samples, same classes)"),
]:
    DOMAINS.register(_name, _what)(_domain)


def _shifted(data: Dataset, train: Split, name: str, domain: Domain) -> Dataset:
    def apply(split: Split, part: int) -> Split:
        return Split(domain.shift(split.inputs(), part), split.y) if domain.shift is not None else split

    return Dataset(name, apply(train, 0), apply(data.test, 1), data.class_names, data.input_shape)


@functools.lru_cache(maxsize=2)
def domain_pair(source: str, target: str) -> tuple[Dataset, Dataset]:
    """The (source, target) data sets for adapting from `source` to `target` (names of DOMAINS)."""
    src, tgt = DOMAINS.get(source).factory, DOMAINS.get(target).factory
    src_data, tgt_data = BASES[src.base](), BASES[tgt.base]()
    if src_data.class_names != tgt_data.class_names:
        raise ConfigError(f"{source} and {target} have different classes: pick a target of the source's data "
                          "set (see `lifelong list`)")
    if src.base == tgt.base:  # disjoint halves of one training set
        src_train, tgt_train = stratified_split(src_data.train, 0.5, seed=0)
    else:
        src_train, tgt_train = src_data.train, tgt_data.train
    return _shifted(src_data, src_train, source, src), _shifted(tgt_data, tgt_train, target, tgt)
