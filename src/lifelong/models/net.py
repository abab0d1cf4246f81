"""A backbone plus a linear head: the common model contract of `lifelong`."""

from __future__ import annotations

import torch
from torch import nn


class Net(nn.Module):
    """`features` (backbone) followed by a linear `head`.

    Strategies rely on the split: `forward_features` gives the representation, `forward_head`
    the logits, and `reset_head` swaps in a fresh classifier for transfer learning.
    """

    def __init__(self, features: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's output, shape (N, head.in_features)."""
        return self.features(x)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        """Logits from features."""
        return self.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def reset_head(self, num_classes: int) -> None:
        """Replace the head by a freshly initialised Linear(in_features, num_classes)."""
        old = self.head
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
