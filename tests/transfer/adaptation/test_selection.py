import math
import re
import sys

import pytest
import torch

from lifelong.data import Dataset, Split
from lifelong.errors import ConfigError
from lifelong.extras import MissingExtra
from lifelong.experiment import AdaptConfig, grid_scores, run_adaptation
from lifelong.experiment import adapt as adapt_module
from lifelong.transfer.adaptation import GRIDS, SCORERS, SelectionData, density_ratio, selection

from .conftest import small_model as model


class Rows(torch.nn.Module):
    """A classifier that returns the row of `logits` that its one feature indexes."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, f):
        return self.logits[f[:, 0].long()]


def fixed_model(logits):
    """A model whose classifier returns `logits` row for row, whatever the input (features = row index)."""
    net = model()
    net.forward_features = lambda x: torch.arange(len(x), dtype=torch.float64)[:, None]  # noqa: E731
    net.head = Rows(logits)
    return net


def test_density_ratio_of_two_gaussians_is_the_exact_one():
    """N(1, 1) over N(0, 1) is exp(x − 1/2), a logistic model: the classifier's estimate recovers it."""
    g = torch.Generator().manual_seed(0)
    source, target = torch.randn(6000, 1, generator=g), torch.randn(3000, 1, generator=g) + 1
    at = torch.tensor([[-1.0], [0.0], [0.5], [1.5]])
    w = density_ratio(source, target, at)
    assert torch.allclose(w, torch.exp(at[:, 0].double() - 0.5), rtol=0.15)


def test_the_density_ratio_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if not installed
    with pytest.raises(MissingExtra, match=re.escape("pip install 'lifelong[sklearn]'")):
        density_ratio(torch.zeros(4, 1), torch.ones(4, 1), torch.zeros(1, 1))


def test_entropy_and_snd_follow_their_equations(monkeypatch):
    logits = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    monkeypatch.setattr(selection, "_probabilities", lambda m, x: logits[: len(x)].softmax(1))
    data = SelectionData(Split(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)), torch.zeros(2, 1),
                         torch.zeros(7, 1))
    p = logits.softmax(1)
    assert math.isclose(SCORERS.get("entropy").factory(None, data), (p * p.log()).sum(1).mean().item())
    q = p / p.norm(dim=1, keepdim=True)
    expected = 0.0
    for i in range(7):  # Saito et al. eq. 1-3: softmax over j != i of q_iᵀq_j / τ, then its entropy
        s = torch.tensor([q[i] @ q[j] / 0.05 for j in range(7) if j != i]).softmax(0)
        expected -= (s * s.log()).sum().item() / 7
    assert math.isclose(SCORERS.get("snd").factory(None, data), expected, rel_tol=1e-9)


def test_iwcv_and_dev_weight_the_held_out_source_by_the_density_ratio(monkeypatch):
    y = torch.tensor([0, 1, 0, 1])
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # right, wrong, wrong, right
    w = torch.tensor([3.0, 1.0, 0.5, 0.5], dtype=torch.float64)
    monkeypatch.setattr(selection, "log_density_ratio", lambda s, t, at: w[: len(at)].log())
    net = fixed_model(logits)
    data = SelectionData(Split(torch.zeros(4, 1), y), torch.zeros(5, 1), torch.zeros(6, 1))
    assert math.isclose(SCORERS.get("source-acc").factory(net, data), 0.5)
    assert math.isclose(SCORERS.get("iwcv").factory(net, data), (3.0 + 0.5) / 5.0)
    loss = torch.nn.functional.cross_entropy(logits, y, reduction="none").double()
    big_l = w * loss  # You et al. Algorithm 1: L = w ℓ, η = −Cov(L, w) / Var(w), risk = mean L + η mean w − η
    eta = -((big_l - big_l.mean()) * (w - w.mean())).sum() / 3 / w.var()
    assert math.isclose(SCORERS.get("dev").factory(net, data), -(big_l.mean() + eta * w.mean() - eta).item(),
                        rel_tol=1e-9)


def test_select_picks_the_grid_weight_with_the_best_score_and_never_reads_target_labels(pair, monkeypatch):
    monkeypatch.setattr(adapt_module, "domain_pair", lambda source, target: pair)
    monkeypatch.setitem(GRIDS, "coral", (0.0, 3000.0))
    config = AdaptConfig(method=["coral"], hidden=[32], epochs=1, select="dev")
    source, target = pair
    grid = grid_scores(config, "coral", source, target, 0, ["dev", "snd"])
    assert [g["lam"] for g in grid] == [0.0, 3000.0] and grid[0]["scores"] != grid[1]["scores"]
    shuffled = Dataset("t", Split(target.train.x, target.train.y[torch.randperm(len(target.train))]),
                       target.test, target.class_names, target.input_shape)
    assert [g["scores"] for g in grid_scores(config, "coral", source, shuffled, 0, ["dev", "snd"])] == [
        g["scores"] for g in grid]
    (record,) = run_adaptation(config)
    best = max(grid, key=lambda g: g["scores"]["dev"])
    assert record["options"]["lam"] == best["lam"] and record["acc"] == best["acc"]


def test_unknown_scorer_is_refused():
    with pytest.raises(ConfigError, match="unknown selection scorer 'devv'"):
        AdaptConfig(select="devv").validate()


def test_iwcv_survives_ratios_beyond_float64_and_broken_scores_rank_last(monkeypatch):
    """Domains a classifier separates perfectly give log-ratios of hundreds: IWCV normalises in log space."""
    y, logits = torch.tensor([0, 1, 0]), torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 1.0]])  # right, wrong, wrong
    monkeypatch.setattr(selection, "log_density_ratio",
                        lambda s, t, at: torch.tensor([1000.0, 1000.0 - math.log(3), 0.0], dtype=torch.float64))
    data = SelectionData(Split(torch.zeros(3, 1), y), torch.zeros(5, 1), torch.zeros(6, 1))
    assert math.isclose(SCORERS.get("iwcv").factory(fixed_model(logits), data), 0.75)
    entries = [{"lam": 0.1, "s": math.nan}, {"lam": 0.3, "s": 2.0}, {"lam": 1.0, "s": 2.0}, {"lam": 3.0, "s": 1.0}]
    assert [e["lam"] for e in selection.ranked(entries, lambda e: e["s"])] == [0.3, 1.0, 3.0, 0.1]
