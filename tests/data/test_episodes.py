import pytest
import torch

from lifelong.data import Split
from lifelong.data.episodes import EpisodeSampler, class_split, parse_classes
from lifelong.errors import ConfigError, DataError


def test_episodes_hold_distinct_samples_of_the_drawn_classes(tagged_ds):
    # tagged_ds: feature 0 is the data-set class, feature 1 a unique sample id; 20 samples per class
    ep = EpisodeSampler(tagged_ds, classes=[2, 3, 5, 7, 9], ways=3, shots=2, queries=4, seed=1).sample(50)
    assert ep.xs.shape == (50, 6, 2) and ep.xq.shape == (50, 12, 2)
    assert ep.ys[0].tolist() == [0, 0, 1, 1, 2, 2] and ep.yq[0].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for b in range(50):
        cls_s, cls_q = ep.xs[b, :, 0].long(), ep.xq[b, :, 0].long()
        ids = torch.cat([ep.xs[b, :, 1], ep.xq[b, :, 1]])
        assert len(ids.unique()) == 18  # no sample twice in an episode (support and query disjoint)
        way_class = cls_s.view(3, 2)[:, 0]
        assert len(way_class.unique()) == 3 and set(way_class.tolist()) <= {2, 3, 5, 7, 9}
        # a label means one class within the episode, in support and query alike
        assert torch.equal(cls_s, way_class[ep.ys[b]]) and torch.equal(cls_q, way_class[ep.yq[b]])


def test_labels_are_shuffled_across_episodes_and_all_classes_drawn(tagged_ds):
    ep = EpisodeSampler(tagged_ds, classes=range(10), ways=5, shots=1, queries=1, seed=0).sample(400)
    label0 = ep.xs[:, 0, 0].long()  # the class that label 0 stands for, per episode
    counts = torch.bincount(label0, minlength=10)
    assert (counts > 20).all()  # ~40 each: label 0 means every class about equally often
    assert (torch.bincount(ep.xs[:, :, 1].long().flatten(), minlength=200) > 0).sum() > 180  # most samples used


def test_same_seed_same_episodes_other_seed_others(tagged_ds):
    a = EpisodeSampler(tagged_ds, range(6), ways=2, shots=3, seed=7).sample(5)
    b = EpisodeSampler(tagged_ds, range(6), ways=2, shots=3, seed=7).sample(5)
    c = EpisodeSampler(tagged_ds, range(6), ways=2, shots=3, seed=8).sample(5)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a.xs, c.xs)


def test_splits_are_disjoint_and_parsed():
    assert class_split(10) == class_split(10, ways=2) == ([0, 1, 2, 3, 4, 5], [6, 7], [8, 9])
    assert class_split(10, ways=5) == ([0, 1, 2, 3, 4], [], [5, 6, 7, 8, 9])
    assert class_split(10, "0-4//5-9") == ([0, 1, 2, 3, 4], [], [5, 6, 7, 8, 9])
    assert parse_classes("0,2,5-6") == [0, 2, 5, 6]
    for bad in ("0-5/5-6/7-9", "0-4/5-9", "0-4//", "0-4//5-10", "a-b//1"):
        with pytest.raises(ConfigError):
            class_split(10, bad)


def test_refusals(tagged_ds):
    with pytest.raises(ConfigError, match="at least 5 classes"):
        EpisodeSampler(tagged_ds, [8, 9], ways=5, shots=1)
    with pytest.raises(DataError, match="fewer than"):
        EpisodeSampler(tagged_ds, [0, 1], ways=2, shots=10, queries=15)  # 20 samples per class
    with pytest.raises(ConfigError):
        EpisodeSampler(Split(torch.zeros(4, 1), torch.tensor([0, 0, 1, 1])), [0, 1], ways=2, shots=0)
