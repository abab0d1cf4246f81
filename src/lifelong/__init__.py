"""lifelong: transfer learning and lifelong (continual) learning with PyTorch."""

from . import data, metrics, models, strategies
from . import data as datasets
from . import data as scenarios
from .errors import ConfigError, DataError, LifelongError, TrainingError
from .strategies import Compose, Strategy
from .training import Result, Trainer

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "Compose", "DataError", "LifelongError", "Result", "Strategy", "Trainer", "TrainingError",
    "data", "datasets", "metrics", "models", "scenarios", "strategies", "__version__",
]
