"""lifelong: transfer learning and lifelong (continual) learning with PyTorch.

    import lifelong as ll
    ll.data, ll.models, ll.strategies, ll.transfer, ll.meta   # the subpackages, loaded with `import lifelong`

Optional packages (matplotlib, scikit-learn, mnist1d, pillow) are imported only where used; a missing
one raises `lifelong.extras.MissingExtra`, naming the extra to install.
"""

__version__ = "0.1.0"

from . import data, memory, meta, metrics, models, strategies, transfer
from . import data as datasets
from . import data as scenarios
from .errors import ConfigError, DataError, LifelongError, TrainingError
from .strategies import Compose, Strategy
from .checkpointing import Callback
from .training import Result, Trainer

__all__ = [
    "Callback", "ConfigError", "Compose", "DataError", "LifelongError", "Result", "Strategy", "Trainer",
    "TrainingError", "data", "datasets", "memory", "meta", "metrics", "models", "scenarios", "strategies",
    "transfer", "__version__",
]
