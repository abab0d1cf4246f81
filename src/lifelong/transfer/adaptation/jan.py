"""JAN: joint maximum mean discrepancy over several layers (Long, Zhu, Wang & Jordan 2017, "Deep Transfer
Learning with Joint Adaptation Networks", ICML).

JMMD compares the joint distributions of the activations of layers L (here the features and the
softmax outputs) with the product kernel ∏_l k^l, estimated in quadratic time by

    D̂_L = 1/n_s² Σ_ij ∏_l k^l(z_i^sl, z_j^sl) + 1/n_t² Σ_ij ∏_l k^l(z_i^tl, z_j^tl)
          − 2/(n_s n_t) Σ_ij ∏_l k^l(z_i^sl, z_j^tl).

Kernels as in the Transfer-Learning-Library reimplementation: the features get DAN's multi-kernel
(the SUM of the five Gaussians of `mmd.SCALES` around the mean squared distance, as there, so the
weight is 5 times that of a mean of them), the softmax outputs one Gaussian kernel of fixed
bandwidth σ = 0.92. JAN adds λ · D̂_L to the source cross-entropy with the progressive schedule
λ_p = λ (2 / (1 + exp(−10 p)) − 1), which the paper takes from Ganin et al. λ defaults to 3, chosen
without target labels (BENCHMARKS.md, "Domain adaptation", 2026-12-07): of the grid 0.1, 0.3, 1, 3, the
weight of best mean rank under deep embedded validation (`selection.dev`) over fmnist-rot30,
fmnist-scale75 and mnist1d-noisy, seed 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import Adaptation
from .mmd import gaussian_gram, mmd2_from_gram

SOFTMAX_SIGMA = 0.92


def jmmd(source: Sequence[Tensor], target: Sequence[Tensor], sigma2: Sequence[float | None]) -> Tensor:
    """JMMD² between the layer activations `source[l]` (n_s, d_l) and `target[l]` (n_t, d_l). Layer l
    uses DAN's multi-kernel when `sigma2[l]` is None, else one Gaussian kernel with σ² = sigma2[l]."""
    gram = torch.ones((), dtype=source[0].dtype, device=source[0].device)
    for zs, zt, s2 in zip(source, target, sigma2, strict=True):
        z = torch.cat([zs, zt])
        gram = gram * (gaussian_gram(z) if s2 is None else gaussian_gram(z, (1.0,), s2))
    return mmd2_from_gram(gram, len(source[0]))


class JMMD(nn.Module):
    """JAN's loss on (features, logits): `JMMD()((fs, logits_s), (ft, logits_t))` -> scalar."""

    def forward(self, source: tuple[Tensor, Tensor], target: tuple[Tensor, Tensor]) -> Tensor:
        (fs, ls), (ft, lt) = source, target
        return jmmd([fs, ls.softmax(1)], [ft, lt.softmax(1)], [None, SOFTMAX_SIGMA**2])


class JAN(Adaptation):
    """Joint Adaptation Network: cross-entropy on the source + λ_p · JMMD over features and softmax."""

    name = "jan"
    summary = "JAN: joint MMD over features and softmax outputs (Long et al. 2017)"

    def __init__(self, lam: float = 3.0, progressive: bool = True, layer: str | None = None) -> None:
        super().__init__(lam, progressive, layer)
        self.jmmd = JMMD()

    def term(self, fs: Tensor, ft: Tensor, weight: float) -> Tensor:
        ls, lt = self.pooled(self.trainer.logits)  # the one forward pass over [source; target]
        return weight * self.jmmd((fs, ls), (ft, lt))
