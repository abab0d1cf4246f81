"""Stand-ins for timm and torchvision: tiny modules shaped like theirs (not lifelong's), installed as fake
`timm` / `torchvision` packages, so that the path every real model of theirs takes is tested here too."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn


class TinyTimm(nn.Module):
    """Shaped like a timm model: unpooled `forward_features`, pooling in `forward_head`, the classifier `fc`."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width: int = 6) -> None:
        super().__init__()
        self.num_classes, self.num_features = num_classes, width
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(4, width, 3, stride=2, padding=1), nn.ReLU())
        self.drop_rate = 0.0
        self.fc = nn.Linear(width, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class TinyTorchvision(nn.Module):
    """Shaped like a torchvision ResNet: no contract, pooling inside `forward`, the classifier `fc` last."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 5, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(5)
        self.layer1 = nn.Sequential(nn.Conv2d(5, 7, 3, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _create_model(name: str, pretrained: bool = False, num_classes: int = 1000, **options: object) -> nn.Module:
    assert not pretrained  # lifelong never asks for a download
    if name != "tiny":
        raise RuntimeError(f"Unknown model ({name})")
    return TinyTimm(num_classes, **options)  # type: ignore[arg-type]


def _get_model(name: str, weights: object = None, num_classes: int = 1000) -> nn.Module:
    assert weights is None
    if name != "tinyres":
        raise ValueError(f"Unknown model {name}")
    return TinyTorchvision(num_classes)


@pytest.fixture
def fake_timm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("timm")
    module.create_model = _create_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "timm", module)
    return module


@pytest.fixture
def fake_torchvision(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    package, models = types.ModuleType("torchvision"), types.ModuleType("torchvision.models")
    models.get_model = _get_model  # type: ignore[attr-defined]
    package.models = models  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    return models
