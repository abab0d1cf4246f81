"""TCA: transfer component analysis (Pan, Tsang, Kwok & Yang 2011, "Domain Adaptation via Transfer
Component Analysis", IEEE Trans. Neural Networks 22(2)), the unsupervised variant.

With K the kernel matrix of the pooled sample [source (n_s); target (n_t)], n = n_s + n_t, L = e eᵀ
(e_i = 1/n_s on source rows, −1/n_t on target rows: tr(WᵀKLKW) is the squared MMD of the embeddings)
and the centring matrix H = I − 11ᵀ/n, TCA keeps the variance of the data while shrinking the
distance between the domains:

    min_W  tr(Wᵀ K L K W) + μ tr(WᵀW)   s.t.   Wᵀ K H K W = I,

solved in closed form by the m leading eigenvectors of (K L K + μI)⁻¹ K H K. They are found here as
the generalized symmetric eigenproblem K H K w = λ (K L K + μI) w (Cholesky whitening, then `eigh`),
normalised to Wᵀ (K L K + μI) W = I. A sample x embeds as k(x, pooled sample) W, so new points (the
target test set) embed the same way. Hyper-parameters: m = `n_components` (30), μ = `mu` (1, the
paper's usual value), `kernel` "linear" (default) or "rbf" (Gaussian, σ² = mean pairwise squared
distance of the pooled sample). Everything is computed in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import ConfigError
from .mmd import squared_distances

KERNELS = ("linear", "rbf")


class TCA:
    """`TCA(n_components, mu, kernel).fit(source, target)`, then `transform(x)` -> (N, n_components)."""

    name = "tca"
    summary = "TCA: kernel transfer component analysis on source-trained features (Pan et al. 2011)"

    def __init__(self, n_components: int = 30, mu: float = 1.0, kernel: str = "linear") -> None:
        if not isinstance(n_components, int) or n_components < 1:
            raise ConfigError(f"tca needs n_components >= 1, got {n_components!r}")
        if not mu > 0:
            raise ConfigError(f"tca needs mu > 0, got {mu!r}")
        if kernel not in KERNELS:
            raise ConfigError(f"unknown tca kernel {kernel!r}: choose one of {', '.join(KERNELS)}")
        self.n_components, self.mu, self.kernel = n_components, mu, kernel

    def options(self) -> dict[str, object]:
        return {"n_components": self.n_components, "mu": self.mu, "kernel": self.kernel}

    def _gram(self, a: Tensor, b: Tensor) -> Tensor:
        if self.kernel == "linear":
            return a @ b.T
        return torch.exp(-torch.cdist(a, b).square() / (2 * self.sigma2))

    def fit(self, source: Tensor, target: Tensor) -> TCA:
        """Learn the transfer components from source and target samples (rows, flattened)."""
        x = torch.cat([source.flatten(1), target.flatten(1)]).double()
        ns, n = len(source), len(source) + len(target)
        if min(ns, n - ns) < 1 or self.n_components > n:
            raise ConfigError(f"tca needs samples from both domains and n_components <= {n}, "
                              f"got {ns} source, {n - ns} target and n_components {self.n_components}")
        if self.kernel == "rbf":
            self.sigma2 = float(squared_distances(x).sum() / (n * n - n)) or 1.0
        k = self._gram(x, x)
        e = torch.cat([x.new_full((ns,), 1 / ns), x.new_full((n - ns,), -1 / (n - ns))])
        ke = k @ e
        a = k @ (k - k.mean(0, keepdim=True))  # K H K (K is symmetric)
        a = (a + a.T) / 2
        b = torch.outer(ke, ke) + self.mu * torch.eye(n, dtype=x.dtype)  # K L K + μI
        c = torch.linalg.cholesky(b)
        m = torch.linalg.solve_triangular(c, torch.linalg.solve_triangular(c, a, upper=False).T, upper=False)
        values, vectors = torch.linalg.eigh((m + m.T) / 2)
        top = values.argsort(descending=True)[: self.n_components]
        self.eigenvalues = values[top]
        self.components = torch.linalg.solve_triangular(c.T, vectors[:, top], upper=True)
        self.x = x
        return self

    def transform(self, x: Tensor, chunk: int = 4096) -> Tensor:
        """The embedding k(x, fitted sample) W of samples x (rows), in x's float dtype."""
        if not hasattr(self, "components"):
            raise ConfigError("tca is not fitted: call fit(source, target) first")
        flat = x.flatten(1)
        if flat.shape[1] != self.x.shape[1]:
            raise ConfigError(f"tca was fitted on {self.x.shape[1]} features, got {flat.shape[1]}")
        dtype = x.dtype if x.dtype.is_floating_point else torch.float32
        parts = [self._gram(flat[i : i + chunk].double(), self.x) @ self.components for i in range(0, len(flat), chunk)]
        return torch.cat(parts).to(dtype)
