"""LP-FT: linear probing, then fine-tuning (Kumar, Raghunathan, Jones, Ma & Liang 2022, "Fine-Tuning can
Distort Pretrained Features and Underperform Out-of-Distribution", ICLR).

Fine-tuning every layer under a new, random head sends large gradients from that head into the
pretrained features and distorts them before the head is any good; with a handful of labelled samples
this can lose to training from scratch. LP-FT first fits the head alone on the frozen features (stage 1,
here the logistic probe at the model's transfer layer, `features.feature_extraction`, whose head then
replaces the layers above that layer), then fine-tunes every layer from that head (stage 2) at a smaller
learning rate, `lr_scale` times the Trainer's (default 0.1).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..data import Dataset
from ..errors import ConfigError
from ..training import Result
from .features import feature_extraction
from .finetune import finetune


def lp_ft(model: nn.Module, data: Dataset, *, probe: str = "logistic", C: float | None = None, cut: int | None = None,
          lr_scale: float = 0.1, **trainer_options: Any) -> Result:
    """Probe, then fine-tune `model` (in place) on `data`: the logistic probe (`probe` "logistic", or "l2n" on
    L2-normalised features; inverse L2 strength `C`, None: the probe's default) on its features at its
    transfer layer (or `cut`), then every layer trained from that head at `lr_scale` x lr.
    `trainer_options` go to `Trainer` (epochs, lr, batch_size, seed...); the Result's matrix holds the test
    accuracy after stage 2."""
    if not 0 < lr_scale <= 1:
        raise ConfigError(f"lr_scale must be in (0, 1] (stage 2 runs at lr_scale x lr), got {lr_scale}")
    if probe not in ("logistic", "l2n"):
        raise ConfigError(f"LP-FT's probe is 'logistic' or 'l2n', got {probe!r}")
    feature_extraction(model, data, head=probe, C=C, cut=cut)
    model.freeze_backbone(False)
    lr = float(trainer_options.pop("lr", 1e-3))
    return finetune(model, data, head=model.head, lr=lr * lr_scale, **trainer_options)
