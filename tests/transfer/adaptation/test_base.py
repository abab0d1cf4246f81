import math

import pytest
import torch

import lifelong as ll
from lifelong.data import Split
from lifelong.errors import ConfigError
from lifelong.transfer.adaptation import DAN, adapt, progressive_weight

from .conftest import small_model as model


def test_progressive_schedule():
    assert progressive_weight(0.0) == 0.0
    assert math.isclose(progressive_weight(0.5), 2 / (1 + math.exp(-5)) - 1)
    assert 0.9999 < progressive_weight(1.0) < 1
    values = [progressive_weight(p / 10) for p in range(11)]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_term_sees_the_source_batch_features_and_a_target_batch(pair):
    source, target = pair
    calls = []

    class Spy(DAN):
        def loss(self, out, x, y, t):
            with torch.no_grad():  # the model as it is at this step
                n = self.n_source  # x is [source batch; target batch], in one forward pass
                self.expected = self.model.forward_features(x[:n]), self.model.forward_features(target.train.x)
            return super().loss(out, x, y, t)

        def term(self, fs, ft, weight):
            source_features, all_target_features = self.expected
            assert torch.allclose(fs, source_features) and len(ft) == len(fs)
            assert torch.cdist(ft.detach(), all_target_features).min(1).values.max() < 2e-3  # target rows
            calls.append(weight)
            return super().term(fs, ft, weight)

    adapt(model(), source, target, Spy(lam=2.0), epochs=1, batch_size=200, seed=0)
    assert calls == [2.0] * math.ceil(len(source.train) / 200)


def test_refusals():
    with pytest.raises(ConfigError, match="`lam` must be a number >= 0") as err:
        DAN(lam=-1.0)
    assert err.value.argument == "dan.lam"
    with pytest.raises(ConfigError, match="no get_classifier"):
        dan = DAN()
        dan.set_target(torch.zeros(4, 1, 8, 8))
        ll.Trainer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4)), dan).fit(
            ll.data.from_tasks([(Split(torch.zeros(4, 1, 8, 8), torch.arange(4)),) * 2]))
    with pytest.raises(ConfigError, match="no target data"):
        ll.Trainer(model(), DAN()).fit(ll.data.from_tasks([(Split(torch.zeros(4, 1, 8, 8), torch.arange(4)),) * 2]))
