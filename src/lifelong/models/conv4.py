"""Conv-4: the standard few-shot backbone.

Vinyals et al. 2016 ("Matching Networks for One Shot Learning"), used unchanged by Snell et al. 2017
(ProtoNets) and Finn et al. 2017 (MAML): 4 blocks of Conv2d 3x3 (padding 1, `channels` filters: 64 in
the papers, 32 for MAML on MiniImagenet), BatchNorm2d, ReLU and 2x2 max-pooling, then Flatten and a
linear head. A 28x28 image ends as 64 x 1 x 1 features (28 -> 14 -> 7 -> 3 -> 1); pooling is skipped
once the map would shrink below 1x1 (8x8 digits: 8 -> 4 -> 2 -> 1 -> 1).
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .net import Net, channels_last


def conv4(input_shape: tuple[int, ...], out_features: int, channels: int = 64, blocks: int = 4) -> Net:
    """Conv-4 for (C, H, W) images; inputs may also arrive flattened, (N, C*H*W)."""
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ConfigError(f"conv4 needs (C, H, W) image inputs, got input_shape {input_shape}: use model='mlp' or "
                          "'cnn'", "model")
    layers: list[nn.Module] = [nn.Flatten(), nn.Unflatten(1, input_shape)]
    in_ch, (h, w) = input_shape[0], input_shape[1:]
    for _ in range(blocks):
        layers += [nn.Conv2d(in_ch, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        in_ch = channels
    layers.append(nn.Flatten())
    return channels_last(Net(nn.Sequential(*layers), nn.Linear(channels * h * w, out_features)))
