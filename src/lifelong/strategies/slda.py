"""Deep SLDA: streaming linear discriminant analysis on frozen features.

Hayes & Kanan 2020, "Lifelong Machine Learning with Deep Streaming Linear Discriminant Analysis"
(CVPR Workshops), section 3. A frozen backbone gives z = f(x) (the pre-logits, `models.pre_logits`; use a
pretrained one, `lifelong run --backbone PATH`); the training stream passes once, and sample t of
class k updates the class mean and the shared covariance:

    Delta_t   = t / (t + 1) * (z_t - mu_k)(z_t - mu_k)^T
    Sigma_t+1 = (t Sigma_t + Delta_t) / (t + 1)
    mu_k      = (c_k mu_k + z_t) / (c_k + 1),   c_k = c_k + 1

(mu_k starts at 0, as in the authors' code). Prediction, with the shrunk precision
Lambda = [(1 - eps) Sigma + eps I]^-1:  logit_k = (Lambda mu_k)^T z - 1/2 mu_k^T Lambda mu_k.
A batch is applied at once, exactly as the per-sample recursion above would apply it in order (each
sample's Delta uses its class mean over the samples before it). Hyper-parameter: `shrinkage` eps
(1e-4 in the paper). The paper's optional base-initialisation phase is not implemented: Sigma starts
at 0 and is always updated (the paper's "plastic covariance" variant).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .ncm import NCM

if TYPE_CHECKING:
    from ..data import Stream
    from ..training import Trainer


class SLDA(NCM):
    """Class means and one shared covariance of frozen features, one pass over the stream."""

    name = "slda"
    summary = "deep streaming LDA on frozen features, no gradient training (Hayes & Kanan 2020)"

    def __init__(self, shrinkage: float = 1e-4) -> None:
        if not 0 < shrinkage <= 1:
            raise ConfigError(f"`shrinkage` must be in (0, 1], got {shrinkage}", "slda.shrinkage")
        self.shrinkage = shrinkage

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        self.seen = torch.zeros((), device=trainer.device)  # t, samples so far
        self.sigma: Tensor | None = None
        self.classifier: tuple[Tensor, Tensor] | None = None

    def update(self, z: Tensor, y: Tensor) -> None:
        if self.sigma is None:
            self.sigma = torch.zeros(z.shape[1], z.shape[1], dtype=z.dtype, device=z.device)
        earlier, before = _earlier_same_class(z, y, len(self.counts))
        count = self.counts[y] + before
        total = earlier if self.sums is None else self.sums[y] + earlier
        delta = z - total / count.clamp(min=1)[:, None]  # z_t - mu_k (mu_k = 0 before the class's first sample)
        t = self.seen + torch.arange(len(y), device=z.device, dtype=z.dtype)  # t of each sample
        scatter = (delta * (t / (t + 1))[:, None]).T @ delta  # sum of Delta_t
        n = len(y)
        # (t0 + n) Sigma_new = t0 Sigma + sum Delta_t, unrolling the Sigma update over the batch
        self.sigma = (self.seen * self.sigma + scatter) / (self.seen + n)
        self.seen = self.seen + n
        super().update(z, y)
        self.classifier = None

    def scores(self, z: Tensor) -> Tensor:
        if self.classifier is None:
            assert self.sigma is not None
            eye = torch.eye(len(self.sigma), dtype=self.sigma.dtype, device=self.sigma.device)
            precision = torch.linalg.inv((1 - self.shrinkage) * self.sigma + self.shrinkage * eye)
            w = self.means @ precision  # rows (Lambda mu_k)^T; Lambda is symmetric
            self.classifier = (w, -0.5 * (w * self.means).sum(1))
        w, b = self.classifier
        return z @ w.T + b

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        return out if self.sigma is None else {**out, "sigma": self.sigma, "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.sigma, self.seen, self.classifier = state.get("sigma"), state.get("seen", torch.zeros(())), None


def _earlier_same_class(z: Tensor, y: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """For each sample i: the sum of the features of the samples of its class before it in the batch,
    and how many there are (exclusive prefix sums per class, via a stable sort by class)."""
    order = torch.argsort(y, stable=True)
    zs, ys = z[order], y[order]
    cum = torch.cumsum(zs, 0)
    per_class = torch.bincount(ys, minlength=n_classes)
    start = (torch.cumsum(per_class, 0) - per_class)[ys]  # where each sample's class begins, sorted
    offset = torch.cat([torch.zeros_like(cum[:1]), cum])[start]
    earlier, before = torch.empty_like(z), torch.empty(len(y), dtype=z.dtype, device=z.device)
    earlier[order] = cum - zs - offset
    before[order] = (torch.arange(len(y), device=z.device) - start).to(z.dtype)
    return earlier, before
