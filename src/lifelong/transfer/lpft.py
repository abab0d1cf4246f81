"""LP-FT: linear probing, then fine-tuning (Kumar, Raghunathan, Jones, Ma & Liang 2022, "Fine-Tuning can
Distort Pretrained Features and Underperform Out-of-Distribution", ICLR).

Fine-tuning every layer under a new, random head sends large gradients from that head into the
pretrained features and distorts them before the head is any good; with a handful of labelled samples
this can lose to training from scratch. LP-FT first fits the head alone on the frozen features (stage 1,
here the logistic probe at the model's transfer layer, `features.feature_extraction`, whose head then
replaces the layers above that layer), then fine-tunes every layer from that head (stage 2) at `lr_scale`
times the Trainer's learning rate. The default scale depends on the probe (`LR_SCALE`): it was chosen on held-out
tasks, 1-shot 28x28 digits (`digits28`) through the Fashion-MNIST 0-4 CNN, among 0.03, 0.1, 0.3 and 1: the former
default 0.1 unless another scale's mean paired gain over scratch beats it by more than two standard errors
(`benchmarks/transfer.py select --methods lpft,lpft-l2n --lr-scales 0.03,0.1,0.3,1`, BENCHMARKS.md), never on a
target's test split. The margins there are a fraction of a point.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..data import Dataset
from ..errors import ConfigError
from ..models import as_backbone
from ..training import Result
from .features import feature_extraction
from .finetune import finetune

LR_SCALE = {"logistic": 0.03, "l2n": 0.1}  # stage 2's learning-rate scale per probe, chosen on held-out tasks


def lp_ft(model: nn.Module, data: Dataset, *, probe: str = "logistic", C: float | None = None, cut: int | None = None,
          lr_scale: float | None = None, **trainer_options: Any) -> Result:
    """Probe, then fine-tune `model` (in place) on `data`: the logistic probe (`probe` "logistic", or "l2n" on
    L2-normalised features; inverse L2 strength `C`, None: the probe's default) on its features at its
    transfer layer (or `cut`), then every layer trained from that head at `lr_scale` x lr (None: `LR_SCALE`).
    `trainer_options` go to `Trainer` (epochs, lr, batch_size, seed...); the Result's matrix holds the test
    accuracy after stage 2."""
    if probe not in LR_SCALE:
        raise ConfigError(f"LP-FT's `probe` is 'logistic' or 'l2n', got {probe!r}", "probe")
    lr_scale = LR_SCALE[probe] if lr_scale is None else lr_scale
    if not 0 < lr_scale <= 1:
        raise ConfigError(f"`lr_scale` must be in (0, 1] (stage 2 runs at lr_scale x lr), got {lr_scale}", "lr_scale")
    model = as_backbone(model, "lp_ft")
    feature_extraction(model, data, head=probe, C=C, cut=cut)
    model.freeze_backbone(False)
    lr = float(trainer_options.pop("lr", 1e-3))
    return finetune(model, data, head=model.get_classifier(), lr=lr * lr_scale, **trainer_options)
