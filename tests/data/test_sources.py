"""Data sources: bundled/generated sets, user arrays, CSV files, image folders and Fashion-MNIST."""

from __future__ import annotations

import gzip
import random
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong.data import arrays, csv, digits, fashion_mnist, image_folder, mnist1d
from lifelong.data.images import LazyImages
from lifelong.data.sources import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from lifelong.errors import DataError

REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------- digits


def test_digits_shapes_and_values(digits_ds):
    ds = digits_ds
    assert ds.name == "digits"
    assert ds.input_shape == (1, 8, 8)
    assert ds.num_classes == 10 and ds.class_names == [str(c) for c in range(10)]
    for part in (ds.train, ds.test):
        assert part.x.shape[1:] == (1, 8, 8)
        assert part.x.dtype == torch.float32 and part.y.dtype == torch.int64
        assert float(part.x.min()) >= 0.0 and float(part.x.max()) <= 1.0
        assert sorted(part.y.unique().tolist()) == list(range(10))
    assert float(ds.train.x.max()) == 1.0  # scaled by 16, not 255


def test_digits28_is_each_digit_resized_on_a_black_canvas_on_fashion_mnists_scale(digits_ds):
    from lifelong.data import digits28

    big = digits28()
    assert big.input_shape == (1, 28, 28) and big.class_names == digits_ds.class_names
    black = -FASHION_MNIST_MEAN / FASHION_MNIST_STD
    for small, part in ((digits_ds.train, big.train), (digits_ds.test, big.test)):
        assert torch.equal(part.y, small.y) and part.x.shape == (len(small), 1, 28, 28)
        pixels = part.x * FASHION_MNIST_STD + FASHION_MNIST_MEAN  # back to [0, 1]
        inner = pixels[:, :, 4:24, 4:24]
        assert torch.allclose(pixels.sum((1, 2, 3)), inner.sum((1, 2, 3)), atol=1e-3)  # the border is black
        assert part.x.min() == pytest.approx(black, abs=1e-6)
        # averaging each 20x20 image back to 8x8 cells (2.5 px) keeps its strokes: close to the source digit
        back = torch.nn.functional.interpolate(inner, size=(8, 8), mode="area")
        assert (back - small.x).abs().mean() < 0.1


def test_digits_stratified_split_is_a_partition(digits_ds):
    from sklearn.datasets import load_digits

    ds = digits_ds
    assert len(ds.train) + len(ds.test) == 1797
    assert 0.24 < len(ds.test) / 1797 < 0.26
    full = torch.from_numpy(load_digits().target)
    for c in range(10):
        n = int((full == c).sum())
        assert int((ds.test.y == c).sum()) == round(n * 0.25)
        assert int((ds.train.y == c).sum()) == n - round(n * 0.25)
    # the (image, label) pairs of train and test together are exactly the original samples
    bunch = load_digits()
    original = Counter((img.astype(np.float32).tobytes(), int(t)) for img, t in zip(bunch.images / 16.0, bunch.target))
    got = Counter(
        (x.numpy().reshape(8, 8).tobytes(), int(y))
        for part in (ds.train, ds.test) for x, y in zip(part.x, part.y)
    )
    assert got == original


def test_digits_seed_changes_split_but_not_sizes(digits_ds):
    other = digits(seed=1)
    assert len(other.test) == len(digits_ds.test)
    assert not torch.equal(other.test.x, digits_ds.test.x)


# --------------------------------------------------------------------------- mnist1d


@pytest.fixture(scope="module")
def mnist1d_ds():
    return mnist1d()


def test_mnist1d_defaults(mnist1d_ds):
    ds = mnist1d_ds
    assert (len(ds.train), len(ds.test)) == (4000, 1000)
    assert ds.input_shape == (1, 40)
    assert ds.train.x.shape == (4000, 1, 40) and ds.test.x.shape == (1000, 1, 40)
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    assert ds.num_classes == 10
    assert sorted(ds.train.y.unique().tolist()) == list(range(10))
    assert torch.isfinite(ds.train.x).all()


def test_mnist1d_deterministic_per_seed():
    a, b, c = mnist1d(num_samples=100, seed=7), mnist1d(num_samples=100, seed=7), mnist1d(num_samples=100, seed=8)
    assert (len(a.train), len(a.test)) == (80, 20)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)
    assert torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.train.x, c.train.x)


def _np_state_equal(s1, s2) -> bool:
    return all(np.array_equal(u, v) if isinstance(u, np.ndarray) else u == v for u, v in zip(s1, s2))


