"""Continual-learning strategies: one file per method, all registered by CLI name."""

from __future__ import annotations

from ..errors import ConfigError
from ..registry import Registry
from .agem import AGEM
from .base import Compose, Strategy, hyper_parameters, overrides, supported_scenarios
from .cumulative import Cumulative
from .der import DER, DERpp
from .er_ace import ERACE
from .ewc import EWC
from .gdumb import GDumb
from .gem import GEM
from .hat import HAT
from .icarl import ICaRL
from .joint import Joint
from .l2 import L2
from .la_maml import LaMAML
from .lwf import LwF
from .mas import MAS
from .mer import MER
from .mir import MIR
from .naive import Naive
from .ncm import NCM
from .oml import OML
from .online_ewc import OnlineEWC
from .packnet import PackNet
from .pnn import PNN
from .replay import Replay
from .si import SI
from .slda import SLDA

STRATEGIES = Registry("strategy")
for _cls in (Naive, Joint, Cumulative, EWC, OnlineEWC, SI, MAS, L2, LwF, PNN, PackNet, HAT,
             Replay, MIR, GEM, AGEM, DER, DERpp, ERACE, ICaRL, GDumb, SLDA, NCM, LaMAML, MER, OML):
    STRATEGIES.register(_cls.name, _cls.summary)(_cls)



def check_scenario(strategy: Strategy, scenario: str, scheduled: bool = False) -> None:
    """Raise ConfigError unless every part of `strategy` supports `scenario`, naming the alternatives. In a
    task-free stream, `scheduled` (consolidation every N samples) admits the parts that consolidate on a
    schedule (`Strategy.scheduled`)."""
    supported = supported_scenarios(strategy)
    if scenario in supported:
        return
    if scenario == "task-free" and all("task-free" in type(s).scenarios or (scheduled and s.scheduled)
                                       for s in strategy.children()):
        return
    name = "+".join(s.name for s in strategy.children())
    able = [e.name for e in STRATEGIES if scenario in getattr(e.factory, "scenarios", ())]
    if scenario == "task-free":
        timed = [e.name for e in STRATEGIES if getattr(e.factory, "scheduled", False)]
        raise ConfigError(f"`strategy` {name} needs task boundaries, which a task-free stream does not give: use one "
                          f"of {', '.join(able)}, or one of {', '.join(timed)} with `consolidate_every` N (it then "
                          "consolidates every N samples)", "strategy")
    why = " (it needs the task id at test time)" if supported == {"task"} else ""
    instead = f"use `scenario` {' or '.join(sorted(supported))}, or" if supported else "use"
    raise ConfigError(f"`strategy` {name} does not support {scenario} streams{why}: {instead} one of "
                      f"{', '.join(able)}", "strategy")


__all__ = [
    "STRATEGIES", "Compose", "Cumulative", "EWC", "HAT", "Joint", "L2", "LwF", "MAS", "Naive", "OnlineEWC", "PNN",
    "PackNet", "SI", "Strategy", "hyper_parameters", "overrides", "check_scenario", "supported_scenarios",
    "AGEM", "DER", "DERpp", "ERACE", "GDumb", "GEM", "ICaRL", "Replay", "NCM", "SLDA", "LaMAML", "MER", "MIR", "OML",
]
