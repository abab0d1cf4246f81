"""Deep CORAL (Sun & Saenko 2016, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation",
ECCV workshops).

The CORAL loss between source features D_S (n_S x d) and target features D_T (n_T x d) is the
squared Frobenius distance of their covariances (eq. 1), with the unbiased covariances of eq. 2-3:

    ℓ_CORAL = 1/(4 d²) ‖C_S − C_T‖²_F,   C = 1/(n − 1) (DᵀD − 1/n (1ᵀD)ᵀ(1ᵀD)).

Deep CORAL adds λ · ℓ_CORAL on the last layer's activations to the source cross-entropy,
with λ chosen so that both terms are of similar size at the end of training. Here it acts on
the pre-logits (the input of the classifier; or the module `layer`), where 1/(4d²) makes the term tiny for wide
features (d = 400: 1/640,000). λ defaults to 100, chosen without target labels (BENCHMARKS.md,
"Domain adaptation", 2026-12-07): of the grid 10, 100, 1000, 10000, the weight of best mean rank under
deep embedded validation (`selection.dev`) over fmnist-rot30, fmnist-scale75 and mnist1d-noisy, seed 0.
(The earlier default, 1000, had been chosen on the target TEST accuracy of fmnist-rot30.)
"""

from __future__ import annotations

from torch import Tensor, nn

from .base import Adaptation


def coral(source: Tensor, target: Tensor) -> Tensor:
    """The CORAL loss 1/(4d²) ‖C_S − C_T‖²_F of two samples (n_S, d), (n_T, d); each needs n >= 2."""
    d = source.shape[1]
    diff = source.T.cov() - target.T.cov()
    return (diff * diff).sum() / (4 * d * d)


class CORALLoss(nn.Module):
    """Deep CORAL's loss as a module: `CORALLoss()(source_features, target_features)` -> scalar."""

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        return coral(source, target)


class CORAL(Adaptation):
    """Deep CORAL: cross-entropy on the source + λ · ℓ_CORAL(source, target features)."""

    name = "coral"
    summary = "Deep CORAL: match second-order statistics of source and target features (Sun & Saenko 2016)"

    def __init__(self, lam: float = 100.0, progressive: bool = False, layer: str | None = None) -> None:
        super().__init__(lam, progressive, layer)

    def term(self, fs: Tensor, ft: Tensor, weight: float) -> Tensor:
        return weight * coral(fs, ft)
