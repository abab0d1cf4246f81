"""Where samples come from. Nothing here downloads: every source is on disk or generated."""

from __future__ import annotations

import csv as _csv
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DataError
from ..extras import need
from .idx import read_idx
from .stream import Dataset, Split, stratified_split
from .transforms import Scale

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530
_FMNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def fashion_mnist_dirs() -> list[Path]:
    """The folders searched for Fashion-MNIST, in order."""
    dirs = []
    if os.environ.get("LIFELONG_DATA"):
        dirs.append(Path(os.environ["LIFELONG_DATA"]) / "fashion-mnist")
    dirs += [Path.home() / ".cache/lifelong/fashion-mnist", Path("/usr/share/datasets/fashion-mnist")]
    return dirs


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def fashion_mnist_files(root: str | Path | None = None) -> dict[str, Path] | None:
    """The four IDX files of Fashion-MNIST in `root`, else in the first of `fashion_mnist_dirs()` that holds
    all four (keys x_train, y_train, x_test, y_test); None if none does."""
    for folder in [Path(root)] if root is not None else fashion_mnist_dirs():
        paths = {k: _find_idx(folder, stem) for k, stem in _FMNIST_FILES.items()}
        if all(paths.values()):
            return paths  # type: ignore[return-value]
    return None


def fashion_mnist(root: str | Path | None = None, normalize: bool = True) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017): 60k/10k 28x28 grey images, 10 classes.

    Looks in `root`, else `$LIFELONG_DATA/fashion-mnist`, `~/.cache/lifelong/fashion-mnist`,
    `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`). Pixels are kept as uint8
    (N, 1, 28, 28); each batch is scaled to [0, 1] and, with `normalize`, standardised with the training
    set's mean and std (the splits' `Scale` transform).
    """
    paths = fashion_mnist_files(root)
    if paths is None:
        where = ", ".join(str(c) for c in ([Path(root)] if root is not None else fashion_mnist_dirs()))
        raise DataError(
            f"Fashion-MNIST not found in {where}: install it with `sudo apt-get install "
            "dataset-fashion-mnist` (or `make data`), or put the four IDX files in "
            "$LIFELONG_DATA/fashion-mnist"
        )
    folder = paths["x_train"].parent
    arrays = {k: read_idx(p) for k, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"Fashion-MNIST {split} files in {folder} have shapes {x.shape} and {y.shape}, "
                "expected (N, 28, 28) images and N labels"
            )
        if y.dtype.kind not in "iu":
            raise DataError(f"Fashion-MNIST {split} labels in {folder} are {y.dtype} numbers, expected whole class "
                            "ids 0..9: delete the file and reinstall it")
        if len(y) and (y.min() < 0 or y.max() >= 10):
            low = y.min() < 0
            raise DataError(f"Fashion-MNIST {split} labels in {folder} go {'down' if low else 'up'} to "
                            f"{y.min() if low else y.max()}, expected 0..9: delete the file and reinstall it")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(1))[0])
            raise DataError(f"Fashion-MNIST {split} images in {folder} hold NaN or infinite values (first in image "
                            f"{bad}): delete the file and reinstall it")

    scale = Scale(255.0, FASHION_MNIST_MEAN, FASHION_MNIST_STD) if normalize else Scale(255.0)

    def images(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a).unsqueeze(1)

    return Dataset(
        "fmnist",
        Split(images(arrays["x_train"]), torch.from_numpy(arrays["y_train"]).long(), scale),
        Split(images(arrays["x_test"]), torch.from_numpy(arrays["y_test"]).long(), scale),
        list(FASHION_MNIST_CLASSES),
        (1, 28, 28),
    )


def digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), scaled to [0, 1]."""
    bunch = need("sklearn.datasets", "digits").load_digits()
    x = torch.from_numpy(bunch.images / 16.0).float().unsqueeze(1)
    y = torch.from_numpy(bunch.target).long()
    train, test = stratified_split(Split(x, y), test_fraction, seed)
    return Dataset("digits", train, test, [str(c) for c in range(10)], (1, 8, 8))


