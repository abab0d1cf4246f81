"""RunConfig: the validation protocol used to choose hyper-parameters."""

import pytest
import torch

import lifelong as ll
from lifelong.experiment import RunConfig, make_stream, run


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.flatten(1)}


def test_validation_replaces_the_test_split_by_held_out_training_data():
    config = RunConfig(benchmark="split-digits", validation=0.25)
    full, held = make_stream(RunConfig(benchmark="split-digits"), 0), make_stream(config, 0)
    for f, h in zip(full, held):
        original = rows(f.train.x)
        assert rows(h.test.x) <= original and rows(h.train.x) <= original  # both from training data
        assert not rows(h.test.x) & rows(h.train.x)
        assert not rows(h.test.x) & rows(f.test.x)  # no test sample is ever evaluated
        assert len(h.test) == pytest.approx(0.25 * len(f.train), abs=len(f.classes))
        assert h.valid is None


def test_validation_run_is_labelled_and_bad_fractions_refused():
    rec = run(RunConfig(benchmark="split-digits", strategy=["naive"], validation=0.2, n_tasks=2))[0]
    assert rec["evaluated_on"] == "validation"
    assert run(RunConfig(benchmark="split-digits", strategy=["naive"], n_tasks=2))[0]["evaluated_on"] == "test"
    for bad in (-0.1, 1.0):
        with pytest.raises(ll.ConfigError, match="`validation`"):
            RunConfig(validation=bad).validate()
