"""LP-FT (Kumar et al. 2022): the logistic probe first, then every layer fine-tuned at a smaller rate."""

import copy

import pytest
import torch

import lifelong as ll
from lifelong.errors import ConfigError
from lifelong.transfer import feature_extraction, lp_ft


@pytest.mark.parametrize("probe", ["logistic", "l2n"])
def test_lp_ft_starts_from_the_probe_then_trains_every_layer_at_the_scaled_rate(digits, probe):
    torch.manual_seed(0)
    model = ll.models.cnn((1, 8, 8), 10)
    target = ll.data.select_classes(digits, [5, 6, 7, 8, 9])
    target = ll.data.Dataset(target.name, target.train.subset(torch.arange(40)), target.test, target.class_names,
                             target.input_shape)
    fitted = feature_extraction(copy.deepcopy(model), target, head=probe)
    conv_before = model.features[2].weight.detach().clone()
    result = lp_ft(model, target, probe=probe, epochs=1, batch_size=40, lr=1e-2, lr_scale=0.1, seed=0)  # 1 step
    assert result.reference[0] == pytest.approx(fitted.acc)  # stage 2 starts from the probe's head
    assert not model.backbone_frozen and type(model.head) is type(fitted.head)
    moved = (model.features[2].weight.detach() - conv_before).abs().max().item()
    assert moved == pytest.approx(1e-3, rel=1e-3)  # Adam's first step moves a weight by lr x lr_scale


@pytest.mark.parametrize("probe, scale", [("logistic", 0.03), ("l2n", 0.1)])
def test_lp_ft_default_scale_is_the_held_out_choice_for_its_probe(digits, probe, scale):
    """Stage 2's default rate is lr x LR_SCALE[probe] (chosen on held-out digits28 tasks): one Adam step moves a
    backbone weight by exactly that much."""
    torch.manual_seed(0)
    model = ll.models.cnn((1, 8, 8), 10)
    target = ll.data.select_classes(digits, [0, 1, 2])
    target = ll.data.Dataset(target.name, target.train.subset(torch.arange(30)), target.test, target.class_names,
                             target.input_shape)
    before = model.features[2].weight.detach().clone()
    lp_ft(model, target, probe=probe, epochs=1, batch_size=30, lr=1e-2, seed=0)
    moved = (model.features[2].weight.detach() - before).abs().max().item()
    assert moved == pytest.approx(1e-2 * scale, rel=1e-3)


def test_lp_ft_rejects_a_bad_scale_or_probe(digits):
    with pytest.raises(ConfigError, match="lr_scale"):
        lp_ft(ll.models.cnn((1, 8, 8), 10), digits, lr_scale=0)
    with pytest.raises(ConfigError, match="probe"):
        lp_ft(ll.models.cnn((1, 8, 8), 10), digits, probe="ncm")
