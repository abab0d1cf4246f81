import json
import math

import pytest
import torch
from torch import nn

import lifelong as ll
from lifelong.cli import main
from lifelong.data import Dataset, Split
from lifelong.errors import ConfigError
from lifelong.experiment import AdaptConfig, run_adaptation
from lifelong.experiment import adapt as adapt_module
from lifelong.experiment.adapt import RECORD_KEYS
from lifelong.transfer.adaptation import CORAL, DAN, DANN, JAN, ADAPTATIONS, adapt, mk_mmd
from lifelong.transfer.adaptation import train as train_module

from lifelong.models.net import Net
from tests.test_training import killable, resume_chain  # noqa: F401 (killable is a fixture)

from .conftest import small_model as model

OPTS = dict(epochs=2, batch_size=64, seed=0)


@pytest.mark.parametrize("cls", [DAN, CORAL, DANN, JAN])
def test_target_labels_are_never_used_for_training(pair, cls):
    source, target = pair
    shuffled = Dataset("t", Split(target.train.x, target.train.y[torch.randperm(len(target.train))]), target.test,
                       target.class_names, target.input_shape)
    a = adapt(model(), source, target, cls(), **OPTS)
    b = adapt(model(), source, shuffled, cls(), **OPTS)
    assert a[:2] == b[:2] and all(math.isfinite(v) for v in a)


@pytest.mark.parametrize("cls", [DAN, CORAL, DANN, JAN])
def test_zero_weight_is_source_only_exactly(pair, cls):
    source, target = pair
    base, tuned = model(), model()
    assert adapt(base, source, target, None, **OPTS)[:2] == adapt(tuned, source, target, cls(lam=0.0), **OPTS)[:2]
    for p, q in zip(base.parameters(), tuned.parameters()):
        assert torch.equal(p, q)


def test_dann_trains_its_discriminator_and_follows_the_schedule(pair):
    source, target = pair
    dann = DANN()
    before = None

    class Watch(DANN):
        def before_task(self, task):
            super().before_task(task)
            nonlocal before
            before = [p.clone() for p in self.adversary.parameters()]

    dann = Watch()
    adapt(model(), source, target, dann, **OPTS)
    assert all(not torch.equal(a, b) for a, b in zip(before, dann.adversary.parameters()))
    assert dann.steps == dann.total_steps == 2 * math.ceil(len(source.train) / 64)
    assert 0.999 * dann.lam < dann.weight() < dann.lam


def test_alignment_reduces_the_feature_discrepancy(pair):
    source, target = pair
    plain, aligned = model(), model()
    adapt(plain, source, target, None, **OPTS)
    adapt(aligned, source, target, DAN(lam=10.0), **OPTS)
    with torch.no_grad():
        gap = lambda m: mk_mmd(m.forward_features(source.test.x), m.forward_features(target.test.x))  # noqa: E731
        assert gap(aligned) < 0.5 * gap(plain)


def test_run_adaptation_records(pair, monkeypatch):
    monkeypatch.setattr(adapt_module, "domain_pair", lambda source, target: pair)  # small and fast
    config = AdaptConfig(source="fmnist", target="fmnist-invert", method=["source-only", "coral", "tca"],
                         hidden=[32], epochs=1, seeds=2, method_options={"tca": {"n_components": 8}})
    records = run_adaptation(config)
    assert [(r["method"], r["seed"]) for r in records] == [(m, s) for s in (0, 1) for m in config.method]
    assert all(set(RECORD_KEYS) <= set(r) and r["shots"] == 0 and 0 <= r["acc"] <= 1 for r in records)
    assert records[2]["train_seconds"] > records[0]["train_seconds"]  # tca = source-only model + TCA
    assert records[1]["options"] == {"lam": 100.0, "progressive": False}
    assert set(ADAPTATIONS.names()) == {"source-only", "dan", "coral", "dann", "jan", "tca"}


def test_the_layer_option_reaches_every_deep_method_and_a_method_own_layer_wins(pair, monkeypatch, tmp_path):
    monkeypatch.setattr(adapt_module, "domain_pair", lambda source, target: pair)  # small and fast
    out = tmp_path / "run"
    assert main(["adapt", "--method", "source-only,coral,dann", "--hidden", "32,32", "--epochs", "1", "--layer",
                 "features.3", "--dann-layer", "features.1", "--out", str(out)]) == 0
    records = json.loads((out / "results.json").read_text())["records"]
    assert {r["method"]: r["options"].get("layer") for r in records} == {
        "source-only": None, "coral": "features.3", "dann": "features.1"}
    with pytest.raises(ConfigError, match="`layer` 'features.9' is not a module of Net"):
        run_adaptation(AdaptConfig(method=["coral"], hidden=[32], epochs=1, layer="features.9"))


def test_bad_config():
    with pytest.raises(ConfigError, match="unknown adaptation method 'mmd'"):
        AdaptConfig(method=["mmd"]).validate()
    with pytest.raises(ConfigError, match="no option 'gamma'"):
        AdaptConfig(method=["dann"], method_options={"dann": {"gamma": 1}}).validate()


def test_batchnorm_sees_source_and_target_in_one_forward_pass(pair):
    """As in the Transfer-Learning-Library: one forward over [source; target] per step, so BatchNorm
    normalises with the pooled batch's statistics (not each domain with its own)."""
    source, target = pair
    torch.manual_seed(0)
    net = Net(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU()), nn.Linear(16, 10))
    sizes = []
    net.features[2].register_forward_hook(lambda m, args, out: sizes.append(len(args[0])) if m.training else None)
    adapt(net, source, target, DAN(), epochs=1, batch_size=200, seed=0)
    n = len(source.train)
    assert sizes == [2 * min(200, n - i) for i in range(0, n, 200)]


@pytest.mark.parametrize("cls", [DAN, CORAL, DANN, JAN])
def test_resumed_adaptation_continues_its_schedule_and_target_draws(pair, tmp_path, killable, cls):
    """Killed mid-task and resumed by a fresh Trainer: λ_p's position, the target batches and DANN's
    discriminator (with its optimiser) carry on, so the fit equals an uninterrupted one bit for bit."""
    source, target = pair
    stream = train_module._stream(source, target)

    def make():
        method = cls()
        method.set_target(target.train.x)
        return method

    ref = ll.Trainer(model(), make(), epochs=2, batch_size=64, seed=0).fit(stream)
    result, stopped = resume_chain(stream, make, tmp_path, killable, ["ck:step:7"], model=lambda k: model(k))
    assert stopped == ["ck:step:7"] and result.matrix == ref.matrix and result.losses == ref.losses