def test_mnist1d_leaves_global_rngs_alone():
    np.random.seed(1234)
    random.seed(99)
    np_before, py_before = np.random.get_state(), random.getstate()
    mnist1d(num_samples=100, seed=3)
    assert _np_state_equal(np_before, np.random.get_state())
    assert random.getstate() == py_before
    # and the next draw is the one the caller's seed implies
    expected = np.random.RandomState(1234).rand()
    assert np.random.rand() == expected


# --------------------------------------------------------------------------- arrays


def _xy(n_per=10, c=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(c), n_per)
    return rng.normal(size=(len(y), d)).astype(np.float32), y


def test_arrays_valid_call_gives_stratified_split():
    x, y = _xy(n_per=10, c=3)
    ds = arrays(x, y, test_fraction=0.2, seed=0)
    assert ds.num_classes == 3 and ds.class_names == ["0", "1", "2"]
    assert ds.input_shape == (4,)
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    assert torch.bincount(ds.test.y, minlength=3).tolist() == [2, 2, 2]
    assert torch.bincount(ds.train.y, minlength=3).tolist() == [8, 8, 8]
    rows = {tuple(r) for r in ds.train.x.tolist()} | {tuple(r) for r in ds.test.x.tolist()}
    assert len(rows) == 30  # every sample is in exactly one part


def test_arrays_with_given_test_set_and_names():
    x, y = _xy(n_per=4, c=3)
    xs, ys = _xy(n_per=2, c=3, seed=1)
    ds = arrays(x, y, xs, ys, class_names=["a", "b", "c"])
    assert ds.class_names == ["a", "b", "c"]
    assert torch.equal(ds.test.x, torch.from_numpy(xs)) and torch.equal(ds.test.y, torch.from_numpy(ys))
    assert len(ds.train) == 12


def test_arrays_accepts_tensors_and_int_inputs():
    x, y = _xy()
    ds = arrays(torch.from_numpy((x * 10).astype(np.int64)), torch.from_numpy(y))
    assert ds.train.x.dtype == torch.float32


def _bad(kind):
    x, y = _xy(n_per=10, c=3)
    if kind == "nan":
        x[5, 1] = np.nan
        return (x, y), {}, ["NaN", "sample 5"]
    if kind == "inf":
        x[7, 0] = -np.inf
        return (x, y), {}, ["infinite", "sample 7"]
    if kind == "float-labels":
        return (x, y.astype(np.float64)), {}, ["integers", "float"]
    if kind == "2d-labels":
        return (x, y.reshape(-1, 1)), {}, ["1-D", "(30, 1)"]
    if kind == "length-mismatch":
        return (x, y[:-1]), {}, ["30 samples", "29"]
    if kind == "negative-label":
        y = y.copy()
        y[0] = -1
        return (x, y), {}, ["-1", "expected 0..2"]
    if kind == "label-too-big":
        return (x, y), {"num_classes": 2}, ["0..2", "expected 0..1"]
    if kind == "empty-class":
        return (x, y), {"num_classes": 4}, ["[3]", "no training samples"]
    if kind == "x-test-shape":
        return (x, y, np.zeros((3, 5), np.float32), np.arange(3)), {}, ["(5,)", "(4,)"]
    if kind == "only-x-test":
        return (x, y, x), {}, ["x_test and y_test"]
    if kind == "only-y-test":
        return (x, y), {"y_test": y}, ["x_test and y_test"]
    if kind == "1d-inputs":
        return (x[:, 0], y), {}, ["(samples, features...)"]
    if kind == "empty":
        return (np.zeros((0, 3), np.float32), np.zeros(0, np.int64)), {}, ["empty"]
    if kind == "test-label-out-of-range":
        return (x, y, x[:2], np.array([0, 3])), {}, ["test labels", "expected 0..2"]
    if kind == "names-count":
        return (x, y), {"num_classes": 3, "class_names": ["a", "b"]}, ["2 class names", "3 classes"]
    if kind == "bool-labels":
        return (x[:20], np.array([True, False] * 10)), {}, ["integers"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "nan", "inf", "float-labels", "2d-labels", "length-mismatch", "negative-label", "label-too-big",
    "empty-class", "x-test-shape", "only-x-test", "only-y-test", "1d-inputs", "empty",
    "test-label-out-of-range", "names-count", "bool-labels",
])
def test_arrays_rejects_bad_input(kind):
    args, kwargs, words = _bad(kind)
    with pytest.raises(DataError) as info:
        arrays(*args, **kwargs)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_arrays_test_set_may_lack_classes():
    x, y = _xy(n_per=4, c=3)
    ds = arrays(x, y, x[:2], np.array([0, 0]))
    assert ds.num_classes == 3


