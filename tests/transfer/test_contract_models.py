"""Transfer on a model that only follows timm's contract (a timm-shaped stand-in, not ours): feature
extraction, fine-tuning with layer-wise learning rates, LP-FT, L2-SP."""

import pytest
import torch

import lifelong as ll
from lifelong.models import build, pre_logits
from lifelong.transfer import L2SP, FineTuner, feature_extraction, finetune, lp_ft

from ..models.standins import fake_timm  # noqa: F401 (fixture)


@pytest.fixture
def data(digits):
    return ll.data.select_classes(digits, range(3))


def tiny(classes=3):
    torch.manual_seed(0)
    return build("timm:tiny", (1, 8, 8), classes)


def test_feature_extraction_trains_a_head_on_the_pre_logits(fake_timm, data):
    model = tiny(5)
    with torch.no_grad():
        z = pre_logits(model.eval(), data.test.x)
    probe = feature_extraction(model, data, head="linear", epochs=3, batch_size=32, lr=1e-2)
    assert model.backbone_frozen and model.get_classifier() is probe.head and probe.head.out_features == 3
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(data.test.x), probe.head(z))  # the head sits on the pre-logits
        acc = (model(data.test.x).argmax(1) == data.test.y).float().mean().item()
    assert acc == pytest.approx(probe.acc)


def test_layer_wise_rates_follow_the_top_level_modules(fake_timm, data):
    model = tiny()
    tuner = FineTuner(model, lr=0.01, lr_decay=2.0)
    groups = tuner.make_optimizer().param_groups
    assert list(model.param_groups()) == ["stem", "stage", "head"]
    assert [g["lr"] for g in groups] == pytest.approx([0.0025, 0.005, 0.01])
    assert groups[-1]["params"] == list(model.get_classifier().parameters())
    result = finetune(model, data, lr_decay=2.0, gradual=True, epochs=3, batch_size=32)
    assert 0 <= result.matrix[0][0] <= 1 and model.get_classifier().out_features == 3


def test_lp_ft_and_l2sp_find_the_classifier(fake_timm, data):
    model = tiny(5)
    lp_ft(model, data, probe="logistic", epochs=1, batch_size=32)
    assert model.get_classifier().out_features == 3 and not model.backbone_frozen
    l2sp = L2SP()
    ll.Trainer(model, l2sp, epochs=1, batch_size=32).fit(ll.data.from_tasks([data]))
    assert {id(p) for p in l2sp.new} == {id(p) for p in model.get_classifier().parameters()}
    assert len(l2sp.shared) + len(l2sp.new) == len(list(model.parameters()))
