"""Models: timm's model contract (`net`), our backbones + linear heads (`Net`), models of timm and
torchvision (`external`), factories, and the `MODELS` registry."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError
from ..registry import Entry, Registry
from .cnn import cnn
from .conv4 import conv4
from .external import LIBRARIES, External, SplitClassifier, resolve
from .heads import CL2N, HEADS, GrowingHead, grow_heads, with_head
from .mlp import mlp
from .net import (CONTRACT, Backbone, Contract, HasClassifier, Net, as_backbone, check_contract, classifier_name,
                  contract_error, extract, forward_all, no_classifier, param_groups, pre_logits, set_classifier,
                  truncated)
from .resnet import ResNet18, resnet18
from .saved import info, load, load_backbone, save

__all__ = ["CL2N", "CONTRACT", "HEADS", "LIBRARIES", "MODELS", "Backbone", "Contract", "External", "GrowingHead",
           "HasClassifier", "Net", "ResNet18", "SplitClassifier", "as_backbone", "build", "check_contract",
           "classifier_name", "cnn", "contract_error", "conv4", "extract", "forward_all", "grow_heads", "info", "load",
           "load_backbone", "mlp", "no_classifier", "param_groups", "pre_logits", "resnet18", "save", "set_classifier",
           "truncated", "with_head"]


class ModelRegistry(Registry):
    """The registry of our models; `get` also takes `timm:<name>` and `torchvision:<name>` (see `external`),
    and refuses them with the extra to install when the library is missing."""

    def get(self, name: str) -> Entry:
        found = resolve(name)
        if found is None:
            return super().get(name)
        make, description = found

        def factory(input_shape: tuple[int, ...], n_outputs: int, hidden: Sequence[int] = ()) -> nn.Module:
            return make(tuple(input_shape), n_outputs)

        return Entry(name, factory, description)


MODELS = ModelRegistry("model")


@MODELS.register("mlp", "fully connected ReLU network, hidden sizes from `hidden` (default 400,400)")
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
        raise ConfigError(f"resnet18 needs (C, H, W) image inputs, got input_shape {tuple(input_shape)}: use "
                          "model='mlp' or 'cnn'", "model")
    return resnet18(n_outputs, in_channels=input_shape[0], small_input=True)


@MODELS.register("minilm", "all-MiniLM-L6-v2 sentence encoder (6 layers, 384 features, mean-pooled), for token ids "
                 "(L,); extra `text`")
def _minilm(input_shape: tuple[int, ...], n_outputs: int, hidden: Sequence[int] = (400, 400)) -> nn.Module:
    from .text import MiniLM, token_length  # transformers only where a MiniLM is built

    length = token_length(input_shape, "minilm")
    model = MiniLM(n_outputs)
    if length > model.max_length:
        raise ConfigError(f"minilm reads at most {model.max_length} tokens, got max_length {length}", "max_length")
    return model


@MODELS.register("bow", "bag of words: mean token embedding + `hidden` ReLU MLP, trained from scratch, for token ids "
                 "(L,); extra `text`")
def _bow(input_shape: tuple[int, ...], n_outputs: int, hidden: Sequence[int] = (400, 400)) -> nn.Module:
    from .text import BagOfWords, token_length

    token_length(input_shape, "bow")
    return BagOfWords(n_outputs, hidden)


def build(
    name: str, input_shape: tuple[int, ...], n_outputs: int, hidden: Sequence[int] = (400, 400)
) -> nn.Module:
    """Build the model registered as `name`, or a timm / torchvision one (`timm:<name>`, `torchvision:<name>`,
    optionally `@FILE.safetensors` for weights); raises ConfigError for an unknown name."""
    return MODELS.get(name).factory(tuple(input_shape), n_outputs, hidden)