# --------------------------------------------------------------------------- csv


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _csv_rows(labels, n_per=5, extra=""):
    lines = ["f1,species,f2" + extra]
    k = 0
    for lab in labels:
        for _ in range(n_per):
            lines.append(f"{k}.5,{lab},{-k}")
            k += 1
    return "\n".join(lines) + "\n"


def test_csv_string_labels(tmp_path):
    path = _write(tmp_path / "iris.csv", _csv_rows(["versicolor", "setosa", "virginica"]))
    ds = csv(path, label_column="species", test_fraction=0.2)
    assert ds.name == "iris"
    assert ds.class_names == ["setosa", "versicolor", "virginica"]
    assert ds.input_shape == (2,) and ds.train.x.dtype == torch.float32
    assert len(ds.train) + len(ds.test) == 15
    assert torch.bincount(ds.test.y, minlength=3).tolist() == [1, 1, 1]
    # features are the non-label columns, in order; labels follow the sorted names
    allx = torch.cat([ds.train.x, ds.test.x])
    ally = torch.cat([ds.train.y, ds.test.y])
    row = (allx[:, 0] == 0.5).nonzero().flatten()
    assert len(row) == 1
    assert allx[row[0]].tolist() == [0.5, 0.0]
    assert ds.class_names[int(ally[row[0]])] == "versicolor"
    row = (allx[:, 0] == 14.5).nonzero().flatten()
    assert allx[row[0]].tolist() == [14.5, -14.0]
    assert ds.class_names[int(ally[row[0]])] == "virginica"


def test_csv_numeric_labels_sort_numerically(tmp_path):
    path = _write(tmp_path / "n.csv", _csv_rows(["10", "2", "1"]))
    ds = csv(path, label_column="species")
    assert ds.class_names == ["1", "2", "10"]


def test_csv_with_test_file(tmp_path):
    train = _write(tmp_path / "train.csv", _csv_rows(["b", "a"], n_per=3))
    test = _write(tmp_path / "test.csv", "f1,species,f2\n1,b,2\n3,b,4\n")
    ds = csv(train, label_column="species", test_path=test)
    assert ds.class_names == ["a", "b"]
    assert len(ds.train) == 6
    assert ds.test.y.tolist() == [1, 1]
    assert ds.test.x.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_csv_non_numeric_feature_names_line_and_column(tmp_path):
    path = _write(tmp_path / "bad.csv", "f1,label,f2\n1,a,2\n3,b,oops\n")
    with pytest.raises(DataError) as info:
        csv(path)
    msg = str(info.value)
    assert str(path) in msg and "line 3" in msg and "'f2'" in msg and "'oops'" in msg


