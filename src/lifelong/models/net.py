"""timm's model contract, and `Net`: a backbone plus a linear head, the common model of `lifelong`.

Every model here follows the contract of timm (PyTorch Image Models), so that timm models, and other
models adapted to it, drop in wherever ours do:
- `forward_features(x)`: the backbone's output, before pooling where the model pools (a ResNet's
  feature maps), else its features;
- `forward_head(x, pre_logits=False)`: from that output to the logits; with `pre_logits=True`, the
  classifier's input (pooled, flattened features: what probes, prototypes and alignment losses use);
- `forward(x) == forward_head(forward_features(x))`;
- `get_classifier()`: the classifier module; `reset_classifier(num_classes)`: a fresh one (0: none,
  `forward` then gives the pre-logits); `num_features`: the width of the classifier's input.
The library's helpers (`pre_logits`, `extract`, `param_groups`, `set_classifier`, `heads.output_layer`,
`heads.with_head`, freezing) rest on these names only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor, nn

from ..data import Features, Split
from ..errors import ConfigError

M = TypeVar("M", bound=nn.Module)
CONTRACT = ("forward_features", "forward_head", "get_classifier", "reset_classifier", "num_features")


@runtime_checkable
class HasClassifier(Protocol):
    """A model that names its classifier (`get_classifier()`), the part of timm's contract that head swaps and
    parameter groups need."""

    def get_classifier(self) -> nn.Module: ...


@runtime_checkable
class Contract(HasClassifier, Protocol):
    """timm's model contract (see above), for type checkers and `isinstance(model, Contract)`."""

    @property
    def num_features(self) -> int: ...

    def forward_features(self, x: Tensor) -> Tensor: ...

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor: ...

    def reset_classifier(self, num_classes: int) -> None: ...


def channels_last(model: M) -> M:
    """`model` with its 4-D weights (2-D convolutions) stored channels-last (NHWC), in place: PyTorch's CPU
    (oneDNN) convolutions then train about 1.5x and evaluate about 1.9x faster on the image CNN here
    (BENCHMARKS.md); values are unchanged, sums may round differently in the last bits. Its
    parameters have no flat `.view(-1)`: index them with masks or `reshape`."""
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's overloads omit it
    return model


def contract_error(model: object, user: str = "") -> ConfigError:
    """The ConfigError for a `model` that does not follow timm's contract, naming what it lacks; `user`: who
    needs it (in the message, e.g. "icarl")."""
    missing = ", ".join(name for name in CONTRACT if not hasattr(model, name))
    needs = f"{user} needs a model of timm's contract: " if user else ""
    return ConfigError(f"{needs}{type(model).__name__} does not follow timm's model contract (it has no {missing}): "
                       "use a lifelong.models network or a timm model", "model")


def check_contract(model: nn.Module, user: str = "") -> None:
    """Refuse a `model` that does not follow timm's contract (`contract_error`)."""
    if not isinstance(model, Contract):
        raise contract_error(model, user)


def as_backbone(model: nn.Module, user: str) -> Backbone:
    """`model` where it is a lifelong model (`Backbone`: head swaps, freezing), else a ConfigError naming `user`."""
    if not isinstance(model, Backbone):
        raise ConfigError(f"{user} needs a lifelong model (lifelong.models.build, or models.External around a "
                          f"timm model), got a {type(model).__name__}", "model")
    return model


def pre_logits(model: nn.Module, x: Tensor) -> Tensor:
    """The classifier's input for `x`: `forward_head(forward_features(x), pre_logits=True)`, (N, D)."""
    features, head = getattr(model, "forward_features", None), getattr(model, "forward_head", None)
    if features is None or head is None:  # (not isinstance(model, Contract): this runs every batch, and is cheaper)
        raise contract_error(model)
    return head(features(x), pre_logits=True)


def no_classifier(model: object) -> ConfigError:
    """The ConfigError for a `model` without `get_classifier()`."""
    return ConfigError(f"{type(model).__name__} has no get_classifier() (timm's name for the classifier): use a "
                       "lifelong.models network or a timm model", "model")


def classifier_name(model: nn.Module) -> str:
    """The dotted name of `model.get_classifier()` among `model`'s modules ("head", "fc", "head.fc"...)."""
    if not isinstance(model, HasClassifier):
        raise no_classifier(model)
    classifier = model.get_classifier()
    name = next((n for n, m in model.named_modules() if m is classifier and n), None)
    if name is None:
        raise ConfigError(f"{type(model).__name__}.get_classifier() is not one of its submodules")
    return name


def set_classifier(model: nn.Module, module: nn.Module) -> None:
    """Put `module` in place of `model.get_classifier()`, wherever that sits in `model`."""
    parent, _, attr = classifier_name(model).rpartition(".")
    setattr(model.get_submodule(parent), attr, module)


