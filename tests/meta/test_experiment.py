import math

import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.meta.experiment import MetaConfig, make_learner, pooled, summary


def test_pooled_ci_is_the_ci_of_all_tasks_of_all_seeds():
    a, b = torch.tensor([0.2, 0.4, 0.9, 0.5]).double(), torch.tensor([0.6, 0.7, 0.1, 0.8]).double()
    recs = [{"metric": "acc", "acc": float(v.mean()), "std": float(v.std()), "tasks": 4} for v in (a, b)]
    every = torch.cat([a, b])
    mean, ci = pooled(recs)
    assert math.isclose(mean, float(every.mean())) and math.isclose(ci, 1.96 * float(every.std()) / math.sqrt(8))
    header, rows = summary([{**r, "method": "m", "shots": 1, "steps": 10, "train_seconds": 2.0} for r in recs])
    assert header[4] == "Acc % (95% CI)"
    assert rows == [["m", "1", "10", "2", f"{mean * 100:.2f} ± {ci * 100:.2f}", "2.0"]]


def test_classification_defaults_apply_unless_given():
    config = MetaConfig(benchmark="digits-fewshot", ways=3, hidden=[8])
    assert make_learner("maml", config, 1, 0).inner_lr == 0.1
    assert make_learner("maml", MetaConfig(hidden=[8]), 1, 0).inner_lr == 0.01  # sinusoid: the paper's
    config.inner_lr = 0.3
    learner = make_learner("reptile", config, 1, 0)
    assert (learner.inner_lr, learner.inner_steps) == (0.3, 5)


@pytest.mark.parametrize("field, value", [("steps", [-1]), ("ways", 0), ("method", []), ("iterations", 0),
                                          ("hidden", [0])])
def test_validate_refuses(field, value):
    with pytest.raises(ConfigError):
        MetaConfig(**{field: value}).validate()
