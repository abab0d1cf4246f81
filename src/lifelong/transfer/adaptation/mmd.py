"""Multi-kernel maximum mean discrepancy (MK-MMD) and DAN (Long, Cao, Wang & Jordan 2015, "Learning
Transferable Features with Deep Adaptation Networks", ICML).

The squared MMD between source features s_1..s_m ~ p and target features t_1..t_n ~ q in the RKHS of a
kernel k (DAN's MK-MMD) is d_k²(p, q) = ‖E_p φ(s) − E_q φ(t)‖², estimated here by the quadratic-time
(biased, never negative) statistic

    d̂² = 1/m² Σ_ij k(s_i, s_j) + 1/n² Σ_ij k(t_i, t_j) − 2/(mn) Σ_ij k(s_i, t_j).

DAN's multi-kernel is a combination k = Σ_u β_u k_u of Gaussian kernels. Here k_u(a, b) =
exp(−‖a − b‖² / (2 σ_u²)) with σ_u² = 2^u · σ̄², u ∈ {−3, ..., 1}, where σ̄² is the mean pairwise
squared distance of the pooled batch (no gradient through it), and β_u = 1: the kernels are SUMMED,
as in the Transfer-Learning-Library (the fixed family of the usual reimplementations, instead of DAN's
per-step quadratic program for β), so a weight λ here means what it means there; it is 5 times the
weight of DAN's convex combination (Σ β_u = 1, β_u = 1/5). DAN adds λ · d̂² to the source
cross-entropy for each of AlexNet's fc6-fc8 with a linear-time estimate; here for the representation
(the input of the classifier, or the module `layer`) with the quadratic-time one, which small
batches afford. The default λ was chosen without target labels: see `DAN`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import Adaptation

SCALES = (2.0**-3, 2.0**-2, 2.0**-1, 1.0, 2.0)


def squared_distances(z: Tensor) -> Tensor:
    """‖z_i − z_j‖² for every pair of rows of z, shape (N, N), clamped at 0 against rounding."""
    sq = (z * z).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * z @ z.T).clamp_min(0)


def gaussian_gram(z: Tensor, scales: Sequence[float] = SCALES, sigma2: float | None = None) -> Tensor:
    """Sum over u of exp(−‖z_i − z_j‖² / (2 σ_u²)), σ_u² = scales[u] · σ̄²; σ̄² is `sigma2` when given,
    else the mean pairwise squared distance of the rows of z (detached)."""
    d2 = squared_distances(z)
    n = len(z)
    base = torch.as_tensor(sigma2, dtype=z.dtype) if sigma2 is not None else d2.detach().sum() / max(n * n - n, 1)
    base = base.clamp_min(torch.finfo(z.dtype).tiny)
    return torch.stack([torch.exp(-d2 / (2 * s * base)) for s in scales]).sum(0)


def mmd2_from_gram(gram: Tensor, m: int) -> Tensor:
    """The biased MMD² statistic from the Gram matrix of the pooled sample [source (m rows); target]."""
    return gram[:m, :m].mean() + gram[m:, m:].mean() - 2 * gram[:m, m:].mean()


def mk_mmd(source: Tensor, target: Tensor, scales: Sequence[float] = SCALES) -> Tensor:
    """Multi-kernel MMD² between two samples of feature vectors (N, D) and (M, D)."""
    return mmd2_from_gram(gaussian_gram(torch.cat([source, target]), scales), len(source))


class MKMMD(nn.Module):
    """MK-MMD as a loss module: `MKMMD()(source_features, target_features)` -> scalar."""

    def __init__(self, scales: Sequence[float] = SCALES) -> None:
        super().__init__()
        self.scales = tuple(scales)

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        return mk_mmd(source, target, self.scales)


class DAN(Adaptation):
    """Deep Adaptation Network: cross-entropy on the source + λ · MK-MMD²(source, target features).

    λ = 1 was chosen without target labels (BENCHMARKS.md, "Domain adaptation", 2026-12-07): of the grid
    0.1, 0.3, 1, 3, the weight of best mean rank under deep embedded validation (`selection.dev`) over
    fmnist-rot30, fmnist-scale75 and mnist1d-noisy, seed 0 (a tie with 3, broken towards the smaller)."""

    name = "dan"
    summary = "DAN: multi-kernel MMD between source and target features (Long et al. 2015)"

    def __init__(self, lam: float = 1.0, progressive: bool = False, layer: str | None = None) -> None:
        super().__init__(lam, progressive, layer)

    def term(self, fs: Tensor, ft: Tensor, weight: float) -> Tensor:
        return weight * mk_mmd(fs, ft)
