import math

import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.meta import Sinusoid, fewshot, meta_benchmark


def test_sinusoid_tasks_follow_finn_et_al():
    ep = Sinusoid(shots=10, queries=30, seed=0).sample(500)
    assert ep.xs.shape == (500, 10, 1) and ep.xq.shape == (500, 30, 1)
    x, y = torch.cat([ep.xs, ep.xq], 1)[..., 0], torch.cat([ep.ys, ep.yq], 1)[..., 0]
    assert x.min() >= -5 and x.max() <= 5 and x.min() < -4.9 and x.max() > 4.9
    # each task is A sin(x - phi): recover (A cos phi, -A sin phi) by least squares on sin x, cos x
    basis = torch.stack([torch.sin(x), torch.cos(x)], -1).double()
    coef = torch.linalg.lstsq(basis, y.double().unsqueeze(-1)).solution[..., 0]
    assert torch.allclose(basis @ coef.unsqueeze(-1), y.double().unsqueeze(-1), atol=1e-5)  # a pure sinusoid
    amp, phase = coef.norm(dim=-1), torch.atan2(-coef[:, 1], coef[:, 0])
    assert amp.min() >= 0.1 - 1e-5 and amp.max() <= 5 + 1e-5 and amp.max() > 4.8
    assert phase.min() >= -1e-5 and phase.max() <= math.pi + 1e-5


def test_same_seed_same_tasks_and_test_tasks_differ_from_training_tasks():
    a, b = meta_benchmark("sinusoid", shots=5, seed=1), meta_benchmark("sinusoid", shots=5, seed=1)
    assert torch.equal(a.train.sample(3).xs, b.train.sample(3).xs)
    assert torch.equal(a.test.sample(3).yq, b.test.sample(3).yq)
    assert not torch.equal(a.train.sample(3).xs, a.test.sample(3).xs[:, :5])


def test_fewshot_pools_are_disjoint_and_pretraining_labels_dense(tagged_ds):
    tasks = fewshot(tagged_ds, ways=2, shots=1, queries=2, classes="1-3/4-5/6-9", seed=0)
    assert tasks.kind == "classification" and tasks.n_outputs == 2 and tasks.input_shape == (2,)
    train_classes = tasks.train.sample(100).xs[..., 0].unique().long().tolist()
    test_classes = tasks.test.sample(100).xq[..., 0].unique().long().tolist()
    assert set(train_classes) == {1, 2, 3} and set(test_classes) == {6, 7, 8, 9}
    assert tasks.valid is not None and set(tasks.valid.sample(10).xs[..., 0].unique().long().tolist()) == {4, 5}
    pool = tasks.pool  # every sample (train and test splits) of the meta-train classes, labels 0..2
    assert len(pool) == 60 and torch.equal(pool.y, pool.x[:, 0].long() - 1)


def test_unknown_benchmark_and_too_many_ways(tagged_ds):
    with pytest.raises(ConfigError, match="unknown meta-learning benchmark"):
        meta_benchmark("omniglot")
    with pytest.raises(ConfigError, match="at least 5 classes"):
        fewshot(tagged_ds, ways=5, classes="0-5/6-7/8-9")


def test_without_validation_classes_the_meta_train_classes_held_out_samples_validate(tagged_ds):
    tasks = fewshot(tagged_ds, ways=2, shots=1, queries=2, classes="0-4//5-9", seed=0)
    held_out = set(tagged_ds.test.x[:, 1].long().tolist())  # feature 1: a unique sample id
    seen = set(torch.cat([tasks.train.sample(300).xs, tasks.train.sample(300).xq], 1)[..., 1].long().flatten().tolist())
    ep = tasks.valid.sample(300)
    checked = set(torch.cat([ep.xs, ep.xq], 1)[..., 1].long().flatten().tolist())
    assert seen.isdisjoint(held_out) and checked <= held_out  # meta-training never sees a validation sample
    assert set(ep.xs[..., 0].unique().long().tolist()) == {0, 1, 2, 3, 4}
    assert set(tasks.pool.x[:, 1].long().tolist()).isdisjoint(held_out) and len(tasks.pool) == 75  # pretrain too
    assert tasks.info["classes"]["valid"] == "held-out samples of the meta-train classes"


def test_rotated_benchmark_turns_meta_train_classes_only(tagged_images):
    tasks = fewshot(tagged_images, ways=3, shots=1, queries=2, classes="0-1//2-5", seed=0, rotations=4)
    assert tasks.rotations == 4 and tasks.info["rotations"] == 4
    turned = lambda x: (x[..., 0, 0, 0] == 0).any()  # noqa: E731  (the marker left the top-left corner)
    assert turned(tasks.train.sample(50).xs) and not turned(tasks.test.sample(50).xs)
    assert turned(tasks.valid.sample(50).xs)  # held-out samples of the meta-train classes, as meta-trained
    with pytest.raises(ConfigError, match="sinusoid tasks cannot be rotated"):
        meta_benchmark("sinusoid", rotations=4)


def test_warns_when_the_meta_test_pool_holds_exactly_ways_classes(tagged_ds, recwarn):
    with pytest.warns(UserWarning, match=r"meta-test pool \[8, 9\] holds exactly 2 classes"):
        fewshot(tagged_ds, ways=2, shots=1, queries=2, classes="0-5/6-7/8-9")
    fewshot(tagged_ds, ways=2, shots=1, queries=2)  # the default split: a 4-class meta-test pool, no warning
    assert not [w for w in recwarn if "meta-test pool" in str(w.message)]
