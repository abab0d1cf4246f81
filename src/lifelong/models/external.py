"""Models of other libraries as lifelong models: `timm:<name>` and `torchvision:<name>` in `models.build`.

`External` makes any module that follows timm's contract (see `net`) a lifelong model: inputs reshaped
to the data's (C, H, W) (grey images repeated over the 3 colour channels these models expect), the
classifier found through `get_classifier()`, and the library's head swaps, freezing and layer-wise
parameter groups on top. timm models follow the contract as they are; a torchvision model is first
split at its classifier, the last `nn.Linear` (`fc` of a ResNet, `classifier[-1]` of a VGG or a
MobileNet...), by `SplitClassifier`.

Weights are never downloaded: `timm:<name>@<file>` (or `torchvision:...@<file>`) loads a local
safetensors file of the model's own layout (timm's `model.safetensors`, or a torchvision state dict
saved with `safetensors.torch.save_file`) into everything but a classifier of another shape, which
stays freshly initialised for the data's classes. The extras `timm` and `torchvision` install the
libraries (`pip install 'lifelong[timm]'`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..extras import MissingExtra, need
from .net import Backbone, check_contract, classifier_name, param_groups


class External(Backbone):
    """A module following timm's contract (`model`), as a lifelong model for inputs of `input_shape`;
    `in_channels`: the image channels `model` takes (a grey image is repeated over them)."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], in_channels: int = 3) -> None:
        check_contract(model)
        if len(input_shape) != 3 or input_shape[0] not in (1, in_channels):
            raise ConfigError(f"{type(model).__name__} takes images of {in_channels} channels (or grey ones), got "
                              f"input_shape {tuple(input_shape)}: use model='mlp' or 'cnn'", "model")
        super().__init__()
        self.model: Any = model  # any module of the contract
        self.input_shape, self.in_channels = tuple(input_shape), in_channels

    @property
    def num_features(self) -> int:  # type: ignore[override]
        return int(self.model.num_features)

    @property
    def head(self) -> nn.Module:
        """The classifier."""
        return self.model.get_classifier()

    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

    def forward_features(self, x: Tensor) -> Tensor:
        """The wrapped model's `forward_features` of `x` as (N, C, H, W) images, grey ones repeated over
        the model's colour channels."""
        x = x.reshape(len(x), *self.input_shape)
        if self.input_shape[0] != self.in_channels:
            x = x.expand(-1, self.in_channels, -1, -1)
        return self.model.forward_features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.model.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """The wrapped model's own `reset_classifier`, its new classifier on the old one's device and dtype."""
        ref = next(self.parameters())
        self.model.reset_classifier(num_classes)
        self.model.get_classifier().to(device=ref.device, dtype=ref.dtype)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The wrapped model's top-level children, input to output, the classifier last (see `net.param_groups`)."""
        return param_groups(self.model)


class SplitClassifier(nn.Module):
    """timm's contract for a model whose last `nn.Linear` is its classifier (torchvision's): the model with
    that layer replaced by an Identity gives the pre-logits (`forward_features`), the layer the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        name = _last_linear(model)
        fc = model.get_submodule(name)
        assert isinstance(fc, nn.Linear)
        self.fc: nn.Module = fc
        self.num_features = fc.in_features
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, nn.Identity())
        self.body = model

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """The pre-logits (a torchvision model pools inside its `forward`, so they are the features)."""
        return self.body(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _last_linear(model: nn.Module) -> str:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ConfigError(f"{type(model).__name__} has no linear classifier to split the model at", "model")
    return names[-1]


def load_weights(model: nn.Module, path: str, classifier: str) -> None:
    """Load the safetensors file `path` into `model` (strict names), except the tensors of the module
    `classifier` (a dotted name) where their shapes differ: that classifier stays as initialised."""
    from safetensors.torch import load_file

    if Path(path).suffix != ".safetensors":
        raise ConfigError(f"model weights are read from .safetensors files (never unpickled), got {path}: convert a "
                          ".pth with safetensors.torch.save_file(torch.load(f, weights_only=True), ...)", "model")
    try:
        state = load_file(path)
    except (OSError, RuntimeError) as err:  # safetensors reports a bad file as a RuntimeError-like error
        raise ConfigError(f"cannot read the model weights {path}: {err}", "model") from None
    own, prefix = model.state_dict(), classifier + "."
    state = {k: v for k, v in state.items()
             if not (k.startswith(prefix) and (k not in own or own[k].shape != v.shape))}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ConfigError(f"the weights {path} do not fit the model: {str(err).splitlines()[-1].strip()}",
                          "model") from None
    wrong = [k for k in missing if not k.startswith(prefix)] + list(unexpected)
    if wrong:
        raise ConfigError(f"the weights {path} do not fit the model: {len(wrong)} tensors differ, e.g. {wrong[0]!r}",
                          "model")


def timm_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> External:
    """`timm.create_model(arch, num_classes=...)` for `name` = "arch" or "arch@weights.safetensors"."""
    timm = need("timm", "timm")
    arch, _, weights = name.partition("@")
    model = _create(timm.create_model, arch, "timm", pretrained=False, num_classes=num_classes)
    if weights:
        load_weights(model, weights, classifier_name(model))
    return External(model, input_shape, first_conv_channels(model))


def torchvision_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> External:
    """`torchvision.models.get_model(arch, weights=None, num_classes=...)` split at its classifier, for `name` =
    "arch" or "arch@weights.safetensors"."""
    models = need("torchvision.models", "torchvision")
    arch, _, weights = name.partition("@")
    model = _create(models.get_model, arch, "torchvision", weights=None, num_classes=num_classes)
    if weights:
        load_weights(model, weights, _last_linear(model))
    return External(SplitClassifier(model), input_shape, first_conv_channels(model))


def _create(factory: Any, arch: str, library: str, **options: Any) -> nn.Module:
    try:
        model = factory(arch, **options)
    except (RuntimeError, ValueError, KeyError) as err:
        raise ConfigError(f"{library} cannot build the model {arch!r}: {str(err).splitlines()[0]}", "model") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{library}'s {arch!r} is not a torch module", "model")
    return model


def first_conv_channels(model: nn.Module) -> int:
    """Input channels of the first 2-D convolution (3 for models without one)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


LIBRARIES: dict[str, tuple[str, Callable[[str, tuple[int, ...], int], External], str]] = {
    "timm": ("timm", timm_model, "a timm model, e.g. timm:resnet18 (weights: timm:resnet18@FILE.safetensors; "
             "extra `timm`)"),
    "torchvision": ("torchvision.models", torchvision_model, "a torchvision model split at its last Linear, e.g. "
                    "torchvision:resnet18 (weights: @FILE.safetensors; extra `torchvision`)"),
}


def resolve(name: str) -> tuple[Callable[[tuple[int, ...], int], External], str] | None:
    """(factory of (input_shape, num_classes), description) for `name` = "timm:<arch>" or "torchvision:<arch>",
    None for other names; raises MissingExtra (naming the extra) when the library is not installed."""
    library, sep, arch = name.partition(":")
    if not sep or library not in LIBRARIES:
        return None
    if not arch:
        raise ConfigError(f"`model` {name!r} names no {library} model: e.g. {library}:resnet18", "model")
    module, make, description = LIBRARIES[library]
    try:
        need(module, library)
    except MissingExtra:
        raise
    except Exception as err:  # installed but broken: torchvision from PyPI beside another torch build fails so
        raise ConfigError(f"{library} is installed but does not import ({str(err).splitlines()[0]}): install the "
                          f"build that matches torch {torch.__version__}", "model") from None
    return functools.partial(make, arch), description
