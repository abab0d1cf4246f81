"""Transfer learning: pretraining, fine-tuning (full, layer-wise learning rates, gradual unfreezing,
L2-SP, LP-FT), feature extraction with cached features, the methods of learning curves, distillation, domain
adaptation. `lifelong transfer`, `adapt` and `pretrain` run them: `lifelong.experiment`."""

from . import adaptation
from ..data.stream import per_class as few_shot  # k labelled samples per class, drawn from a seed
from .curve import TRANSFER_METHODS, fit_method
from .distill import Distill, distill
from .features import Probe, cache, feature_extraction, fit_head
from .finetune import FineTuner, finetune
from .l2sp import L2SP
from .lpft import lp_ft
from .pretrain import pretrain, save_pretrained

__all__ = ["Distill", "adaptation", "distill",
           "TRANSFER_METHODS", "FineTuner", "L2SP", "Probe", "cache", "feature_extraction", "few_shot",
           "finetune", "fit_head", "fit_method", "lp_ft", "pretrain", "save_pretrained"]
