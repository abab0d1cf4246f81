"""Tests for lifelong.models: shapes, parameter counts, torchvision-compatible names, contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lifelong.errors import ConfigError
from lifelong.models import MODELS, Net, ResNet18, build, cnn, mlp, resnet18


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def torchvision_resnet18_keys() -> set[str]:
    """state_dict keys of torchvision's resnet18, written out from its naming scheme."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight", "fc.weight", "fc.bias", *(f"bn1.{s}" for s in bn)}
    for k in range(1, 5):
        for b in range(2):
            p = f"layer{k}.{b}"
            keys |= {f"{p}.conv1.weight", f"{p}.conv2.weight"}
            keys |= {f"{p}.bn{i}.{s}" for i in (1, 2) for s in bn}
        if k > 1:
            keys |= {f"layer{k}.0.downsample.0.weight", *(f"layer{k}.0.downsample.1.{s}" for s in bn)}
    return keys


# ---------------------------------------------------------------- mlp


def test_mlp_shapes_and_param_count() -> None:
    model = mlp(784, 10)
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    assert model(torch.randn(5, 784)).shape == (5, 10)
    assert n_params(model) == 784 * 400 + 400 + 400 * 400 + 400 + 400 * 10 + 10
    assert mlp(40, 3, hidden=(7,))(torch.randn(2, 40)).shape == (2, 3)


def test_mlp_without_hidden_is_logistic_regression() -> None:
    model = mlp(784, 10, hidden=())
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears == [model.head]
    assert (model.head.in_features, model.head.out_features) == (784, 10)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


# ---------------------------------------------------------------- cnn


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32), (1, 40)])
def test_cnn_output_shape(shape: tuple[int, ...]) -> None:
    model = cnn(shape, 10)
    assert model(torch.randn(4, *shape)).shape == (4, 10)
    flat = torch.randn(4, torch.Size(shape).numel())  # flattened inputs are accepted too
    assert model(flat).shape == (4, 10)


