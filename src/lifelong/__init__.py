"""lifelong: transfer learning and lifelong (continual) learning with PyTorch.

    import lifelong as ll
    ll.data, ll.models, ll.strategies, ll.transfer, ll.meta   # the subpackages, loaded on first use

`import lifelong` itself loads nothing (PEP 562): the command line's `--help`, `list` and `report`
start without PyTorch. Optional packages (matplotlib, scikit-learn, mnist1d, pillow) are imported only
where used; a missing one raises `lifelong.extras.MissingExtra`, naming the extra to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_MODULES = {"data": "data", "datasets": "data", "scenarios": "data", "memory": "memory", "meta": "meta",
            "metrics": "metrics", "models": "models", "strategies": "strategies", "transfer": "transfer"}
_NAMES = {"Callback": "checkpointing", "Compose": "strategies", "ConfigError": "errors", "DataError": "errors",
          "LifelongError": "errors", "Result": "training", "Strategy": "strategies", "Trainer": "training",
          "TrainingError": "errors"}

__all__ = [
    "Callback", "ConfigError", "Compose", "DataError", "LifelongError", "Result", "Strategy", "Trainer",
    "TrainingError", "data", "datasets", "memory", "meta", "metrics", "models", "scenarios", "strategies",
    "transfer", "__version__",
]


def __getattr__(name: str) -> Any:
    """`ll.models`, `ll.Trainer`, ...: the module or name, imported on first use."""
    if name in _MODULES:
        value = importlib.import_module(f".{_MODULES[name]}", __name__)
    elif name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'lifelong' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from . import data, memory, meta, metrics, models, strategies, transfer
    from . import data as datasets
    from . import data as scenarios
    from .checkpointing import Callback
    from .errors import ConfigError, DataError, LifelongError, TrainingError
    from .strategies import Compose, Strategy
    from .training import Result, Trainer
