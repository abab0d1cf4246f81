"""timm and torchvision models as lifelong models (`timm:<name>`, `torchvision:<name>`): through stand-ins shaped
like theirs (tests/models/standins.py), and through the real libraries where they are installed."""

from __future__ import annotations

import dataclasses
import importlib
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import lifelong as ll
from lifelong.errors import ConfigError, LifelongError
from lifelong.models import MODELS, External, GrowingHead, build, pre_logits, with_head

from .standins import TinyTimm, TinyTorchvision, fake_timm, fake_torchvision  # noqa: F401 (fixtures)


def test_a_timm_model_follows_the_contract_through_build(fake_timm):
    torch.manual_seed(0)
    model = build("timm:tiny", (1, 8, 8), 10).eval()
    assert isinstance(model, External) and isinstance(model.model, TinyTimm)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        maps = model.forward_features(x)
        assert maps.shape == (4, 6, 4, 4)  # timm's features: before pooling
        assert torch.equal(model(x), model.forward_head(maps))
        grey = x.expand(-1, 3, -1, -1)  # grey images are repeated over the 3 channels the model takes
        assert torch.equal(model(x), model.model(grey)) and torch.equal(model(x.flatten(1)), model(x))
        assert pre_logits(model, x).shape == (4, model.num_features)
    assert model.get_classifier() is model.model.fc and model.get_classifier().out_features == 10


def test_unknown_names_and_missing_libraries_are_one_line_errors(fake_timm, monkeypatch):
    with pytest.raises(ConfigError, match="timm cannot build the model 'nope'"):
        build("timm:nope", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="names no timm model"):
        MODELS.get("timm:")
    with pytest.raises(ConfigError, match="choose one of"):
        MODELS.get("tim:tiny")  # an unknown prefix is an unknown name
    monkeypatch.setitem(sys.modules, "timm", None)  # not installed
    for name, extra in (("timm:resnet18", "timm"), ("torchvision:resnet18", "torchvision")):
        if extra == "torchvision":
            monkeypatch.setitem(sys.modules, "torchvision", None)
        with pytest.raises(LifelongError, match=rf"pip install 'lifelong\[{extra}\]'") as err:
            MODELS.get(name)  # what the configs' validation calls: refused before any data is loaded
        assert "\n" not in str(err.value)


def test_growing_head_and_training_through_the_trainer(fake_timm, digits):
    stream = ll.data.split(digits, n_tasks=2, scenario="class", seed=0)
    few = [dataclasses.replace(t, train=t.train.subset(torch.arange(64))) for t in stream]
    stream = dataclasses.replace(stream, tasks=few)
    torch.manual_seed(0)
    model = with_head(build("timm:tiny", stream.input_shape, stream.n_outputs), "growing")
    assert isinstance(model.model.fc, GrowingHead)
    result = ll.Trainer(model, epochs=1, batch_size=32).fit(stream)
    assert len(result.matrix) == 2 and model.get_classifier().active.all()


def test_a_frozen_backbone_keeps_its_state_and_the_classifier_trains(fake_timm):
    torch.manual_seed(0)
    model = build("timm:tiny", (1, 8, 8), 3)
    model.freeze_backbone()
    model.train()
    assert not model.model.stem[1].training and model.get_classifier().training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stream = ll.data.from_tasks([(ll.data.Split(torch.randn(12, 1, 8, 8), torch.arange(12) % 3),) * 2])
    ll.Trainer(model, epochs=2, batch_size=4).fit(stream)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"model.fc.weight", "model.fc.bias"}


def test_weights_come_from_a_local_safetensors_file_without_the_classifier(fake_timm, tmp_path):
    torch.manual_seed(1)
    source = TinyTimm(num_classes=1000)
    save_file(source.state_dict(), tmp_path / "tiny.safetensors")
    model = build(f"timm:tiny@{tmp_path / 'tiny.safetensors'}", (3, 8, 8), 4)
    loaded = model.model.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in source.state_dict().items() if not k.startswith("fc."))
    assert model.get_classifier().weight.shape == (4, 6)  # fresh, for the data's classes
    save_file({"stem.0.weight": torch.zeros(1)}, tmp_path / "bad.safetensors")
    with pytest.raises(ConfigError, match="do not fit the model"):
        build(f"timm:tiny@{tmp_path / 'bad.safetensors'}", (3, 8, 8), 4)
    with pytest.raises(ConfigError, match="never unpickled"):
        build(f"timm:tiny@{tmp_path / 'tiny.pth'}", (3, 8, 8), 4)


def test_a_torchvision_model_is_split_at_its_last_linear(fake_torchvision, tmp_path):
    torch.manual_seed(0)
    reference = TinyTorchvision(4).eval()
    torch.manual_seed(0)
    model = build("torchvision:tinyres", (3, 8, 8), 4).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))  # the same function, split in two
        assert torch.equal(model.forward_head(pre_logits(model, x)), model(x))
    assert model.get_classifier().in_features == model.num_features == 7
    save_file(TinyTorchvision(1000).state_dict(), tmp_path / "tv.safetensors")  # torchvision's own layout
    loaded = build(f"torchvision:tinyres@{tmp_path / 'tv.safetensors'}", (3, 8, 8), 4)
    assert torch.equal(loaded.model.body.conv1.weight, load_file(tmp_path / "tv.safetensors")["conv1.weight"])


def installed(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:  # not installed, or (torchvision beside another torch build) broken
        return False
    return True


@pytest.mark.parametrize("name", ["timm:resnet18", "torchvision:resnet18"])
def test_a_real_library_model(name):
    library = name.partition(":")[0]
    if not installed(library):  # torchvision from PyPI does not import beside a CPU-only torch build
        pytest.skip(f"{library} is not installed or does not import: pip install 'lifelong[{library}]'")
    torch.manual_seed(0)
    model = build(name, (1, 32, 32), 10).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model.forward_head(model.forward_features(x)))
        assert pre_logits(model, x).shape == (2, model.num_features) and model.num_features == 512
    assert with_head(model, "growing").get_classifier().out_features == 10


def test_a_library_that_does_not_import_is_a_one_line_error(monkeypatch):
    def broken(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise RuntimeError("operator torchvision::nms does not exist\n(traceback...)")
        return real_import(name, *args, **kwargs)

    real_import = importlib.import_module
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ConfigError, match="torchvision is installed but does not import .operator torchvision::nms"):
        MODELS.get("torchvision:resnet18")
