"""Unsupervised domain adaptation: loss modules (MK-MMD, CORAL, gradient reversal, JMMD), the methods
built on them as strategies of the one training loop (DAN, CORAL, DANN, JAN), TCA on features, the
shifted target domains, label-free model selection (`selection`) and the runs behind `lifelong adapt`.
See docs/transfer.md."""

from .run import ADAPTATIONS, RECORD_KEYS, AdaptConfig, adapt, grid_scores, run_adaptation, summary, tca_accuracy
from .base import Adaptation, progressive_weight
from .coral import CORAL, CORALLoss, coral
from .dann import DANN, DomainAdversarialLoss, GradientReversal, grad_reverse
from .domains import DOMAINS, Domain, domain_pair
from .jan import JAN, JMMD, jmmd
from .mmd import DAN, MKMMD, gaussian_gram, mk_mmd, mmd2_from_gram
from .selection import GRIDS, SCORERS, SelectionData, density_ratio
from .tca import TCA

__all__ = [
    "ADAPTATIONS", "RECORD_KEYS", "AdaptConfig", "adapt", "grid_scores", "run_adaptation", "summary", "tca_accuracy",
    "Adaptation", "progressive_weight", "CORAL", "CORALLoss", "coral", "DANN", "DomainAdversarialLoss",
    "GradientReversal", "grad_reverse", "DOMAINS", "Domain", "domain_pair", "JAN", "JMMD", "jmmd", "DAN", "MKMMD",
    "gaussian_gram", "mk_mmd", "mmd2_from_gram", "GRIDS", "SCORERS", "SelectionData", "density_ratio", "TCA",
]
