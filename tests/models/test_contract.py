"""timm's model contract on every model of ours: forward_features, forward_head(pre_logits), get_classifier,
reset_classifier, num_features; and the helpers that rest on it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lifelong.data import Split
from lifelong.models import (GrowingHead, build, classifier_name, cnn, conv4, extract, mlp, param_groups, pre_logits,
                             resnet18, with_head)
from lifelong.models.heads import output_layer

CASES = {  # name -> (factory, input shape)
    "mlp": (lambda: mlp(64, 5, hidden=(16,)), (1, 8, 8)),
    "cnn": (lambda: cnn((1, 8, 8), 5, channels=(4, 8)), (1, 8, 8)),
    "cnn-1d": (lambda: cnn((1, 40), 5), (1, 40)),
    "conv4": (lambda: conv4((1, 8, 8), 5, channels=4), (1, 8, 8)),
    "resnet18": (lambda: resnet18(5, in_channels=1), (1, 8, 8)),
    "build-mlp": (lambda: build("mlp", (1, 8, 8), 5, hidden=(16,)), (1, 8, 8)),
    "growing": (lambda: with_head(mlp(64, 5, hidden=(16,)), "growing"), (1, 8, 8)),
}


def make(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    factory, shape = CASES[name]
    model = factory().eval()
    if isinstance(model.get_classifier(), GrowingHead):
        model.get_classifier().grow(range(5))
    return model, torch.randn(3, *shape)


@pytest.mark.parametrize("name", CASES)
def test_forward_is_forward_head_of_forward_features_and_pre_logits_feed_the_classifier(name):
    model, x = make(name)
    seen = []
    model.get_classifier().register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        out = model(x)
        assert torch.equal(model.forward_head(model.forward_features(x)), out)
        z = pre_logits(model, x)
    assert torch.equal(z, seen[0]) and z.shape == (3, model.num_features)
    assert model.get_classifier() is output_layer(model) and model.get_classifier().in_features == model.num_features


@pytest.mark.parametrize("name", CASES)
def test_reset_classifier_keeps_the_backbone(name):
    model, x = make(name)
    with torch.no_grad():
        z = pre_logits(model, x)
    head = classifier_name(model) + "."
    backbone = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(head)}
    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3 and model.get_classifier().in_features == model.num_features
    after = model.state_dict()
    assert set(after) - set(backbone) == {head + "weight", head + "bias"}
    assert all(torch.equal(v, after[k]) for k, v in backbone.items())
    with torch.no_grad():
        assert model(x).shape == (3, 3) and torch.equal(pre_logits(model, x), z)
        model.reset_classifier(0)  # no classifier: forward gives the pre-logits, as in timm
        assert torch.equal(model(x), z)


def test_resnet18_features_are_the_maps_before_pooling():
    model, _ = make("resnet18")
    with torch.no_grad():
        maps = model.forward_features(torch.randn(3, 1, 16, 16))
        assert maps.shape == (3, 512, 2, 2)  # 16 -> 8 -> 4 -> 2 over layer2..layer4
        torch.testing.assert_close(model.forward_head(maps, pre_logits=True), maps.mean((2, 3)))


def test_extract_gives_the_pre_logits_in_eval_mode():
    model, x = make("resnet18")
    model.train()
    features = extract(model, Split(x, torch.zeros(3, dtype=torch.long)), batch_size=2)
    assert model.training
    with torch.no_grad():
        torch.testing.assert_close(features.x, pre_logits(model.eval(), x))


def test_generic_param_groups_follow_the_top_level_modules_classifier_last():
    class Contract(nn.Module):  # not ours: timm's names only
        def __init__(self):
            super().__init__()
            self.token = nn.Parameter(torch.zeros(4))
            self.stem, self.blocks = nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.ReLU())
            self.fc = nn.Linear(4, 2)
            self.pool = nn.Identity()

        def get_classifier(self):
            return self.fc

    model = Contract()
    groups = param_groups(model)
    assert list(groups) == ["<own>", "stem", "blocks", "head"]
    assert groups["head"] == list(model.fc.parameters()) and groups["<own>"] == [model.token]
    assert list(param_groups(mlp(64, 5, hidden=(16,)))) == ["features.1", "head"]  # a model's own groups win
