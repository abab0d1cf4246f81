"""ResNet-18 (He et al. 2016, "Deep Residual Learning for Image Recognition").

Parameter and buffer names match torchvision's `resnet18`, so its ImageNet state_dict
loads with strict=True when `small_input=False`. No torchvision import is needed.
"""

from __future__ import annotations

import torch
from torch import nn

from .net import Backbone, channels_last


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(Backbone):
    """ResNet-18 with torchvision's module names and initialisation (the head is `fc`).

    `small_input=True` uses a 3x3 stride-1 stem without max-pool (CIFAR-style, for 28x28 or
    32x32 images); `small_input=False` uses the ImageNet stem (7x7 stride-2 conv, 3x3 max-pool).
    """

    head_name = "fc"
    num_features = 512
    layer1: nn.Sequential  # the four stages, set in __init__ under torchvision's names
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, num_classes: int, in_channels: int = 3, small_input: bool = True) -> None:
        super().__init__()
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        widths, in_ch = (64, 128, 256, 512), 64
        for k, width in enumerate(widths, start=1):
            stride = 1 if k == 1 else 2
            blocks = nn.Sequential(BasicBlock(in_ch, width, stride), BasicBlock(width, width))
            setattr(self, f"layer{k}", blocks)
            in_ch = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def head(self) -> nn.Linear:
        """The classifier, `fc`."""
        return self.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature maps, (N, 512, H', W'), before pooling (as timm's)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling to 512-d features, then `fc` (the features with `pre_logits`)."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Groups "stem" (conv1, bn1), "layer1".."layer4" and "head" (fc), input to output."""
        groups = {"stem": [*self.conv1.parameters(), *self.bn1.parameters()]}
        for k in range(1, 5):
            groups[f"layer{k}"] = list(getattr(self, f"layer{k}").parameters())
        groups["head"] = list(self.fc.parameters())
        return groups


def resnet18(num_classes: int, in_channels: int = 3, small_input: bool = True) -> ResNet18:
    """ResNet-18 (He et al. 2016); see `ResNet18`."""
    return channels_last(ResNet18(num_classes, in_channels, small_input))
