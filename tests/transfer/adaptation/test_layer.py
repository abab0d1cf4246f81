"""The features domain adaptation aligns: the classifier's input by default (numbers as before the option
existed), or the output of the module `layer` names; any model of timm's contract."""

import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.models import build
from lifelong.transfer.adaptation import CORAL, DAN, DANN, JAN, adapt

from ...models.standins import fake_timm  # noqa: F401 (fixture)
from .conftest import small_model

# Recorded before `layer` existed (and before the models followed timm's contract), with
# small_model(0) (mlp 64-32-32-10), epochs=2, batch_size=64, lr=0.01, seed=0: (target acc, source acc, sum of
# the trained weights). Identical on 1 and 2 CPU threads.
RECORDED = {
    DAN: (0.04666666666666667, 0.22666666666666666, -36.13918616948649),
    CORAL: (0.006666666666666667, 0.72, 44.56782332988223),
    DANN: (0.011111111111111112, 0.6688888888888889, 47.547590697126),
    JAN: (0.006666666666666667, 0.4888888888888889, -38.994691663305275),
}


@pytest.mark.parametrize("cls", RECORDED)
def test_the_default_aligns_the_classifier_input_as_before(pair, cls):
    source, target = pair
    model = small_model(0)
    acc, source_acc, _ = adapt(model, source, target, cls(), epochs=2, batch_size=64, lr=0.01, seed=0)
    total = sum(p.double().sum().item() for p in model.parameters())
    assert (acc, source_acc) == RECORDED[cls][:2]
    assert total == pytest.approx(RECORDED[cls][2], rel=1e-12, abs=1e-12)


def test_a_named_layer_is_aligned_instead(pair):
    source, target = pair
    seen = []

    class Spy(DAN):
        def term(self, fs, ft, weight):
            seen.append((fs.detach().clone(), self.model.features[:2](self.batch_x[: len(fs)]).detach()))
            return super().term(fs, ft, weight)

        def batch(self, x, y, t):
            out = super().batch(x, y, t)
            self.batch_x = out[0]
            return out

    spy = Spy(layer="features.1")  # the first hidden Linear, before its ReLU
    adapt(small_model(), source, target, spy, epochs=1, batch_size=300, seed=0)
    assert seen and all(fs.shape[1] == 32 and torch.allclose(fs, expected, atol=1e-6) for fs, expected in seen)
    assert spy.options() == {"lam": 1.0, "progressive": False, "layer": "features.1"}
    assert "layer" not in DAN().options()  # a default run's record is as it was


def test_dann_sizes_its_domain_classifier_to_the_layer(pair):
    source, target = pair
    for layer, width in ((None, 32), ("features.0", 64)):  # the head's input; the flattened input
        dann = DANN(layer=layer)
        adapt(small_model(), source, target, dann, epochs=1, batch_size=300, seed=0)
        assert dann.adversary.in_features == width


def test_an_unknown_layer_is_a_one_line_error_naming_valid_ones(pair):
    source, target = pair
    with pytest.raises(ConfigError, match=r"`layer` 'features\.9' is not a module of Net: choose one of features, "
                                          r"features\.0, features\.1") as err:
        adapt(small_model(), source, target, CORAL(layer="features.9"), epochs=1, seed=0)
    assert err.value.argument == "coral.layer" and "\n" not in str(err.value)


def test_any_model_of_timms_contract_adapts(pair, fake_timm):
    source, target = pair
    for method, width in ((JAN(), 6), (DANN(layer="model.stem"), 4 * 8 * 8)):
        torch.manual_seed(0)
        model = build("timm:tiny", (1, 8, 8), 10)
        acc, source_acc, _ = adapt(model, source, target, method, epochs=1, batch_size=128, seed=0)
        assert 0 <= acc <= 1 and 0 <= source_acc <= 1
        if isinstance(method, DANN):
            assert method.adversary.in_features == width