def digits28() -> Dataset:
    """`digits` as 28x28 images on Fashion-MNIST's scale: each 8x8 digit resized to 20x20 (bilinear) and
    centred on a black 28x28 canvas (as MNIST sits in its frame), then standardised with Fashion-MNIST's
    mean and std. A second 28x28 data set whose classes are unrelated to Fashion-MNIST's: held-out tasks
    on which to choose transfer settings for models trained on Fashion-MNIST."""
    data = digits()

    def resize(split: Split) -> Split:
        assert isinstance(split.x, Tensor)
        x = F.pad(F.interpolate(split.x, size=(20, 20), mode="bilinear", align_corners=False), (4, 4, 4, 4))
        return Split((x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD, split.y)

    return Dataset("digits28", resize(data.train), resize(data.test), data.class_names, (1, 28, 28))


def mnist1d(num_samples: int = 5000, seed: int = 42, **generation: float) -> Dataset:
    """MNIST-1D (Greydanus 2020), generated locally: 1-D signals of length 40, 10 classes,
    80/20 train/test split (4000/1000 with the defaults). Inputs have shape (1, 40). `generation`
    overrides the generator's other settings (scale_coeff, max_translation, corr_noise_scale,
    iid_noise_scale, shear_scale: see mnist1d's get_dataset_args)."""
    generator = need("mnist1d.data", "mnist1d")
    args = generator.get_dataset_args()
    unknown = sorted(set(generation) - {"scale_coeff", "max_translation", "corr_noise_scale", "iid_noise_scale",
                                        "shear_scale"})
    if unknown:
        raise DataError(f"unknown MNIST-1D generation setting {unknown[0]!r}: see mnist1d's get_dataset_args")
    args.num_samples, args.seed = num_samples, seed
    for key, value in generation.items():
        setattr(args, key, value)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:  # make_dataset reseeds the global generators; leave the caller's state as it was
        data = generator.make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(x).float().unsqueeze(1), torch.from_numpy(y).long())

    return Dataset(
        "mnist1d",
        split(data["x"], data["y"]),
        split(data["x_test"], data["y_test"]),
        [str(c) for c in range(10)],
        (1, int(data["x"].shape[-1])),
    )


def arrays(
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    x_test: np.ndarray | Tensor | None = None,
    y_test: np.ndarray | Tensor | None = None,
    *,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str = "arrays",
) -> Dataset:
    """A data set from the user's arrays. Labels must be integers 0..num_classes-1 with every class
    present in the training data. Without a test set, a stratified `test_fraction` is held out."""
    xt, yt = check_arrays(x, y, "training")
    if num_classes is None:
        num_classes = len(class_names) if class_names is not None else int(yt.max()) + 1
    _check_labels(yt, num_classes, "training")
    if (x_test is None) != (y_test is None):
        raise DataError("give both x_test and y_test, or neither (a test split is then held out)")
    if x_test is None or y_test is None:  # both (checked above)
        train, test = stratified_split(Split(xt, yt), test_fraction, seed)
    else:
        xs, ys = check_arrays(x_test, y_test, "test")
        _check_labels(ys, num_classes, "test", require_all=False)
        if xs.shape[1:] != xt.shape[1:]:
            raise DataError(f"test inputs have shape {tuple(xs.shape[1:])}, training inputs {tuple(xt.shape[1:])}")
        train, test = Split(xt, yt), Split(xs, ys)
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise DataError(f"{len(names)} class names given for {num_classes} classes")
    return Dataset(name, train, test, names, tuple(xt.shape[1:]))


