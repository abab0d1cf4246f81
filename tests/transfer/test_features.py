"""Feature extraction: features computed once, heads on them, the logistic probe."""

import re
import sys

import pytest
import torch

import lifelong as ll
from lifelong.errors import ConfigError
from lifelong.extras import MissingExtra
from lifelong.transfer import feature_extraction, fit_head


def pretrained(digits, seed=0):
    torch.manual_seed(seed)
    model = ll.models.mlp(64, 5, hidden=(32,))
    source = ll.data.select_classes(digits, range(5))
    ll.Trainer(model, epochs=5, batch_size=32, lr=1e-2).fit(ll.data.from_tasks([source]))
    return model


@pytest.mark.parametrize("head", ["linear", "logistic"])
def test_backbone_runs_once_per_sample_and_stays_frozen(digits, head):
    model = pretrained(digits)
    target = ll.data.select_classes(digits, [5, 6, 7, 8, 9])
    calls = []
    features = model.features
    model.features = torch.nn.Sequential(features)
    model.features.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    before = [p.clone() for p in features.parameters()]
    probe = feature_extraction(model, target, head=head, epochs=5, batch_size=16, lr=1e-2)
    assert sum(calls) == len(target.train) + len(target.test)  # not once per epoch
    assert all(torch.equal(p, p0) for p, p0 in zip(features.parameters(), before))
    assert model.backbone_frozen and probe.acc > 0.6
    with torch.no_grad():  # the trained head is the model's head now
        acc = (model.eval()(target.test.x).argmax(1) == target.test.y).float().mean().item()
    assert acc == pytest.approx(probe.acc)


def test_logistic_probe_matches_scikit_learn_probabilities():
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    for classes in (2, 4):
        x = torch.randn(120, 6, generator=g)
        y = (x[:, :classes - 1] > 0).sum(1) if classes > 2 else (x[:, 0] + 0.3 * x[:, 1] > 0).long()
        train, test = ll.data.Split(x[:80], y[:80]), ll.data.Split(x[80:], y[80:])
        head, _, _ = fit_head(train, test, classes, head="logistic", C=0.5)
        ref = LogisticRegression(C=0.5, max_iter=5000).fit(x[:80].double().numpy(), y[:80].numpy())
        with torch.no_grad():
            mine = torch.softmax(head(test.x).double(), 1).numpy()
        assert mine == pytest.approx(ref.predict_proba(test.x.double().numpy()), abs=1e-4)


@pytest.mark.parametrize("head", ["logistic", "l2n"])
def test_a_logistic_probe_without_scikit_learn_names_the_extra(monkeypatch, head):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if not installed
    split = ll.data.Split(torch.randn(8, 3), torch.arange(8) % 2)
    with pytest.raises(MissingExtra, match=re.escape("pip install 'lifelong[sklearn]'")):
        fit_head(split, split, 2, head=head)


def test_l2n_probe_is_the_probe_of_normalised_features_so_feature_norms_do_not_count():
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g) * torch.rand(120, 1, generator=g).mul(20).add(0.1)  # norms 0.1 to 20
    y = (x[:, 0] > 0).long() + (x[:, 1] > x[:, 2]).long()
    train, test = ll.data.Split(x[:80], y[:80]), ll.data.Split(x[80:], y[80:])
    head, _, _ = fit_head(train, test, 3, head="l2n")  # the default C, 100
    unit = torch.nn.functional.normalize(x.double(), dim=1).numpy()
    ref = LogisticRegression(C=100.0, max_iter=5000).fit(unit[:80], y[:80].numpy())
    with torch.no_grad():
        mine = torch.softmax(head(test.x).double(), 1).numpy()
        assert mine == pytest.approx(ref.predict_proba(unit[80:]), abs=1e-4)
        scaled = test.x * torch.rand(40, 1, generator=g).mul(50)  # each test vector rescaled
        assert torch.allclose(head(scaled), head(test.x), atol=1e-5)
        raw, _, _ = fit_head(train, test, 3, head="logistic")
        assert not torch.allclose(raw(scaled), raw(test.x), atol=1e-2)  # unnormalised, the scale counts


def test_mlp_head_and_bad_names(digits):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 5, generator=g), torch.randint(0, 3, (60,), generator=g)
    head, acc, _ = fit_head(ll.data.Split(x, y), ll.data.Split(x, y), 3, hidden=(8,), epochs=2, batch_size=30)
    assert head(x).shape == (60, 3) and 0 <= acc <= 1
    with pytest.raises(ConfigError, match="logistic"):
        fit_head(ll.data.Split(x, y), ll.data.Split(x, y), 3, head="svm")


def test_cut_takes_features_lower_in_the_backbone(digits):
    torch.manual_seed(0)
    model = ll.models.cnn((1, 8, 8), 5)
    x = digits.train.x[:7]
    conv = ll.models.extract(model, ll.data.Split(x, digits.train.y[:7]), cut=2).x
    with torch.no_grad():
        want = model.features[:-2](x)  # before the last Linear + ReLU
    assert conv.shape == (7, want.shape[1]) and conv.shape[1] != model.head.in_features
    assert torch.equal(conv, want)
    train, test, _ = ll.transfer.features.cache(model, digits, cut=2)
    assert train.x.shape == (len(digits.train), want.shape[1]) and len(test) == len(digits.test)
    with pytest.raises(ConfigError, match="cannot cut"):
        ll.models.extract(model, digits.train, cut=len(model.features))


def test_a_cut_below_the_flatten_gives_flat_features_and_a_working_model(digits):
    torch.manual_seed(0)
    model = ll.models.cnn((1, 8, 8), 5)
    cut = len(model.features) - 4  # keeps Flatten, Unflatten, Conv2d, ReLU: (N, 32, 8, 8) maps
    maps = ll.models.extract(model, digits.test, cut=cut).x
    with torch.no_grad():
        want = model.features[:4](digits.test.x)
    assert want.dim() == 4 and torch.equal(maps, want.flatten(1))
    target = ll.data.select_classes(digits, [5, 6, 7, 8, 9])
    probe = feature_extraction(model, target, cut=cut, epochs=3, batch_size=64)
    with torch.no_grad():
        logits = model.eval()(target.test.x)
    assert logits.shape == (len(target.test), 5) and probe.acc > 0.5
    assert torch.equal(logits, probe.head(ll.models.extract(model, target.test).x))


def test_default_features_are_the_model_transfer_layer(digits):
    torch.manual_seed(0)
    model = ll.models.cnn((1, 8, 8), 10)
    train, _, _ = ll.transfer.features.cache(model, digits)
    assert torch.equal(train.x, ll.models.extract(model, digits.train, cut=2).x)
    assert ll.transfer.features.cache(model, digits, cut=0)[0].x.shape[1] == model.head.in_features
    target = ll.data.select_classes(digits, [5, 6, 7, 8, 9])
    conv, depth = ll.models.extract(model, target.test, cut=2).x, len(model.features)
    probe = feature_extraction(model, target, head="ncm")  # the head now sits on the conv trunk
    assert len(model.features) == depth - 2 + 1 and model.transfer_cut == 0 and probe.acc > 0.5  # + Flatten
    with torch.no_grad():
        assert torch.equal(model.eval()(target.test.x), probe.head(conv))

