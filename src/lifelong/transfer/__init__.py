"""Transfer learning: pretraining, fine-tuning (full, layer-wise learning rates, gradual unfreezing,
L2-SP, LP-FT), feature extraction with cached features, learning curves, distillation, domain adaptation."""

from . import adaptation
from .curve import TRANSFER_METHODS, CurveConfig, few_shot, fit_method, learning_curve, write_curve_dir
from .distill import Distill, distill
from .features import Probe, cache, feature_extraction, fit_head
from .finetune import FineTuner, finetune
from .l2sp import L2SP
from .lpft import lp_ft
from .pretrain import pretrain, save_pretrained

__all__ = ["Distill", "adaptation", "distill",
           "TRANSFER_METHODS", "CurveConfig", "FineTuner", "L2SP", "Probe", "cache", "feature_extraction", "few_shot",
           "finetune", "fit_head", "fit_method", "learning_curve", "lp_ft", "pretrain", "save_pretrained",
           "write_curve_dir"]
