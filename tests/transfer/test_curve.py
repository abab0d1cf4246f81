"""Learning curves: few-shot sampling, records, pretraining and bad input."""

import pytest
import torch

import lifelong as ll
from lifelong.errors import ConfigError, DataError
from lifelong.experiment import CurveConfig, learning_curve
from lifelong.experiment.transfer import RECORD_KEYS
from lifelong.transfer import TRANSFER_METHODS, few_shot


def test_few_shot_takes_k_per_class_from_the_seed(digits):
    idx = few_shot(digits.train, 3, seed=1)
    assert torch.bincount(digits.train.y[idx]).tolist() == [3] * 10
    assert torch.equal(idx, few_shot(digits.train, 3, seed=1))
    assert not torch.equal(idx, few_shot(digits.train, 3, seed=2))
    assert len(few_shot(digits.train, None, 0)) == len(digits.train)
    with pytest.raises(DataError, match="fewer than the 1000 shots"):
        few_shot(digits.train, 1000, 0)


def test_curve_records_every_method_shot_and_seed():
    config = CurveConfig(source="digits:0-4", target="digits:5-9", shots=[2, None], method=list(TRANSFER_METHODS),
                         model="mlp", hidden=[32], source_epochs=3, batch_size=64, steps=5, seeds=2)
    records = learning_curve(config)
    assert [(r["seed"], r["shots"], r["method"]) for r in records] == [
        (s, k, m) for s in (0, 1) for k in (2, "all") for m in TRANSFER_METHODS]
    assert all(set(RECORD_KEYS) <= set(r) and 0 <= r["acc"] <= 1 for r in records)
    assert {r["n_train"] for r in records if r["shots"] == 2} == {10}
    assert all(r["source"] == "digits:0-4" and r["source_acc"] > 0.5 for r in records)


def test_draws_average_several_support_samples_per_seed():
    config = CurveConfig(source="digits:0-4", target="digits:5-9", shots=[1, None], method=["scratch", "ncm"],
                         model="cnn", source_epochs=1, batch_size=64, steps=2, draws=3)
    records = learning_curve(config)
    one = [r for r in records if r["shots"] == 1]
    assert all(len(r["accs"]) == r["draws"] == 3 and r["acc"] == pytest.approx(sum(r["accs"]) / 3) for r in one)
    assert len(set(one[1]["accs"])) > 1  # the draws differ (ncm has no other randomness)
    assert all(r["draws"] == 1 and len(r["accs"]) == 1 for r in records if r["shots"] == "all")
    assert {r["feature_cut"] for r in records} == {2}  # the cnn's conv trunk by default


def test_bad_configs(tmp_path):
    wide = ll.models.mlp(784, 5, hidden=(8,))  # a backbone for 28x28 inputs
    ll.models.save(tmp_path, wide, architecture={"model": "mlp", "input_shape": [1, 28, 28], "num_classes": 5,
                                                 "hidden": [8]}, classes=list("abcde"), normalisation={})
    for bad, match in ((dict(method=["magic"]), "magic"), (dict(shots=[0]), "shots"), (dict(steps=0), "steps"),
                       (dict(draws=0), "draws"), (dict(feature_cut=-1), "feature_cut"),
                       (dict(backbone=str(tmp_path)), "shape")):
        with pytest.raises(ConfigError, match=match):
            learning_curve(CurveConfig(**{"source": "digits:0-4", "target": "digits:5-9", **bad}))


def test_ncm_needs_the_source_of_a_saved_backbone(tmp_path):
    small = ll.models.mlp(64, 5, hidden=(8,))
    ll.models.save(tmp_path, small, architecture={"model": "mlp", "input_shape": [1, 8, 8], "num_classes": 5,
                                                  "hidden": [8]}, classes=list("abcde"), normalisation={})
    config = CurveConfig(target="digits:5-9", backbone=str(tmp_path), shots=[1], method=["ncm"], steps=1)
    with pytest.raises(ConfigError, match="no source data set"):
        learning_curve(config)
    config.method = ["probe"]
    assert learning_curve(config)[0]["feature_cut"] == 0
