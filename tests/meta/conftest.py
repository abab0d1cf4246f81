"""Tiny models and hand-made episodes for the meta-learning tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lifelong.data.episodes import Episodes
from lifelong.meta import Sinusoid, TaskSet
from lifelong.models import Net

from ..data.conftest import tagged_ds, tagged_images  # noqa: F401  (shared fixtures, see there)


def tiny_net(seed: int = 0, dtype: torch.dtype = torch.float64) -> Net:
    """2 -> 3 (tanh) -> 1: smooth, so finite differences are accurate."""
    torch.manual_seed(seed)
    return Net(nn.Sequential(nn.Linear(2, 3), nn.Tanh()), nn.Linear(3, 1)).to(dtype)


def regression_tasks(input_dim: int = 2) -> TaskSet:
    sampler = Sinusoid(5, 5, seed=0)
    return TaskSet("toy", "regression", sampler, sampler, (input_dim,), 1)


@pytest.fixture
def toy_episodes() -> Episodes:
    g = torch.Generator().manual_seed(3)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return Episodes(r(3, 4, 2), r(3, 4, 1), r(3, 6, 2), r(3, 6, 1))
