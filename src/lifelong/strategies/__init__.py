"""Continual-learning strategies: one file per method, all registered by CLI name."""

from __future__ import annotations

from ..registry import Registry
from .base import Compose, Strategy, hyper_parameters, overrides
from .cumulative import Cumulative
from .joint import Joint
from .naive import Naive

STRATEGIES = Registry("strategy")
for _cls in (Naive, Joint, Cumulative):
    STRATEGIES.register(_cls.name, _cls.summary)(_cls)

__all__ = ["STRATEGIES", "Compose", "Cumulative", "Joint", "Naive", "Strategy", "hyper_parameters", "overrides"]
