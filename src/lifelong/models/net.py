"""A backbone plus a linear head: the common model contract of `lifelong`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..data import Split
from ..errors import ConfigError


def channels_last(model: nn.Module) -> nn.Module:
    """`model` with its 4-D weights (2-D convolutions) stored channels-last (NHWC), in place: PyTorch's CPU
    (oneDNN) convolutions then train about 1.5x and evaluate about 1.9x faster on the image CNN here
    (BENCHMARKS.md); values are unchanged, sums may round differently in the last bits. Its
    parameters have no flat `.view(-1)`: index them with masks or `reshape`."""
    return model.to(memory_format=torch.channels_last)


class Backbone(nn.Module):
    """Freezing, shared by every model of the contract (`head`, `param_groups`, `forward_features`...)."""

    head: nn.Module
    head_name = "head"  # the attribute that holds the head
    backbone_frozen = False
    transfer_cut = 0  # modules of `features` below its top whose output transfers best (see `extract`)
    features_cut = 0  # modules dropped from the top of `features` (feature extraction put the head lower)

    def set_head(self, module: nn.Module) -> None:
        """Put `module` (any map from features to logits) in place of the head."""
        setattr(self, self.head_name, module)

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Stop (or, with False, restart) training everything but the head: its parameters take no
        gradient and, while frozen, it stays in eval mode whatever `train()` says (batch-norm statistics
        and dropout fixed), so its state stays bit-identical. A head set later is trainable."""
        self.backbone_frozen = frozen
        head = {id(p) for p in self.head.parameters()}
        for p in self.parameters():
            if id(p) not in head:
                p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if mode and self.backbone_frozen:
            for child in self.children():
                if child is not self.head:
                    child.eval()
        return self


@torch.no_grad()
def forward_all(forward: Callable[[Tensor], Tensor], split: Split, device: torch.device, batch_size: int = 256
                ) -> Tensor:
    """`forward` of every input of `split`, in batches of `batch_size` moved to `device`, concatenated
    (no gradient; the caller sets eval mode)."""
    return torch.cat([forward(split.batch(torch.arange(i, min(i + batch_size, len(split))))[0].to(device))
                      for i in range(0, len(split), batch_size)])


@torch.no_grad()
def extract(model: nn.Module, split: Split, batch_size: int = 256, cut: int = 0) -> Split:
    """`model.forward_features` of every input of `split` (eval mode, in batches, on the model's
    device), with the same labels: features computed once, to train heads on. `cut` > 0 takes them
    `cut` modules lower in a sequential backbone: for `cnn`, cut=2 skips its last Linear + ReLU and
    gives the convolutional features, which carry over to unlike classes better (Yosinski et al. 2014);
    the model's `transfer_cut` is that default for transfer (`transfer.features.cache`). Features are
    flattened to (N, D) vectors, also when the cut falls below the backbone's own Flatten."""
    device = next(model.parameters()).device
    forward = model.forward_features
    if cut:
        body = getattr(model, "features", None)
        if not isinstance(body, nn.Sequential) or not 0 < cut < len(body):
            raise ConfigError(f"cannot cut {cut} layers from this model's backbone: --feature-cut needs an mlp or "
                              "cnn and fewer layers than it has")
        forward = truncated(body, cut)
    was_training = model.training
    model.eval()
    try:
        features = forward_all(forward, split, device, batch_size)
    finally:
        model.train(was_training)
    return Split(features, split.y.to(device))


def truncated(body: nn.Sequential, cut: int) -> nn.Sequential:
    """`body` without its top `cut` modules, its output flattened to (N, D) (the modules are shared)."""
    return nn.Sequential(*body[: len(body) - cut], nn.Flatten())


class Net(Backbone):
    """`features` (backbone) followed by a linear `head`.

    Strategies rely on the split: `forward_features` gives the representation, `forward_head`
    the logits, and `reset_head` swaps in a fresh classifier for transfer learning.
    """

    def __init__(self, features: nn.Module, head: nn.Linear, transfer_cut: int = 0) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.transfer_cut = transfer_cut

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's output, shape (N, head.in_features)."""
        return self.features(x)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        """Logits from features."""
        return self.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def reset_head(self, num_classes: int) -> None:
        """Replace the head by a freshly initialised Linear(in_features, num_classes) (in_features: those of
        the head's first Linear, also when the head is a probe or an MLP put in by feature extraction)."""
        old = next(m for m in self.head.modules() if isinstance(m, nn.Linear))
        self.head = nn.Linear(old.in_features, num_classes, bias=old.bias is not None).to(
            device=old.weight.device, dtype=old.weight.dtype
        )

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
