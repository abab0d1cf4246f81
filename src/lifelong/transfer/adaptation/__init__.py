"""Unsupervised domain adaptation: loss modules (MK-MMD, CORAL, gradient reversal, JMMD), the methods
built on them as strategies of the one training loop (DAN, CORAL, DANN, JAN), TCA on features, the
shifted target domains, label-free model selection (`selection`) and training with a method (`train`);
`lifelong adapt` runs them: `lifelong.experiment.adapt`.
See docs/transfer.md."""

from .base import Adaptation, progressive_weight
from .coral import CORAL, CORALLoss, coral
from .dann import DANN, DomainAdversarialLoss, GradientReversal, grad_reverse
from .domains import DOMAINS, Domain, domain_pair
from .jan import JAN, JMMD, jmmd
from .mmd import DAN, MKMMD, gaussian_gram, mk_mmd, mmd2_from_gram
from .selection import GRIDS, SCORERS, SelectionData, density_ratio
from .tca import TCA
from .train import ADAPTATIONS, adapt, tca_accuracy

__all__ = [
    "ADAPTATIONS", "adapt", "tca_accuracy",
    "Adaptation", "progressive_weight", "CORAL", "CORALLoss", "coral", "DANN", "DomainAdversarialLoss",
    "GradientReversal", "grad_reverse", "DOMAINS", "Domain", "domain_pair", "JAN", "JMMD", "jmmd", "DAN", "MKMMD",
    "gaussian_gram", "mk_mmd", "mmd2_from_gram", "GRIDS", "SCORERS", "SelectionData", "density_ratio", "TCA",
]
