"""Unsupervised model selection for domain adaptation: scores of a trained model that use NO target label.

In unsupervised domain adaptation the target labels do not exist, so a method's weight cannot be chosen
on target accuracy. Each scorer here reads only labelled held-out source samples (`source_valid`, cut
from the source training set and never trained on), source training inputs and unlabelled target
inputs; higher is better for every one of them:

- `source-acc`: accuracy on the held-out source split (ignores the shift).
- `iwcv`: importance-weighted validation (Sugiyama, Krauledat & Müller 2007, "Covariate Shift
  Adaptation by Importance Weighted Cross Validation", JMLR 8, eq. 8 with the 0-1 loss): the held-out
  source accuracy with each sample weighted by the density ratio w(x) = p_T(x) / p_S(x), estimated in
  input space, independent of the model, by a logistic domain classifier, w(x) = (n_S / n_T) ·
  P(target | x) / P(source | x); the weights are self-normalised (Σ w = 1).
- `dev`: deep embedded validation (You, Wang, Long & Jordan 2019, "Towards Accurate Model Selection in
  Deep Unsupervised Domain Adaptation", ICML, Algorithm 1): the same density ratio, estimated on the
  model's features, weights the held-out source cross-entropy, L_i = w_i ℓ_i, and the control variate
  η = −Cov(L, w) / Var(w) gives the risk R = mean(L) + η mean(w) − η (eq. 6); the score is −R.
- `snd`: soft neighbourhood density (Saito, Kim, Teterwak, Sclaroff, Darrell & Saenko 2021, "Tune it
  the Right Way", ICCV, eq. 1-3): the target softmax outputs, L2-normalised, give similarities
  s_ij = p_iᵀp_j / τ (τ = 0.05, self-similarity left out), a softmax over each row, and the score is
  the mean entropy of those rows: high when the target samples sit in dense neighbourhoods.
- `entropy`: minus the mean entropy of the target softmax outputs (Morerio, Cavazza & Murino 2018).

The domain classifiers are scikit-learn logistic regressions (C = 1, the extra `sklearn`) on standardised
inputs or features, fitted on `n_fit` source training and `n_fit` target samples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data import Split
from ...data.stream import Inputs
from ...extras import need
from ...models import HasClassifier, no_classifier
from ..features import extract_sharded
from ...registry import Registry
from .train import tensor_inputs

SCORERS = Registry("selection scorer")
GRIDS: dict[str, tuple[float, ...]] = {  # the weights `lifelong adapt --select` tries, per method
    "dan": (0.1, 0.3, 1.0, 3.0), "coral": (10.0, 100.0, 1000.0, 10000.0),
    "dann": (0.1, 0.3, 1.0, 3.0), "jan": (0.1, 0.3, 1.0, 3.0),
}
SND_TEMPERATURE = 0.05  # Saito et al.'s τ
VALID_FRACTION = 0.1  # of the source training set, held out for selection


@dataclass(frozen=True, eq=False)
class SelectionData:
    """What a scorer may look at: labelled held-out source samples, source training inputs and
    unlabelled target inputs (no target label anywhere)."""

    source_valid: Split
    source_train: Tensor
    target: Tensor

    @functools.cached_property
    def input_weights(self) -> Tensor:
        """IWCV's self-normalised density ratios of the held-out source inputs (computed once): a softmax
        of the log-ratios, w / Σ w without overflow when the domains are far apart."""
        valid = tensor_inputs(self.source_valid)
        log_w = log_density_ratio(self.source_train.flatten(1), self.target.flatten(1), valid.flatten(1))
        return log_w.softmax(0)


def log_density_ratio(source: Tensor, target: Tensor, at: Tensor) -> Tensor:
    """log p_T / p_S at the rows of `at`, from a logistic classifier of source vs target rows:
    log((n_S / n_T) · P(target | x) / P(source | x)) = log(n_S / n_T) + logit, in float64."""
    linear_model, preprocessing = need("sklearn.linear_model", "sklearn"), need("sklearn.preprocessing", "sklearn")
    x = torch.cat([source, target]).double().cpu().numpy()
    domain = [0] * len(source) + [1] * len(target)
    scaler = preprocessing.StandardScaler().fit(x)
    fit = linear_model.LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(x), domain)
    logit = torch.from_numpy(fit.decision_function(scaler.transform(at.double().cpu().numpy())))
    return math.log(len(source) / len(target)) + logit


def density_ratio(source: Tensor, target: Tensor, at: Tensor) -> Tensor:
    """p_T / p_S at the rows of `at` (see `log_density_ratio`); inf where it overflows float64."""
    return log_density_ratio(source, target, at).exp()


def ranked(entries: list[dict[str, Any]], score: Callable[[dict[str, Any]], float]) -> list[dict[str, Any]]:
    """`entries` from the highest score down; a NaN score (an estimator that broke down) counts as the
    lowest, and equal scores keep their order (the grids run from the smallest weight: the milder
    adaptation wins a tie)."""
    return sorted(entries, key=lambda e: math.inf if math.isnan(score(e)) else -score(e))


def _features(model: nn.Module, x: Inputs) -> Tensor:
    """The pre-logits of `x` (the classifier's input, `models.extract`)."""
    return extract_sharded(model, Split(x, torch.zeros(len(x), dtype=torch.long))).x


def _logits(model: nn.Module, features: Tensor) -> Tensor:
    if not isinstance(model, HasClassifier):
        raise no_classifier(model)
    with torch.no_grad():
        return model.get_classifier()(features)


def _probabilities(model: nn.Module, x: Inputs) -> Tensor:
    return _logits(model, _features(model, x)).softmax(1).double()


@SCORERS.register("source-acc", "accuracy on the held-out source split")
def source_accuracy(model: nn.Module, data: SelectionData) -> float:
    p = _probabilities(model, tensor_inputs(data.source_valid))
    return (p.argmax(1).cpu() == data.source_valid.y.cpu()).double().mean().item()


@SCORERS.register("iwcv", "importance-weighted held-out source accuracy (Sugiyama et al. 2007)")
def iwcv(model: nn.Module, data: SelectionData) -> float:
    p = _probabilities(model, tensor_inputs(data.source_valid))
    correct = (p.argmax(1).cpu() == data.source_valid.y.cpu()).double()
    return (data.input_weights * correct).sum().item()


@SCORERS.register("dev", "deep embedded validation: weighted source risk with a control variate (You et al. 2019)")
def dev(model: nn.Module, data: SelectionData) -> float:
    fv = _features(model, tensor_inputs(data.source_valid))
    w = density_ratio(_features(model, data.source_train), _features(model, data.target), fv)
    loss = F.cross_entropy(_logits(model, fv), data.source_valid.y.to(fv.device), reduction="none")
    weighted = w * loss.double().cpu()
    eta = -torch.cov(torch.stack([weighted, w]))[0, 1] / w.var()
    return -(weighted.mean() + eta * w.mean() - eta).item()


@SCORERS.register("snd", "soft neighbourhood density of the target predictions (Saito et al. 2021)")
def snd(model: nn.Module, data: SelectionData) -> float:
    p = F.normalize(_probabilities(model, data.target), dim=1)
    sim = (p @ p.T / SND_TEMPERATURE).fill_diagonal_(-torch.inf)
    return -(sim.softmax(1) * sim.log_softmax(1).nan_to_num(neginf=0.0)).sum(1).mean().item()


@SCORERS.register("entropy", "minus the mean entropy of the target predictions")
def entropy(model: nn.Module, data: SelectionData) -> float:
    p = _probabilities(model, data.target)
    return (p * p.clamp_min(1e-300).log()).sum(1).mean().item()

