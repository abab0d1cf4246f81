import pytest
import torch

from lifelong.data import Split
from lifelong.data.episodes import EpisodeSampler, class_split, parse_classes, rotate
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


def test_sample_with_classes_tells_the_class_behind_each_label(tagged_ds):
    sampler = EpisodeSampler(tagged_ds, classes=[2, 3, 5, 7], ways=2, shots=1, queries=2, seed=0)
    ep, classes = sampler.sample_with_classes(30)
    assert classes.shape == (30, 2) and torch.equal(ep.xs[:, :, 0].long(), classes)  # feature 0: the class
    assert len({tuple(sorted(c)) for c in classes.tolist()}) == 6  # every 2-class subset of the 4 drawn
    again = EpisodeSampler(tagged_ds, classes=[2, 3, 5, 7], ways=2, shots=1, queries=2, seed=0).sample(30)
    assert all(torch.equal(u, v) for u, v in zip(ep, again))  # the same episodes as `sample`


def test_splits_are_disjoint_and_parsed():
    # the default meta-test pool holds more classes than an episode, so test episodes are different tasks
    assert class_split(10) == class_split(10, ways=3) == ([0, 1, 2, 3], [4, 5], [6, 7, 8, 9])
    assert class_split(10, ways=4) == class_split(10, ways=5) == ([0, 1, 2, 3, 4], [], [5, 6, 7, 8, 9])
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


def _turns(images: torch.Tensor) -> torch.Tensor:
    """Quarter turns (counter-clockwise) of tagged images, from where their corner marker went."""
    corner = images.flatten(-3)[..., [0, 6, 8, 2]]  # (0,0) turned 0, 1, 2, 3 times lands here
    return corner.argmax(-1)


def test_rotate_turns_each_item_by_its_own_quarter_turns():
    x = torch.arange(2 * 5 * 4 * 4, dtype=torch.float32).view(5, 2, 4, 4)
    turns = torch.tensor([0, 1, 2, 3, 5])
    out = rotate(x, turns)
    for b, t in enumerate(turns.tolist()):
        assert torch.equal(out[b], torch.rot90(x[b], t, (-2, -1)))


def test_rotated_classes_are_classes_of_their_own(tagged_images):
    sampler = EpisodeSampler(tagged_images, classes=[0, 1], ways=5, shots=2, queries=3, seed=0, rotations=4)
    ep = sampler.sample(200)  # 5 ways from 2 classes x 4 turns
    xs, xq = ep.xs.view(200, 5, 2, 1, 3, 3), ep.xq.view(200, 5, 3, 1, 3, 3)
    turn_s, turn_q = _turns(xs), _turns(xq)
    cls_s, cls_q = xs[..., 0, 1, 1].long() // 20, xq[..., 0, 1, 1].long() // 20
    # one (class, turn) per way, shared by its support and query samples, distinct across the ways
    way = cls_s[..., :1] * 4 + turn_s[..., :1]
    assert torch.equal(cls_s * 4 + turn_s, way.expand(-1, -1, 2))
    assert torch.equal(cls_q * 4 + turn_q, way.expand(-1, -1, 3))
    assert all(len(w.unique()) == 5 for w in way.squeeze(-1))
    assert torch.bincount(way.flatten(), minlength=8).min() > 0.8 * 200 * 5 / 8  # every (class, turn) drawn
    assert torch.equal(_turns(EpisodeSampler(tagged_images, [0, 1], 2, 2, seed=0).sample(20).xs), torch.zeros(20, 4,
                       dtype=torch.long))  # no rotations: upright


def test_rotations_refused_for_non_square_inputs(tagged_ds, tagged_images):
    with pytest.raises(ConfigError, match="square images"):
        EpisodeSampler(tagged_ds, [0, 1], ways=2, shots=1, rotations=4)
    with pytest.raises(ConfigError, match="1 \\(none\\) or 4"):
        EpisodeSampler(tagged_images, [0, 1], ways=2, shots=1, rotations=2)