def param_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Named parameter groups, input to output, the classifier last as "head", for layer-wise learning
    rates: the model's own `param_groups()` where it has one, else one group per top-level child with
    parameters (in registration order, which is input to output in timm and torchvision), parameters
    held by the model itself first, as "<own>"."""
    own = getattr(model, "param_groups", None)
    if callable(own):
        return own()
    if not isinstance(model, HasClassifier):
        raise no_classifier(model)
    head = list(model.get_classifier().parameters())
    taken = {id(p) for p in head}
    groups = {"<own>": [p for p in model.parameters(recurse=False) if id(p) not in taken]}
    for name, child in model.named_children():
        groups[name] = [p for p in child.parameters() if id(p) not in taken]
    return {k: v for k, v in groups.items() if v} | {"head": head}


class Backbone(nn.Module):
    """The contract's classifier methods, head swaps and freezing, for a model that defines
    `forward_features`, `forward_head` and `num_features` and holds its classifier in `head_name`."""

    head_name = "head"  # the attribute that holds the classifier
    num_features: int
    backbone_frozen = False
    transfer_cut = 0  # modules of `features` below its top whose output transfers best (see `extract`)
    features_cut = 0  # modules dropped from the top of `features` (feature extraction put the head lower)

    def get_classifier(self) -> nn.Module:
        """The classifier (timm's name): the module that maps the pre-logits to the logits."""
        return getattr(self, self.head_name)

    def set_head(self, module: nn.Module) -> None:
        """Put `module` (any map from the pre-logits to logits) in place of the classifier."""
        set_classifier(self, module)

    def reset_classifier(self, num_classes: int) -> None:
        """A freshly initialised Linear(num_features, num_classes) as the classifier (an Identity for 0),
        on the old one's device and dtype."""
        ref = next(self.get_classifier().parameters(), None)
        ref = next(self.parameters()) if ref is None else ref
        head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self.set_head(head.to(device=ref.device, dtype=ref.dtype))

    def reset_head(self, num_classes: int) -> None:
        """`reset_classifier` (the earlier name)."""
        self.reset_classifier(num_classes)

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Stop (or, with False, restart) training everything but the classifier: its parameters take no
        gradient and, while frozen, it stays in eval mode whatever `train()` says (batch-norm statistics
        and dropout fixed), so its state stays bit-identical. A head set later is trainable."""
        self.backbone_frozen = frozen
        head = {id(p) for p in self.get_classifier().parameters()}
        for p in self.parameters():
            if id(p) not in head:
                p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if mode and self.backbone_frozen:
            head = {id(m) for m in self.get_classifier().modules()}
            for m in self.modules():
                if m is not self and id(m) not in head:
                    m.training = False
        return self


@torch.no_grad()
def forward_all(forward: Callable[[Tensor], Tensor], split: Split, device: torch.device, batch_size: int = 256
                ) -> Tensor:
    """`forward` of every input of `split`, in batches of `batch_size` moved to `device`, concatenated
    (no gradient; the caller sets eval mode)."""
    return torch.cat([forward(split.batch(torch.arange(i, min(i + batch_size, len(split))))[0].to(device))
                      for i in range(0, len(split), batch_size)])


@torch.no_grad()
def extract(model: nn.Module, split: Split, batch_size: int = 256, cut: int = 0) -> Features:
    """The pre-logits (`pre_logits`) of every input of `split` (eval mode, in batches, on the model's
    device), with the same labels: features computed once, to train heads on. `cut` > 0 takes them
    `cut` modules lower in a sequential backbone (`features` of a `Net`): for `cnn`, cut=2 skips its last
    Linear + ReLU and gives the convolutional features, which carry over to unlike classes better
    (Yosinski et al. 2014); the model's `transfer_cut` is that default for transfer
    (`transfer.features.cache`). Features are flattened to (N, D) vectors, also when the cut falls below
    the backbone's own Flatten."""
    device = next(model.parameters()).device
    forward: Callable[[Tensor], Tensor] = functools.partial(pre_logits, model)
    if cut:
        body = getattr(model, "features", None)
        if not isinstance(body, nn.Sequential) or not 0 < cut < len(body):
            raise ConfigError(f"cannot cut {cut} layers from this model's backbone: `cut` needs an mlp or cnn "
                              "and fewer layers than it has", "cut")
        forward = truncated(body, cut)
    was_training = model.training
    model.eval()
    try:
        features = forward_all(forward, split, device, batch_size)
    finally:
        model.train(was_training)
    return Features(features, split.y.to(device))


def truncated(body: nn.Sequential, cut: int) -> nn.Sequential:
    """`body` without its top `cut` modules, its output flattened to (N, D) (the modules are shared)."""
    return nn.Sequential(*list(body)[: len(body) - cut], nn.Flatten())


class Net(Backbone):
    """`features` (backbone) followed by a linear `head` (the classifier).

    `forward_features` gives the representation, `forward_head` the logits (the representation itself
    with `pre_logits=True`: nothing pools in between), `reset_classifier` swaps in a fresh classifier for
    transfer learning.
    """

    def __init__(self, features: nn.Module, head: nn.Linear, transfer_cut: int = 0) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.num_features = head.in_features
        self.transfer_cut = transfer_cut

    def forward_features(self, x: Tensor) -> Tensor:
        """The backbone's output, shape (N, num_features)."""
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Logits from features (the features themselves with `pre_logits`)."""
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def truncate(self, cut: int, width: int) -> None:
        """Drop the top `cut` modules of `features` (feature extraction puts the head lower, see `extract`);
        `width`: the width of what is left, the new `num_features`. The head is the caller's to replace."""
        if not isinstance(self.features, nn.Sequential):
            raise ConfigError(f"cannot cut {cut} layers from a {type(self.features).__name__} backbone: `cut` needs "
                              "an mlp or cnn", "cut")
        self.features = truncated(self.features, cut)
        self.transfer_cut, self.features_cut, self.num_features = 0, self.features_cut + cut, width

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups, input to output, for layer-wise learning rates.

        One group per top-level child of `features` that has parameters ("features.<name>"),
        "features" for parameters held by `features` itself, and "head".
        """
        groups: dict[str, list[nn.Parameter]] = {}
        own = list(self.features.parameters(recurse=False))
        if own:
            groups["features"] = own
        for name, child in self.features.named_children():
            params = list(child.parameters())
            if params:
                groups[f"features.{name}"] = params
        groups["head"] = list(self.head.parameters())
        return groups
