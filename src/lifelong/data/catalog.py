"""Named data sets, whole or cut to some classes: `dataset("fmnist:0-4")`.

A spec is `NAME` or `NAME:CLASSES`; CLASSES lists class ids and inclusive ranges ("0-4", "5-9",
"0,2,4-6"), and the chosen classes are relabelled 0..k-1 in the order given. Names live in the
`DATASETS` registry, each with the normalisation its loader applied (saved with pretrained models, so
that a model is fed inputs scaled as in training); shifted variants of a data set register here too.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import DataError
from ..registry import Registry
from . import sources, text
from .benchmarks import _digits, _fmnist, _fortunes, _mnist1d
from .sources import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from .stream import Dataset, Split

DATASETS = Registry("dataset")


@dataclass(frozen=True)
class NamedDataset:
    """A loader and how it scales inputs: x = (raw * scale - mean) / std."""

    load: Callable[[], Dataset]
    normalisation: dict[str, Any] = field(default_factory=lambda: {"scale": 1.0, "mean": [0.0], "std": [1.0]})


for _name, _entry, _what in [
    ("fmnist", NamedDataset(_fmnist, {"scale": 1 / 255, "mean": [FASHION_MNIST_MEAN], "std": [FASHION_MNIST_STD]}),
     "Fashion-MNIST, 28x28 grey, 60k/10k, 10 classes"),
    ("digits", NamedDataset(_digits, {"scale": 1 / 16, "mean": [0.0], "std": [1.0]}),
     "scikit-learn 8x8 digits, 1347/450, 10 classes"),
    ("digits28", NamedDataset(functools.lru_cache(maxsize=1)(sources.digits28),
                              {"scale": 1 / 16, "mean": [FASHION_MNIST_MEAN], "std": [FASHION_MNIST_STD]}),
     "the 8x8 digits resized to 20x20 on a black 28x28 canvas, on Fashion-MNIST's scale (held-out transfer tasks)"),
    ("mnist1d", NamedDataset(_mnist1d), "MNIST-1D signals of length 40, 4000/1000, 10 classes"),
    ("bbc-news", NamedDataset(functools.lru_cache(maxsize=1)(lambda: text.text_dataset(text.bbc_news(), 128))),
     "BBC News articles, token ids of up to 128, 1557/667, 5 topics (extra text; non-commercial research only)"),
    ("fortunes", NamedDataset(_fortunes), "Debian's fortunes, token ids of up to 64, 8828/3785, 20 categories"),
]:
    DATASETS.register(_name, _what)(_entry)


def parse_classes(text: str) -> list[int]:
    """"0-4" -> [0, 1, 2, 3, 4]; "0,2,5-6" -> [0, 2, 5, 6]."""
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            lo, _, hi = part.partition("-")
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise DataError(f"cannot read the classes {text!r}: write ids and ranges like 0-4 or 0,2,5-6") from None
    if not out or len(set(out)) != len(out):
        raise DataError(f"the classes {text!r} must name at least one class, each once")
    return out


def select_classes(data: Dataset, classes: Sequence[int], name: str | None = None) -> Dataset:
    """The samples of `classes` only, relabelled 0..len(classes)-1 in the order given."""
    c = data.num_classes
    if not all(0 <= k < c for k in classes):
        raise DataError(f"{data.name} has classes 0 to {c - 1}, got {list(classes)}")
    relabel = torch.full((c,), -1, dtype=torch.long)
    relabel[list(classes)] = torch.arange(len(classes))

    def cut(part: Split) -> Split:
        sub = part.subset(torch.isin(part.y, torch.tensor(list(classes))).nonzero().flatten())
        return dataclasses.replace(sub, y=relabel[sub.y])

    return Dataset(name or data.name, cut(data.train), cut(data.test), [data.class_names[k] for k in classes],
                   data.input_shape)


def dataset(spec: str) -> Dataset:
    """The data set named by `spec` (see the module docstring), e.g. "fmnist:5-9"."""
    name, _, classes = spec.partition(":")
    data = DATASETS.get(name).factory.load()
    return select_classes(data, parse_classes(classes), spec) if classes else data


def normalisation(spec: str) -> dict[str, Any]:
    """How the loader of `spec`'s data set scales inputs."""
    return dict(DATASETS.get(spec.partition(":")[0]).factory.normalisation)
