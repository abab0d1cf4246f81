"""Deep CORAL (Sun & Saenko 2016, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation",
ECCV workshops).

The CORAL loss between source features D_S (n_S x d) and target features D_T (n_T x d) is the
squared Frobenius distance of their covariances (eq. 1), with the unbiased covariances of eq. 2-3:

    ℓ_CORAL = 1/(4 d²) ‖C_S − C_T‖²_F,   C = 1/(n − 1) (DᵀD − 1/n (1ᵀD)ᵀ(1ᵀD)).

Deep CORAL adds λ · ℓ_CORAL on the last layer's activations to the source cross-entropy,
with λ chosen so that both terms are of similar size at the end of training. Here it acts on
`forward_features` (the input of the classifier head); λ defaults to 1000, chosen on fmnist ->
fmnist-rot30 with the 400-unit MLP (BENCHMARKS.md: 10, 100, 1000, 3000, 10000 tried), since 1/(4d²)
makes the term tiny for wide features (d = 400: 1/640,000).
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

    def __init__(self, lam: float = 1000.0, progressive: bool = False) -> None:
        super().__init__(lam, progressive)

    def term(self, fs: Tensor, ft: Tensor, weight: float) -> Tensor:
        return weight * coral(fs, ft)