def test_cnn_1d_matches_mnist1d_reference() -> None:
    model = cnn((1, 40), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 3
    assert all(c.out_channels == 25 and c.kernel_size == (5,) and c.stride == (2,) for c in convs)
    assert model.head.in_features == 25 * 4  # 40 -> 19 -> 9 -> 4


def test_cnn_2d_pooling_stops_at_small_maps() -> None:
    assert cnn((1, 28, 28), 10).head.in_features == 128
    pools = [m for m in cnn((1, 8, 8), 10, channels=(8, 8, 8)).modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 2  # 8 -> 4 -> 2, then no further pooling


def test_transfer_layer_is_the_conv_trunk_of_the_image_cnn() -> None:
    image = cnn((1, 28, 28), 10)
    assert image.transfer_cut == 2 and isinstance(image.features[-image.transfer_cut], nn.Linear)
    assert isinstance(image.features[-image.transfer_cut - 1], nn.Flatten)  # below it: the conv maps, flattened
    assert cnn((1, 40), 10).transfer_cut == 0  # the 1-D CNN ends with its conv layers already
    assert mlp(64, 3).transfer_cut == 0 and resnet18(3).transfer_cut == 0


@pytest.mark.parametrize("shape", [(784,), (1, 1, 28, 28), (1, 3)])
def test_cnn_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        cnn(shape, 10)


# ---------------------------------------------------------------- resnet18


def test_resnet18_matches_torchvision_layout() -> None:
    model = resnet18(1000, small_input=False)
    assert n_params(model) == 11_689_512
    keys = sorted(model.state_dict())
    assert len(keys) == 122  # 62 parameters + 3 buffers x 20 batch norms
    assert set(keys) == torchvision_resnet18_keys()
    for key in ("layer2.0.downsample.0.weight", "layer4.1.bn2.running_var", "fc.weight", "bn1.num_batches_tracked"):
        assert key in keys
    assert "layer1.0.downsample.0.weight" not in keys
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert model.conv1.bias is None
    assert torch.all(model.layer3[1].bn1.weight == 1) and torch.all(model.layer3[1].bn1.bias == 0)


def test_resnet18_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    a = resnet18(7, small_input=False)
    a.train()
    a(torch.randn(4, 3, 64, 64))  # move BN running statistics off their defaults
    b = resnet18(7, small_input=False)
    b.load_state_dict(a.state_dict(), strict=True)
    a.eval()
    b.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_resnet18_small_input(shape: tuple[int, ...]) -> None:
    model = resnet18(10, in_channels=shape[0])
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model(torch.randn(2, *shape)).shape == (2, 10)


# ---------------------------------------------------------------- shared contract


def small_models() -> list[nn.Module]:
    torch.manual_seed(0)
    return [mlp(64, 5, hidden=(16,)), cnn((1, 8, 8), 5, channels=(4, 8)), cnn((1, 40), 5), resnet18(5, 1)]


INPUTS = [(1, 8, 8), (1, 8, 8), (1, 40), (1, 8, 8)]


@pytest.mark.parametrize("index", range(4))
def test_forward_features_then_head_equals_forward(index: int) -> None:
    model = small_models()[index].eval()
    x = torch.randn(3, *INPUTS[index])
    with torch.no_grad():
        assert torch.allclose(model.forward_head(model.forward_features(x)), model(x))


@pytest.mark.parametrize("index", range(4))
def test_reset_head_keeps_features(index: int) -> None:
    model = small_models()[index]
    head_name = "fc" if isinstance(model, ResNet18) else "head"
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(head_name + ".")}
    old_head = model.head
    model.reset_head(3)
    assert model.head is not old_head and model.head.out_features == 3
    assert model.head.in_features == old_head.in_features
    after = model.state_dict()
    assert set(after) - set(before) == {f"{head_name}.weight", f"{head_name}.bias"}
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert model(torch.randn(2, *INPUTS[index])).shape == (2, 3)


def test_reset_head_keeps_dtype() -> None:
    model = mlp(10, 4, hidden=(8,)).double()
    model.reset_head(2)
    assert model.head.weight.dtype == torch.float64


@pytest.mark.parametrize("index", range(4))
def test_param_groups_cover_every_parameter_once(index: int) -> None:
    model = small_models()[index]
    groups = model.param_groups()
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    assert list(groups)[-1] == "head" and all(groups.values())


def test_param_group_names() -> None:
    assert list(mlp(64, 5, hidden=(16, 16)).param_groups()) == ["features.1", "features.3", "head"]
    assert list(resnet18(5).param_groups()) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


# ---------------------------------------------------------------- registry


def test_registry_build() -> None:
    assert set(MODELS.names()) == {"mlp", "cnn", "conv4", "resnet18", "minilm", "bow"}
    assert all(entry.description for entry in MODELS)
    model = build("mlp", (1, 28, 28), 10)
    assert isinstance(model, Net) and model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert n_params(build("mlp", (1, 28, 28), 10, hidden=(20,))) == 784 * 20 + 20 + 20 * 10 + 10
    assert build("cnn", (1, 40), 10)(torch.randn(2, 40)).shape == (2, 10)
    assert isinstance(build("resnet18", (1, 28, 28), 10), ResNet18)


def test_registry_errors() -> None:
    with pytest.raises(ConfigError, match="mlp"):
        build("mpl", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="C, H, W"):
        build("resnet18", (1, 40), 10)


@pytest.mark.parametrize("name, shape", [("cnn", (1, 28, 28)), ("conv4", (1, 28, 28)), ("resnet18", (3, 32, 32))])
def test_image_models_store_conv_weights_channels_last(name, shape):
    """Faster oneDNN convolutions (benchmarks/memory_format.py), the same function as a contiguous copy."""
    torch.manual_seed(0)
    model = build(name, shape, 10).eval()
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d) and min(m.weight.shape[1:]) > 1]  # else both
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs)
    plain = build(name, shape, 10).eval()
    plain.load_state_dict(model.state_dict())
    plain.to(memory_format=torch.contiguous_format)
    x = torch.randn(4, *shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-5)
