"""Data that would train on garbage or drop samples silently is refused at load, naming what is wrong
(issue 23): IDX labels and images, CSV labels, arrays, image folders, class orders."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong.data import BENCHMARKS, arrays, csv, fashion_mnist, image_folder, split
from lifelong.data import sources
from lifelong.errors import ConfigError, DataError

from ..conftest import NO_FMNIST, pytest_runtest_setup
from .test_sources import _fake_fmnist, _folder, _png

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C,
         np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx(a: np.ndarray) -> bytes:
    """An IDX file of `a` in its own dtype (big-endian, as the format wants)."""
    return (struct.pack(">BBBB", 0, 0, CODES[a.dtype], a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
            + a.astype(a.dtype.newbyteorder(">")).tobytes())


def replace(root: Path, stem: str, a: np.ndarray) -> None:
    for old in root.glob(stem + "*"):
        old.unlink()
    (root / stem).write_bytes(idx(a))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
def test_idx_labels_below_zero(tmp_path, dtype):
    _fake_fmnist(tmp_path)
    labels = (np.arange(20) % 10).astype(dtype)
    labels[3] = -1
    replace(tmp_path, "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match=r"train labels in .* go down to -1, expected 0..9"):
        fashion_mnist(tmp_path)


def test_idx_labels_of_a_float_type(tmp_path):
    _fake_fmnist(tmp_path)
    replace(tmp_path, "t10k-labels-idx1-ubyte", (np.arange(10) % 10).astype(np.float32))
    with pytest.raises(DataError, match="test labels .* float32 numbers, expected whole class ids"):
        fashion_mnist(tmp_path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_idx_float_images_with_nan(tmp_path, bad):
    _fake_fmnist(tmp_path)
    images = np.zeros((20, 28, 28), np.float32)
    images[7, 3, 3] = bad
    replace(tmp_path, "train-images-idx3-ubyte", images)
    with pytest.raises(DataError, match="train images .* NaN or infinite values \\(first in image 7\\)"):
        fashion_mnist(tmp_path)


def test_idx_float_images_that_are_finite_load(tmp_path):
    _fake_fmnist(tmp_path)
    replace(tmp_path, "train-images-idx3-ubyte", np.full((20, 28, 28), 255.0, np.float32))
    x, _ = fashion_mnist(tmp_path, normalize=False).train.batch(torch.arange(2))
    assert torch.equal(x, torch.ones(2, 1, 28, 28))


def test_csv_numeric_labels_are_compared_as_numbers(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("f,label\n" + "".join(f"{i},{lab}\n" for i, lab in enumerate(["1", "1.0", "01", "2", "2.50"] * 4)))
    ds = csv(path)
    assert ds.class_names == ["1", "2", "2.5"]
    y = torch.cat([ds.train.y, ds.test.y])
    assert torch.bincount(y).tolist() == [12, 4, 4]
    test = tmp_path / "t.csv"
    test.write_text("f,label\n0,1.00\n1,2.5\n")
    assert csv(path, test_path=test).test.y.tolist() == [0, 2]


def test_csv_labels_that_are_not_all_numbers_stay_text(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("f,label\n" + "".join(f"{i},{lab}\n" for i, lab in enumerate(["1", "1.0", "cat"] * 4)))
    assert csv(path).class_names == ["1", "1.0", "cat"]


def test_csv_with_two_label_columns(tmp_path):
    (tmp_path / "d.csv").write_text("label,f,label\na,1,b\nb,2,a\n")
    with pytest.raises(DataError, match="has 2 columns named 'label'"):
        csv(tmp_path / "d.csv")


def test_csv_empty_label_names_its_line(tmp_path):
    (tmp_path / "d.csv").write_text("f,label\n1,a\n\n2,b\n3, \n")  # a blank line counts as a line
    with pytest.raises(DataError, match=r"d.csv, line 5: the 'label' field is empty"):
        csv(tmp_path / "d.csv")


def test_arrays_without_features():
    with pytest.raises(DataError, match=r"no features \(shape \(6, 0\)\)"):
        arrays(np.zeros((6, 0)), np.arange(6) % 2)


def test_uint64_labels_name_their_real_value():
    x = np.random.default_rng(0).random((6, 3))
    for top in (2**64 - 1, 2**63):  # past int64: they would wrap round to negative ids
        with pytest.raises(DataError, match=f"labels go up to {top} \\(torch.uint64\\)"):
            arrays(x, np.array([0, 1, 0, 1, 0, top], dtype=np.uint64))
    assert arrays(x, np.array([0, 1, 0, 1, 0, 1], dtype=np.uint64)).num_classes == 2


def test_image_folder_test_classes_missing_from_training(tmp_path):
    _folder(tmp_path / "train", n_per=2)
    _folder(tmp_path / "test", n_per=1, classes=("cat", "dog", "emu", "fox"))
    with pytest.raises(DataError, match=r"test has classes that .*train has not \(emu, fox\)"):
        image_folder(tmp_path)


@pytest.mark.parametrize("size", [(-4, 4), (0, 4), (4,), (4.0, 4), "28"])
def test_image_folder_bad_size(tmp_path, size):
    _folder(tmp_path, n_per=2)
    with pytest.raises(ConfigError, match="`size` must be \\(height, width\\)"):
        image_folder(tmp_path, size=size)


@pytest.mark.parametrize("scale", [1.5, 3])  # over the limit (Pillow warns), over twice the limit (Pillow raises)
def test_image_folder_decompression_bomb(tmp_path, monkeypatch, scale):
    from PIL import Image

    _folder(tmp_path, n_per=2)
    _png(tmp_path / "cat" / "big.png", np.zeros((10, 10, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(100 / scale))  # 10x10 = 100 pixels
    with pytest.raises(DataError, match="big.png has more pixels than Pillow's decompression-bomb limit"):
        image_folder(tmp_path)


def test_class_order_must_name_every_class(tagged_ds):
    with pytest.raises(DataError, match=r"class_order must list all 10 classes of tagged once, got 4 \(missing "
                                        r"\[4, 5, 6, 7, 8, 9\]\)"):
        split(tagged_ds, 2, class_order=[0, 1, 2, 3])


@pytest.mark.parametrize("name", ["permuted-digits"])
def test_class_order_on_a_benchmark_that_is_not_split(name):
    with pytest.raises(ConfigError, match="`class_order` orders the classes of split benchmarks; this one is "
                                          "permuted"):
        BENCHMARKS.get(name).factory.make(class_order=list(range(10)))


def test_tests_needing_fashion_mnist_skip_without_it(monkeypatch, tmp_path):
    """The `fmnist` marker (tests/conftest.py): a skip that says why where no folder holds the data set."""

    class Item:
        def __init__(self, marked: bool) -> None:
            self.marked = marked

        def get_closest_marker(self, name: str) -> object:
            return object() if self.marked and name == "fmnist" else None

    monkeypatch.setattr(sources, "fashion_mnist_dirs", lambda: [tmp_path / "empty", tmp_path / "none"])
    with pytest.raises(pytest.skip.Exception, match="Fashion-MNIST is not installed"):
        pytest_runtest_setup(Item(True))
    pytest_runtest_setup(Item(False))  # unmarked tests run
    _fake_fmnist(tmp_path / "none")
    pytest_runtest_setup(Item(True))  # found: runs
    assert "make data" in NO_FMNIST
