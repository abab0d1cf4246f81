"""Saved models (safetensors + JSON), frozen backbones and the torchvision ResNet-18 snippet."""

import json

import pytest
import torch
from torch import nn

import lifelong as ll
from lifelong.errors import ConfigError, LifelongError
from lifelong.files import seal
from lifelong.models import build, info, load, load_backbone, resnet18, save

ARCH = {"model": "cnn", "input_shape": [1, 8, 8], "num_classes": 4, "hidden": [400, 400]}


def saved_cnn(tmp_path):
    torch.manual_seed(0)
    model = build("cnn", (1, 8, 8), 4)
    save(tmp_path, model, architecture=ARCH, classes=list("abcd"), normalisation={"scale": 1 / 16},
         meta={"source": "digits:0-3"})
    return model


def test_round_trip_is_exact(tmp_path):
    model = saved_cnn(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    back = load(tmp_path)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(back(x), model.eval()(x))
    assert not back.training
    meta = info(tmp_path / "model.json")
    assert meta["classes"] == list("abcd") and meta["source"] == "digits:0-3" and meta["architecture"] == ARCH


@pytest.mark.parametrize("head,cut", [("logistic", None), ("l2n", None), ("ncm", None), ("linear", 0),
                                      ("logistic", 5)])
def test_a_model_after_feature_extraction_saves_and_loads_exactly(tmp_path, digits, head, cut):
    """The head sits on the conv trunk (or lower) and may be a probe, CL2N + linear or an MLP; `load`
    rebuilds that layout, and the loaded model can have its head reset for further fine-tuning."""
    from lifelong.transfer import feature_extraction

    torch.manual_seed(0)
    model = build("cnn", (1, 8, 8), 4)
    target = ll.data.select_classes(digits, [4, 5, 6, 7, 8, 9])
    centre = ll.models.extract(model, target.train, cut=model.transfer_cut).x.mean(0) if head == "ncm" else None
    options = {"hidden": (16,), "epochs": 1} if head == "linear" else {}
    feature_extraction(model, target, head=head, cut=cut, centre=centre, **options)
    save(tmp_path, model, architecture=dict(ARCH, num_classes=6), classes=list("abcdef"), normalisation={})
    assert info(tmp_path)["architecture"]["features_cut"] == (2 if cut is None else cut)
    back = load(tmp_path)
    x = target.test.x[:9]
    with torch.no_grad():
        assert torch.equal(back(x), model.eval()(x))
    back.reset_head(3)
    assert back(x).shape == (9, 3)


def test_a_head_that_cannot_be_rebuilt_is_refused_before_anything_is_written(tmp_path):
    model = build("cnn", (1, 8, 8), 4)
    model.set_head(nn.Sequential(nn.Linear(128, 4), nn.Tanh()))
    with pytest.raises(ConfigError, match="cannot describe a head of type Sequential"):
        save(tmp_path / "m", model, architecture=ARCH, classes=list("abcd"), normalisation={})
    assert not (tmp_path / "m").exists()


def test_refuses_missing_altered_and_foreign_files(tmp_path):
    with pytest.raises(LifelongError, match="lifelong pretrain"):
        load(tmp_path)
    saved_cnn(tmp_path)
    blob = bytearray((tmp_path / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (tmp_path / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(LifelongError, match="checksum"):
        load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(LifelongError, match="not a saved lifelong model"):
        load(tmp_path)


def test_wrong_architecture_is_a_clear_error(tmp_path):
    saved_cnn(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["meta"]["architecture"]["num_classes"] = 3  # re-sealed: an edit the digest cannot see
    (tmp_path / "model.json").write_text(json.dumps(seal({k: v for k, v in meta.items() if k != "digest"})))
    with pytest.raises(LifelongError, match="does not fit"):
        load(tmp_path)


def test_load_backbone_gives_a_fresh_head_and_checks_the_shape(tmp_path):
    model = saved_cnn(tmp_path)
    new = load_backbone(tmp_path, (1, 8, 8), 7)
    assert new.head.out_features == 7 and new.training
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(new.eval().forward_features(x), model.eval().forward_features(x))
    with pytest.raises(ConfigError, match="shape"):
        load_backbone(tmp_path, (1, 28, 28), 7)


def torchvision_state_dict() -> dict[str, torch.Tensor]:
    """A state dict in torchvision's resnet18 layout (names and shapes written out), random values."""
    g = torch.Generator().manual_seed(0)
    sd: dict[str, torch.Tensor] = {}

    def bn(prefix: str, c: int) -> None:
        sd.update({f"{prefix}.weight": torch.rand(c, generator=g) + 0.5,
                   f"{prefix}.bias": torch.randn(c, generator=g) * 0.1,
                   f"{prefix}.running_mean": torch.randn(c, generator=g) * 0.1,
                   f"{prefix}.running_var": torch.rand(c, generator=g) + 0.5,
                   f"{prefix}.num_batches_tracked": torch.tensor(1000)})

    def conv(c_out: int, c_in: int, k: int) -> torch.Tensor:  # He initialisation keeps activations O(1)
        return torch.randn(c_out, c_in, k, k, generator=g) * (2 / (c_in * k * k)) ** 0.5

    sd["conv1.weight"] = conv(64, 3, 7)
    bn("bn1", 64)
    in_ch = 64
    for k, width in enumerate((64, 128, 256, 512), start=1):
        for b in range(2):
            p, c_in = f"layer{k}.{b}", in_ch if b == 0 else width
            sd[f"{p}.conv1.weight"], sd[f"{p}.conv2.weight"] = conv(width, c_in, 3), conv(width, width, 3)
            bn(f"{p}.bn1", width)
            bn(f"{p}.bn2", width)
        if k > 1:
            sd[f"layer{k}.0.downsample.0.weight"] = conv(width, in_ch, 1)
            bn(f"layer{k}.0.downsample.1", width)
        in_ch = width
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 512, generator=g) * 0.01, torch.zeros(1000)
    return sd


def test_pretrained_resnet18_snippet(tmp_path):
    """docs/transfer.md: load a torchvision ResNet-18 file, freeze it, train a new fully connected layer."""
    torch.save(torchvision_state_dict(), tmp_path / "resnet18.pth")  # what torchvision's download holds

    model = resnet18(1000, small_input=False)
    model.load_state_dict(torch.load(tmp_path / "resnet18.pth", weights_only=True))
    model.freeze_backbone()
    model.reset_head(3)
    optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-3)

    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 3, 64, 64, generator=g), torch.arange(12) % 3
    model.train()
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # BN statistics included
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("fc."))


def test_frozen_backbone_stays_bit_identical_through_the_trainer(digits):
    torch.manual_seed(0)
    model = resnet18(10, in_channels=1)
    model.freeze_backbone()
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    head = model.fc.weight.clone()
    ll.Trainer(model, epochs=1, batch_size=64).fit(ll.data.from_tasks([(digits.train.subset(torch.arange(128)),
                                                                        digits.test)]))
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert not torch.equal(head, model.fc.weight)
    model.freeze_backbone(False)
    model.train()
    assert model.layer1.training and all(p.requires_grad for p in model.parameters())