def csv(
    path: str | Path,
    label_column: str = "label",
    *,
    test_path: str | Path | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """A data set from a CSV file with a header row: every column but `label_column` is a numeric
    feature. Labels may be any strings or numbers, sorted, then numbered 0..C-1: when every training label
    is a number they are compared as numbers (`1`, `1.0` and `01` are one class, named `1`), else as text."""
    x, labels = _read_csv(Path(path), label_column)
    numeric = all(_number(v) is not None for v in labels)
    labels = [_class_name(v, numeric) for v in labels]
    names = sorted(set(labels), key=_label_key)
    ids = {name: i for i, name in enumerate(names)}
    y = np.array([ids[v] for v in labels], dtype=np.int64)
    if test_path is None:
        return arrays(x, y, class_names=names, test_fraction=test_fraction, seed=seed, name=Path(path).stem)
    xs, test_labels = _read_csv(Path(test_path), label_column)
    test_labels = [_class_name(v, numeric) for v in test_labels]
    unknown = sorted(set(test_labels) - set(ids), key=_label_key)
    if unknown:
        raise DataError(f"{test_path}: labels {unknown[:5]} do not occur in the training file {path}")
    ys = np.array([ids[v] for v in test_labels], dtype=np.int64)
    return arrays(x, y, xs, ys, class_names=names, name=Path(path).stem)


def _number(v: str) -> float | None:
    """The label as a finite number, or None if it is not one."""
    try:
        number = float(v)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _class_name(v: str, numeric: bool) -> str:
    """A label as its class's name: a number in one spelling (`01`, `1.0` -> `1`), text as it is."""
    number = _number(v) if numeric else None
    if number is None:
        return v
    return str(int(number)) if number.is_integer() else repr(number)


def _label_key(v: str) -> tuple[int, float, str]:
    """Numbers first, by value (text breaks ties: `1` before `1.0`), then text."""
    number = _number(v)
    return (0, number, v) if number is not None else (1, 0.0, v)


def _read_csv(path: Path, label_column: str) -> tuple[np.ndarray, list[str]]:
    try:
        with path.open(newline="") as f:
            reader = _csv.reader(f)
            rows = [(reader.line_num, row) for row in reader if any(field.strip() for field in row)]
    except OSError as err:
        raise DataError(f"cannot read CSV file {path}: {err.strerror}") from None
    except (UnicodeDecodeError, _csv.Error) as err:
        raise DataError(f"{path} is not a readable CSV text file: {err}") from None
    if len(rows) < 2:
        raise DataError(f"{path} has no data rows: it needs a header row and at least one sample")
    header = [h.strip() for h in rows[0][1]]
    if label_column not in header:
        raise DataError(f"{path} has no column {label_column!r} (columns: {', '.join(header[:10])}); "
                        "pass label_column=...")
    if header.count(label_column) > 1:
        raise DataError(f"{path} has {header.count(label_column)} columns named {label_column!r}: rename all but "
                        "the labels' one")
    li = header.index(label_column)
    feats = [i for i in range(len(header)) if i != li]
    if not feats:
        raise DataError(f"{path} has no feature columns besides {label_column!r}")
    x = np.empty((len(rows) - 1, len(feats)), dtype=np.float32)
    labels = []
    for k, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
        labels.append(row[li].strip())
        if not labels[-1]:
            raise DataError(f"{path}, line {line}: the {label_column!r} field is empty: every sample needs a label")
        for j, i in enumerate(feats):
            try:
                x[k, j] = float(row[i])
            except ValueError:
                raise DataError(f"{path}, line {line}, column {header[i]!r}: {row[i]!r} is not a number") from None
    return x, labels


def check_arrays(x: np.ndarray | Tensor, y: np.ndarray | Tensor, part: str) -> tuple[Tensor, Tensor]:
    """Convert to (float32, int64) tensors, refusing what would train on garbage."""
    try:
        xt = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y)
    except (TypeError, ValueError) as err:
        raise DataError(f"{part} inputs and labels must be numeric arrays: {err}") from None
    if xt.ndim < 2:
        raise DataError(f"{part} inputs must have shape (samples, features...), got {tuple(xt.shape)}")
    if len(xt) == 0:
        raise DataError(f"{part} inputs are empty")
    if 0 in xt.shape[1:]:
        raise DataError(f"{part} inputs have no features (shape {tuple(xt.shape)}): each sample needs at least one")
    if yt.ndim != 1:
        raise DataError(f"{part} labels must be a 1-D array, got shape {tuple(yt.shape)}")
    if len(xt) != len(yt):
        raise DataError(f"{part} inputs have {len(xt)} samples but labels have {len(yt)}: they must match")
    if not (xt.dtype.is_floating_point or xt.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise DataError(f"{part} inputs must be numeric, got {xt.dtype}")
    xt = xt.float()
    if not torch.isfinite(xt).all():
        bad = int((~torch.isfinite(xt)).flatten(1).any(1).nonzero()[0])
        raise DataError(f"{part} inputs hold NaN or infinite values (first at sample {bad}): clean or impute them")
    if yt.dtype.is_floating_point or yt.dtype == torch.bool or yt.dtype.is_complex:
        raise DataError(f"{part} labels must be integers 0..C-1, got dtype {yt.dtype}: map them to class ids")
    if yt.dtype in (torch.uint32, torch.uint64) and int(yt.cpu().numpy().max()) > torch.iinfo(torch.int64).max:
        raise DataError(f"{part} labels go up to {int(yt.cpu().numpy().max())} ({yt.dtype}), expected class ids "
                        "0..C-1: map them to class ids")
    return xt, yt.long()


def _check_labels(y: Tensor, num_classes: int, part: str, require_all: bool = True) -> None:
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise DataError(f"{part} labels range over {int(y.min())}..{int(y.max())}, expected 0..{num_classes - 1}")
    if require_all:
        counts = torch.bincount(y, minlength=num_classes)
        empty = (counts == 0).nonzero().flatten().tolist()
        if empty:
            raise DataError(f"classes {empty} have no {part} samples: labels must be 0..C-1 with every class present")
