"""Data that streams (issue 20): uint8 storage converted per batch, task transforms applied per batch,
shared storage across tasks, lazy concatenation, devices, and image folders decoded by worker processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lifelong.data import (Concat, Dataset, Permute, Scale, Split, fashion_mnist, image_folder, permuted, rotate,
                           rotated, stratified_split)
from lifelong.data.episodes import EpisodeSampler
from lifelong.data.images import LazyImages
from lifelong.data.sources import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from lifelong.errors import ConfigError

from .test_sources import _fake_fmnist, _folder


@pytest.fixture(scope="module")
def fmnist_raw(tmp_path_factory):
    """A small Fashion-MNIST (IDX files of 60 + 30 random images) and its raw uint8 pixels."""
    root = tmp_path_factory.mktemp("fm")
    data = _fake_fmnist(root, n_train=60, n_test=30)
    return fashion_mnist(root=root), data


def _old_images(a: np.ndarray) -> torch.Tensor:
    """The float conversion `fashion_mnist` applied to a whole split before issue 20."""
    x = torch.from_numpy(a).float().div_(255.0).unsqueeze(1)
    return x.sub_(FASHION_MNIST_MEAN).div_(FASHION_MNIST_STD)


def test_fashion_mnist_keeps_uint8_and_a_batch_is_the_old_float_arithmetic_bit_for_bit(fmnist_raw):
    ds, data = fmnist_raw
    assert ds.train.x.dtype == torch.uint8 and ds.test.x.dtype == torch.uint8
    old = _old_images(data["train-images-idx3-ubyte"])
    idx = torch.randperm(60, generator=torch.Generator().manual_seed(0))[:17]
    x, y = ds.train.batch(idx)
    assert x.dtype == torch.float32 and torch.equal(x, old[idx])
    assert torch.equal(y, torch.from_numpy(data["train-labels-idx1-ubyte"]).long()[idx])
    assert torch.equal(ds.test.inputs(), _old_images(data["t10k-images-idx3-ubyte"]))


def test_a_permuted_stream_of_many_tasks_shares_the_data_sets_storage(fmnist_raw):
    ds, data = fmnist_raw
    s = permuted(ds, 50, seed=3, valid_fraction=0.2)
    assert len({t.train.x.data_ptr() for t in s}) == 1 and len({t.test.x.data_ptr() for t in s}) == 1
    assert len({t.valid.x.data_ptr() for t in s}) == 1  # the validation split is cut once
    assert s[7].test.x is ds.test.x and s[7].test.x.dtype == torch.uint8
    # each task's batch is what the materialised task gave before: old float data, permuted, then cut
    old = Split(_old_images(data["train-images-idx3-ubyte"]), ds.train.y)
    for t in (0, 1, 49):
        perm = torch.tensor(s.info["permutations"][t])
        fn = Permute(perm)
        train, valid = stratified_split(Split(fn(old.x), old.y), 0.2, 3)
        assert torch.equal(s[t].train.inputs(), train.x) and torch.equal(s[t].valid.inputs(), valid.x)
        assert torch.equal(s[t].train.y, train.y)


def test_rotation_of_a_batch_equals_rotation_of_the_whole_set_row_by_row(fmnist_raw):
    ds, data = fmnist_raw
    s = rotated(ds, 3, degrees=[0.0, 30.0, 117.0])
    whole = _old_images(data["t10k-images-idx3-ubyte"])
    g = torch.Generator().manual_seed(1)
    for task, angle in zip(s, s.info["angles"]):
        expected = rotate(whole, angle)
        for idx in torch.randperm(30, generator=g).split(7):
            assert torch.equal(task.test.batch(idx)[0], expected[idx])


def test_cat_of_differently_transformed_splits_loads_each_part_through_its_own_transform(fmnist_raw):
    ds, _ = fmnist_raw
    s = permuted(ds, 3, seed=0, scenario="task")
    parts = [t.train for t in s]
    joint = Split.cat(parts)
    assert isinstance(joint.x, Concat) and len(joint) == 180
    expected = torch.cat([p.inputs() for p in parts])
    assert torch.equal(joint.y, torch.cat([p.y for p in parts]))
    idx = torch.randperm(180, generator=torch.Generator().manual_seed(2))
    batches = list(joint.batches(idx.split(32)))
    assert torch.equal(torch.cat([x for x, _ in batches]), expected[idx])
    assert torch.equal(torch.cat([y for _, y in batches]), joint.y[idx])
    sub = joint.subset(idx[:50])  # a view of the concatenation, still not materialised
    assert isinstance(sub.x, Concat) and torch.equal(sub.inputs(), expected[idx[:50]])
    assert torch.equal(Split.cat([sub, joint]).inputs(), torch.cat([expected[idx[:50]], expected]))
    # one shared transform: concatenated as stored (uint8), the transform kept
    same = Split.cat([ds.train, ds.test])
    assert same.x.dtype == torch.uint8 and same.transform is ds.train.transform
    assert torch.equal(same.inputs(), torch.cat([ds.train.inputs(), ds.test.inputs()]))


def test_to_moves_transforms_and_moves_shared_storage_once(fmnist_raw):
    ds, _ = fmnist_raw
    s = permuted(ds, 2, seed=0)
    on_cpu = s[1].train.to("cpu")
    assert on_cpu.x is ds.train.x and torch.equal(on_cpu.inputs(), s[1].train.inputs())
    a, b = s[0].train.to("meta"), s[1].train.to("meta")
    assert a.x.device.type == "meta" and a.x is b.x  # one copy of the shared images per device
    assert b.transform.steps[-1].perm.device.type == "meta"
    joint = Split.cat([s[0].test, s[1].test]).to("meta")
    assert all(x.device.type == "meta" for x, _ in joint.x.parts)


def test_permuted_tasks_of_a_lazy_image_folder(tmp_path):
    _folder(tmp_path, n_per=3)
    ds = image_folder(tmp_path, test_fraction=0.5)
    s = permuted(ds, 2, seed=0)
    assert isinstance(s[1].train.x, LazyImages)
    perm = torch.tensor(s.info["permutations"][1])
    x = ds.train.inputs()
    assert torch.equal(s[1].train.inputs(), x.flatten(1)[:, perm].reshape(x.shape))


def test_image_folder_workers_decode_the_same_batches_in_order(tmp_path):
    _folder(tmp_path, n_per=6)
    serial, parallel = image_folder(tmp_path, seed=1), image_folder(tmp_path, seed=1, workers=2)
    chunks = list(torch.randperm(len(serial.train), generator=torch.Generator().manual_seed(0)).split(3))
    chunks.insert(1, torch.zeros(0, dtype=torch.long))  # a rank's empty share of a last small batch
    one = list(serial.train.batches(chunks))
    two = list(parallel.train.batches(iter(chunks)))
    assert len(one) == len(two) == len(chunks)
    for (x1, y1), (x2, y2), idx in zip(one, two, chunks):
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(x1, serial.train.batch(idx)[0])
    assert parallel.train.subset(torch.tensor([0, 1])).x.workers == 2
    with pytest.raises(ConfigError, match="`workers`"):
        image_folder(tmp_path, workers=-1)


def test_episodes_from_stored_uint8_equal_episodes_from_the_converted_floats(fmnist_raw):
    ds, data = fmnist_raw
    floats = Dataset("old", Split(_old_images(data["train-images-idx3-ubyte"]), ds.train.y),
                     Split(_old_images(data["t10k-images-idx3-ubyte"]), ds.test.y), ds.class_names, ds.input_shape)
    a = EpisodeSampler(ds, [0, 1, 2, 3], 2, 2, 3, seed=4, rotations=4).sample(3)
    b = EpisodeSampler(floats, [0, 1, 2, 3], 2, 2, 3, seed=4, rotations=4).sample(3)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_scale_without_mean_only_divides():
    x = torch.tensor([[0, 51, 255]], dtype=torch.uint8)
    assert torch.equal(Scale(255.0)(x), x.float() / 255.0)
