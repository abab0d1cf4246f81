"""Models: a backbone + linear head contract (`Net`), factories, and the `MODELS` registry."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .cnn import cnn
from .conv4 import conv4
from .heads import CL2N, HEADS, GrowingHead, grow_heads, with_head
from .mlp import mlp
from .net import Backbone, Net, extract, forward_all, truncated
from .resnet import ResNet18, resnet18
from .saved import info, load, load_backbone, save

__all__ = ["CL2N", "HEADS", "MODELS", "Backbone", "GrowingHead", "Net", "ResNet18", "build", "cnn", "conv4", "extract",
           "forward_all", "grow_heads", "info", "load", "load_backbone", "mlp", "resnet18", "save", "truncated",
           "with_head"]

MODELS = Registry("model")


@MODELS.register("mlp", "fully connected ReLU network, hidden sizes from --hidden (default 400,400)")
def _mlp(input_shape: tuple[int, ...], n_outputs: int, hidden: Sequence[int] = (400, 400)) -> nn.Module:
    return mlp(math.prod(input_shape), n_outputs, hidden)


@MODELS.register("cnn", "small CNN: 2 conv blocks for (C,H,W) images, MNIST-1D 3-layer Conv1d for (C,L)")
def _cnn(input_shape: tuple[int, ...], n_outputs: int, hidden: Sequence[int] = (400, 400)) -> nn.Module:
    return cnn(tuple(input_shape), n_outputs)


@MODELS.register("conv4", "Conv-4 few-shot backbone: 4 x (conv 3x3, 32 filters as MAML's, BatchNorm, ReLU, pool 2)")
def _conv4(input_shape: tuple[int, ...], n_outputs: int, hidden: Sequence[int] = (400, 400)) -> nn.Module:
    return conv4(tuple(input_shape), n_outputs, channels=32)


@MODELS.register("resnet18", "ResNet-18 (He et al. 2016), CIFAR-style stem, for (C,H,W) images")
def _resnet18(input_shape: tuple[int, ...], n_outputs: int, hidden: Sequence[int] = (400, 400)) -> nn.Module:
    if len(input_shape) != 3:
        raise ConfigError(f"resnet18 needs (C, H, W) image inputs, got input_shape {tuple(input_shape)}")
    return resnet18(n_outputs, in_channels=input_shape[0], small_input=True)


def build(
    name: str, input_shape: tuple[int, ...], n_outputs: int, hidden: Sequence[int] = (400, 400)
) -> nn.Module:
    """Build the model registered as `name`; raises ConfigError for an unknown name."""
    return MODELS.get(name).factory(tuple(input_shape), n_outputs, hidden)