def test_csv_missing_label_column(tmp_path):
    path = _write(tmp_path / "x.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"no column 'label'.*a, b"):
        csv(path)


def test_csv_row_with_too_few_fields(tmp_path):
    path = _write(tmp_path / "x.csv", "a,label,b\n1,x,2\n1,y\n")
    with pytest.raises(DataError) as info:
        csv(path)
    assert "line 3" in str(info.value) and "2 fields" in str(info.value) and str(path) in str(info.value)


def test_csv_header_only(tmp_path):
    path = _write(tmp_path / "x.csv", "a,label,b\n")
    with pytest.raises(DataError, match="no data rows"):
        csv(path)


def test_csv_only_label_column(tmp_path):
    path = _write(tmp_path / "x.csv", "label\na\nb\n")
    with pytest.raises(DataError, match="no feature columns"):
        csv(path)


def test_csv_missing_file(tmp_path):
    path = tmp_path / "none.csv"
    with pytest.raises(DataError) as info:
        csv(path)
    assert str(path) in str(info.value)


def test_csv_test_path_unknown_label(tmp_path):
    train = _write(tmp_path / "train.csv", _csv_rows(["a", "b"], n_per=3))
    test = _write(tmp_path / "test.csv", "f1,species,f2\n1,a,2\n3,zebra,4\n")
    with pytest.raises(DataError) as info:
        csv(train, label_column="species", test_path=test)
    assert "zebra" in str(info.value) and str(test) in str(info.value)


# --------------------------------------------------------------------------- image folders


def _png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _img(seed: int, h=6, w=5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _folder(root: Path, n_per=5, classes=("cat", "dog")) -> dict[str, np.ndarray]:
    made = {}
    for ci, c in enumerate(classes):
        for i in range(n_per):
            p = root / c / f"{i:02d}.png"
            made[str(p)] = _img(100 * ci + i)
            _png(p, made[str(p)])
    return made


def test_image_folder_lazy_loading(tmp_path):
    made = _folder(tmp_path / "pets")
    ds = image_folder(tmp_path / "pets", test_fraction=0.2)
    assert ds.name == "pets" and ds.class_names == ["cat", "dog"]
    assert ds.input_shape == (3, 6, 5)
    assert isinstance(ds.train.x, LazyImages)
    assert (len(ds.train), len(ds.test)) == (8, 2)
    assert sorted(ds.test.y.tolist()) == [0, 1]
    for part in (ds.train, ds.test):
        x, y = part.batch(torch.arange(len(part)))
        assert x.shape == (len(part), 3, 6, 5) and x.dtype == torch.float32
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        for k, path in enumerate(part.x.paths):
            expected = torch.from_numpy(made[path]).permute(2, 0, 1).float() / 255.0
            torch.testing.assert_close(x[k], expected, rtol=0, atol=1e-6)
            assert int(y[k]) == (0 if "/cat/" in path else 1)
    # a batch picks the indexed images, in the order asked
    x, y = ds.train.batch(torch.tensor([3, 0]))
    x0, _ = ds.train.batch(torch.tensor([0]))
    torch.testing.assert_close(x[1], x0[0])


def test_image_folder_grayscale(tmp_path):
    from PIL import Image

    _folder(tmp_path)
    ds = image_folder(tmp_path, grayscale=True)
    assert ds.input_shape == (1, 6, 5)
    x, _ = ds.train.batch(torch.tensor([0]))
    assert x.shape == (1, 1, 6, 5)
    with Image.open(ds.train.x.paths[0]) as im:
        expected = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    np.testing.assert_allclose(x[0, 0].numpy(), expected, atol=1e-6)


def test_image_folder_train_test_layout(tmp_path):
    _folder(tmp_path / "train", n_per=3)
    _folder(tmp_path / "test", n_per=2)
    ds = image_folder(tmp_path)
    assert ds.class_names == ["cat", "dog"]
    assert (len(ds.train), len(ds.test)) == (6, 4)
    assert all("/train/" in p for p in ds.train.x.paths)
    assert all("/test/" in p for p in ds.test.x.paths)
    assert ds.test.y.tolist() == [0, 0, 1, 1]


def test_image_folder_subset_and_cat_stay_lazy(tmp_path):
    _folder(tmp_path)
    ds = image_folder(tmp_path)
    sub = ds.train.subset(torch.tensor([1, 2]))
    assert isinstance(sub.x, LazyImages) and len(sub) == 2 and sub.x.shape == (2, 3, 6, 5)
    both = type(ds.train).cat([sub, ds.test])
    assert len(both) == 2 + len(ds.test)
    x, y = both.batch(torch.arange(len(both)))
    torch.testing.assert_close(x[:2], ds.train.batch(torch.tensor([1, 2]))[0])
    assert torch.equal(y[2:], ds.test.y)


def test_image_folder_mixed_sizes(tmp_path):
    _folder(tmp_path)
    _png(tmp_path / "dog" / "zz-big.png", _img(7, h=9, w=7))
    with pytest.raises(DataError) as info:
        image_folder(tmp_path)
    assert "zz-big.png" in str(info.value) and "size=" in str(info.value)
    ds = image_folder(tmp_path, size=(4, 3))
    assert ds.input_shape == (3, 4, 3)
    x, _ = _load_all(ds.train)
    assert x.shape == (len(ds.train), 3, 4, 3)
    x, _ = _load_all(ds.test)
    assert x.shape[1:] == (3, 4, 3)


def _load_all(part):
    return part.batch(torch.arange(len(part)))


def test_image_folder_corrupt_file(tmp_path):
    _folder(tmp_path)
    bad = tmp_path / "cat" / "broken.png"
    bad.write_bytes(b"this is not a png at all")
    with pytest.raises(DataError) as info:
        image_folder(tmp_path)
    assert str(bad) in str(info.value)


def test_image_folder_truncated_file_fails_with_data_error_naming_it(tmp_path):
    # the header is intact, so this is only found when the pixels are loaded
    _folder(tmp_path)
    path = tmp_path / "cat" / "00.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    ds = image_folder(tmp_path)
    with pytest.raises(DataError) as info:
        ds.train.batch(torch.arange(len(ds.train)))
        ds.test.batch(torch.arange(len(ds.test)))
    assert str(path) in str(info.value)


def test_image_folder_empty_class(tmp_path):
    _folder(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError) as info:
        image_folder(tmp_path)
    assert "empty" in str(info.value) and "no images" in str(info.value)


def test_image_folder_missing_or_without_classes(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        image_folder(tmp_path / "nothing")
    (tmp_path / "flat.png").write_bytes(b"")
    with pytest.raises(DataError, match="no class sub-folders"):
        image_folder(tmp_path)


# --------------------------------------------------------------------------- Fashion-MNIST


def _idx(a: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def _fake_fmnist(root: Path, n_train=20, n_test=10, gz=True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    data = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for i, (stem, a) in enumerate(data.items()):
        if gz and i % 2 == 0:  # mix compressed and raw files
            (root / (stem + ".gz")).write_bytes(gzip.compress(_idx(a)))
        else:
            (root / stem).write_bytes(_idx(a))
    return data


def test_fashion_mnist_from_small_idx_files(tmp_path):
    data = _fake_fmnist(tmp_path / "fm")
    ds = fashion_mnist(root=tmp_path / "fm")
    assert ds.name == "fmnist" and ds.num_classes == 10 and ds.class_names[0] == "T-shirt/top"
    assert ds.input_shape == (1, 28, 28)
    assert ds.train.x.shape == (20, 1, 28, 28) and ds.test.x.shape == (10, 1, 28, 28)
    assert torch.equal(ds.train.y, torch.from_numpy(data["train-labels-idx1-ubyte"]).long())
    assert torch.equal(ds.test.y, torch.from_numpy(data["t10k-labels-idx1-ubyte"]).long())
    pixels = torch.from_numpy(data["train-images-idx3-ubyte"]).float() / 255
    expected = (pixels - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
    assert ds.train.x.dtype == torch.uint8  # stored as they come, converted per batch
    assert torch.equal(ds.train.x[:, 0], torch.from_numpy(data["train-images-idx3-ubyte"]))
    torch.testing.assert_close(ds.train.inputs()[:, 0], expected)
    raw = fashion_mnist(root=tmp_path / "fm", normalize=False)
    torch.testing.assert_close(raw.test.inputs()[:, 0], torch.from_numpy(data["t10k-images-idx3-ubyte"]).float() / 255)
    assert float(raw.train.inputs().min()) >= 0 and float(raw.train.inputs().max()) <= 1


def test_fashion_mnist_env_var(tmp_path, monkeypatch):
    _fake_fmnist(tmp_path / "fashion-mnist", gz=False)
    monkeypatch.setenv("LIFELONG_DATA", str(tmp_path))
    ds = fashion_mnist()
    assert len(ds.train) == 20


def test_fashion_mnist_missing_files_says_how_to_get_it(tmp_path):
    _fake_fmnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as info:
        fashion_mnist(root=tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and "apt-get" in msg and "dataset-fashion-mnist" in msg


def test_fashion_mnist_wrong_shapes_and_labels(tmp_path):
    _fake_fmnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(9, np.uint8)))  # 10 images, 9 labels
    with pytest.raises(DataError, match="test files"):
        fashion_mnist(root=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.full(10, 10, np.uint8)))
    with pytest.raises(DataError, match="up to 10"):
        fashion_mnist(root=tmp_path)


def test_fashion_mnist_corrupt_file_names_it(tmp_path):
    _fake_fmnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError) as info:
        fashion_mnist(root=tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.skipif(not (REAL_FMNIST / "train-images-idx3-ubyte.gz").exists()
                    and not (REAL_FMNIST / "train-images-idx3-ubyte").exists(),
                    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    ds = fashion_mnist(root=REAL_FMNIST, normalize=False)
    assert (len(ds.train), len(ds.test)) == (60000, 10000)
    assert ds.train.x.shape == (60000, 1, 28, 28)
    assert sorted(ds.train.y.unique().tolist()) == list(range(10))
    assert sorted(ds.test.y.unique().tolist()) == list(range(10))
    assert torch.bincount(ds.test.y).tolist() == [1000] * 10
    assert abs(float(ds.train.inputs().mean()) - FASHION_MNIST_MEAN) < 1e-3
    assert abs(float(ds.train.inputs().std()) - FASHION_MNIST_STD) < 1e-3
