"""Small convolutional networks for 28x28 / 8x8 grey images and MNIST-1D sequences."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError

from .net import Net, channels_last


def _flat_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Width of `features`' output, from a dry run on one zero input."""
    with torch.no_grad():
        return features(torch.zeros(1, *input_shape)).shape[1]


def cnn(input_shape: tuple[int, ...], out_features: int, channels: Sequence[int] | None = None) -> Net:
    """A CNN for (C, H, W) images or (C, L) sequences.

    (C, H, W): per entry of `channels` (default (32, 64)) Conv2d 3x3 pad 1, ReLU and
    MaxPool2d(2) (skipped once the map would shrink below 2x2), then Flatten, Linear(128), ReLU.
    (C, L): the MNIST-1D reference model (Greydanus 2020): Conv1d(k=5, stride 2, pad 1) with
    ReLU per entry of `channels` (default (25, 25, 25)), then Flatten.
    Inputs may also arrive flattened, (N, prod(input_shape)). For transfer the image CNN's features are
    its convolutional trunk, below the Linear(128) + ReLU (`transfer_cut` 2, as timm's `forward_features`
    returns the conv maps): the 128-d top layer is specific to the source classes (Yosinski et al. 2014).
    The cut was checked on held-out tasks, 1-shot 28x28 digits (`digits28`) through the Fashion-MNIST 0-4
    CNN, never on the Fashion-MNIST target (`benchmarks/transfer.py select --cuts 0,2,6`, BENCHMARKS.md): 0
    (the 128-d layer) is far worse there, 6 (the first conv block) level with 2 (within two standard errors).
    """
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) not in (2, 3) or min(input_shape) < 1:
        raise ConfigError(
            f"cnn needs input_shape (C, H, W) for images or (C, L) for sequences, got {input_shape}"
        )
    # Flatten + Unflatten accepts both (N, *input_shape) and flattened (N, prod) inputs.
    layers: list[nn.Module] = [nn.Flatten(), nn.Unflatten(1, input_shape)]
    in_ch = input_shape[0]
    if len(input_shape) == 3:
        size = min(input_shape[1:])
        for ch in channels if channels is not None else (32, 64):
            layers += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.ReLU()]
            if size // 2 >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            in_ch = ch
        layers.append(nn.Flatten())
        flat = _flat_size(nn.Sequential(*layers), input_shape)
        layers += [nn.Linear(flat, 128), nn.ReLU()]
        width, cut = 128, 2
    else:
        for ch in channels if channels is not None else (25, 25, 25):
            layers += [nn.Conv1d(in_ch, ch, 5, stride=2, padding=1), nn.ReLU()]
            in_ch = ch
        layers.append(nn.Flatten())
        try:
            width = _flat_size(nn.Sequential(*layers), input_shape)
        except RuntimeError as e:
            raise ConfigError(f"sequence length {input_shape[1]} is too short for cnn: {e}") from None
        cut = 0
    return channels_last(Net(nn.Sequential(*layers), nn.Linear(width, out_features), cut))
