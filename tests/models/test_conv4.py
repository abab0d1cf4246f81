import pytest
import torch
from torch import nn
from torch.func import replace_all_batch_norm_modules_

from lifelong.errors import ConfigError
from lifelong.models import build, conv4


def _blocks(model: nn.Module) -> list[type]:
    return [type(m) for m in model.features if not isinstance(m, (nn.Flatten, nn.Unflatten))]


def test_conv4_is_four_conv_bn_relu_pool_blocks_down_to_one_pixel():
    model = conv4((1, 28, 28), 5)
    assert _blocks(model) == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d] * 4
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == \
        [(1, 64, (3, 3), (1, 1))] + [(64, 64, (3, 3), (1, 1))] * 3
    assert model.head.in_features == 64  # 28 -> 14 -> 7 -> 3 -> 1
    x = torch.randn(6, 1, 28, 28)
    assert model(x).shape == (6, 5) and torch.equal(model(x.flatten(1)), model(x))  # flattened inputs too


def test_conv4_skips_pooling_below_one_pixel_and_registry_uses_32_filters():
    model = build("conv4", (1, 8, 8), 3)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 3  # 8 -> 4 -> 2 -> 1, then none
    assert model.head.in_features == 32 and model(torch.randn(2, 64)).shape == (2, 3)
    assert conv4((3, 20, 12), 2, channels=8).head.in_features == 8 * 2 * 1  # 20x12 -> 10x6 -> 5x3 -> 2x1, stop


@pytest.mark.parametrize("shape", [(1, 40), (784,), (1, 0, 28)])
def test_conv4_refuses_non_images(shape):
    with pytest.raises(ConfigError, match="conv4 needs"):
        conv4(shape, 5)


def test_batch_statistics_batchnorm_normalises_each_call_on_its_own():
    torch.manual_seed(0)
    model = conv4((1, 8, 8), 2, channels=4)
    replace_all_batch_norm_modules_(model)
    x = torch.randn(5, 1, 8, 8)
    model.eval()  # no running statistics to switch to: eval mode still uses the batch's
    first = model.features[:5](x)  # Flatten, Unflatten, conv, BN, ReLU
    bn_in = model.features[:3](x)
    expected = torch.relu((bn_in - bn_in.mean((0, 2, 3), keepdim=True))
                          / (bn_in.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt())
    assert torch.allclose(first, expected, atol=1e-5)  # BN weight 1, bias 0 at initialisation
