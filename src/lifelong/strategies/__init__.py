"""Continual-learning strategies: one file per method, all registered by CLI name."""

from __future__ import annotations

from ..registry import Registry
from .base import Compose, Strategy, hyper_parameters, overrides
from .cumulative import Cumulative
from .ewc import EWC
from .joint import Joint
from .l2 import L2
from .lwf import LwF
from .mas import MAS
from .naive import Naive
from .online_ewc import OnlineEWC
from .si import SI

STRATEGIES = Registry("strategy")
for _cls in (Naive, Joint, Cumulative, EWC, OnlineEWC, SI, MAS, L2, LwF):
    STRATEGIES.register(_cls.name, _cls.summary)(_cls)

__all__ = [
    "STRATEGIES", "Compose", "Cumulative", "EWC", "Joint", "L2", "LwF", "MAS", "Naive", "OnlineEWC", "SI", "Strategy",
    "hyper_parameters", "overrides",
]
