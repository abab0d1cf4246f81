import math

import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.meta import evaluate, meta_test_episodes
from lifelong.experiment.meta import MetaConfig, make_learner, pooled, run_meta, summary


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


def test_image_benchmarks_default_to_conv4_and_select_on_validation_episodes():
    config = MetaConfig(benchmark="digits-fewshot", method=["protonet"], ways=2, shots=[1], classes="0-3/4-5/6-9",
                        iterations=3, valid_every=2, valid_tasks=3, eval_tasks=4, steps=[1])
    records = run_meta(config)
    assert [r["method"] for r in records] == ["protonet", "baseline", "finetune"]
    assert {r["model"] for r in records} == {"conv4"}
    for r in records:
        assert [i for i, *_ in r["selection"]["curve"]] == [0, 2, 3] and r["selection"]["tasks"] == 3
        assert r["selection"]["kept"] in (0, 2, 3)
    assert MetaConfig().model_name() == "mlp" and MetaConfig(benchmark="mnist1d-fewshot").model_name() == "mlp"
    config.valid_every = 0
    assert all(r["selection"] is None for r in run_meta(config))
    with pytest.raises(ConfigError, match="`valid_every`"):
        MetaConfig(valid_every=-1).validate()


def test_every_step_count_and_method_meets_the_same_meta_test_episodes():
    config = MetaConfig(benchmark="digits-fewshot", method=["scratch"], ways=2, shots=[1], iterations=1,
                        valid_every=0, eval_tasks=40, steps=[0, 0, 1])
    records = run_meta(config)
    first, again = records[0], records[1]  # scratch at 0 steps twice: the same episodes, the same figures
    assert (first["acc"], first["std"], first["by_classes"]) == (again["acc"], again["std"], again["by_classes"])
    # the default split's meta-test pool, classes 6-9: the 40 tasks fall into its 6 two-class subsets
    assert set(first["by_classes"]) == {"6,7", "6,8", "6,9", "7,8", "7,9", "8,9"}
    alone = make_learner("scratch", config, 1, 0)  # a later method of the seed: the same episodes again
    episodes, classes = meta_test_episodes(alone.tasks, 40)
    assert evaluate(alone, 1, episodes=episodes, classes=classes)["mean"] == records[2]["acc"]
    header, rows = summary(records)
    assert header[-1] == "Class subsets: n, min-max %" and rows[0][-1].startswith("6: ")
