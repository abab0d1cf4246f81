"""Standard benchmarks by name: a data set, a scenario function and their usual settings."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..registry import Registry
from . import scenarios, sources, text
from .stream import Dataset, Stream, per_class
from .text import Encoder

BENCHMARKS = Registry("benchmark")


@dataclass(frozen=True)
class Benchmark:
    """How to build a named benchmark; `make` takes the run's options."""

    load: Callable[[], Dataset]
    kind: str  # "split", "permuted" or "rotated"
    n_tasks: int
    scenario: str
    text: bool = False  # inputs are token ids (`data.text`): an `Encoder` may turn them into features

    def make(
        self,
        n_tasks: int | None = None,
        scenario: str | None = None,
        seed: int = 0,
        class_order: Sequence[int] | None = None,
        valid_fraction: float = 0.0,
        encoder: Encoder | None = None,
        subset: int | None = None,
    ) -> Stream:
        """The stream; with `subset`, of `subset` training and test samples of every class (the same for every
        seed); with `encoder` (text benchmarks), of the encoder's cached features of the texts."""
        if class_order is not None and self.kind != "split":
            raise ConfigError(f"`class_order` orders the classes of split benchmarks; this one is {self.kind} (every "
                              "task holds every class): leave it out", "class_order")
        if encoder is not None and not self.text:
            raise ConfigError("a text encoder's features were asked of a benchmark of images or signals: choose a "
                              "text benchmark (`lifelong list`) or another model", "model")
        data, n, sc = self.load(), n_tasks or self.n_tasks, scenario or self.scenario
        if subset is not None:
            data = dataclasses.replace(data, train=data.train.subset(per_class(data.train, subset, 0, at_most=True)),
                                       test=data.test.subset(per_class(data.test, subset, 0, at_most=True)))
        if encoder is not None:
            data = text.encoded(data, encoder)
        if self.kind == "split":
            return scenarios.split(data, n, sc, class_order, seed, valid_fraction)
        if self.kind == "permuted":
            return scenarios.permuted(data, n, seed, sc, valid_fraction)
        return scenarios.rotated(data, n, 180.0, seed, sc, valid_fraction)


# Loading is the slow part (Fashion-MNIST: ~1 s); scenarios never modify a Dataset in place.
_fmnist = functools.lru_cache(maxsize=1)(sources.fashion_mnist)
_digits = functools.lru_cache(maxsize=1)(sources.digits)
_mnist1d = functools.lru_cache(maxsize=1)(sources.mnist1d)


@functools.lru_cache(maxsize=1)
def _fortunes() -> Dataset:
    return text.text_dataset(text.fortunes(), max_length=64)


for _name, _bench, _what in [
    ("split-fmnist", Benchmark(_fmnist, "split", 5, "class"),
     "Fashion-MNIST, 10 classes in 5 tasks of 2 (class-incremental by default)"),
    ("permuted-fmnist", Benchmark(_fmnist, "permuted", 10, "domain"),
     "Fashion-MNIST, 10 tasks, each a fixed pixel permutation (domain-incremental by default)"),
    ("rotated-fmnist", Benchmark(_fmnist, "rotated", 5, "domain"),
     "Fashion-MNIST, 5 tasks rotated by 0, 36, 72, 108, 144 degrees (domain-incremental by default)"),
    ("split-digits", Benchmark(_digits, "split", 5, "class"),
     "scikit-learn 8x8 digits, 10 classes in 5 tasks of 2 (small and fast: tests, smoke runs)"),
    ("permuted-digits", Benchmark(_digits, "permuted", 5, "domain"),
     "scikit-learn 8x8 digits, 5 pixel permutations (domain-incremental by default)"),
    ("split-mnist1d", Benchmark(_mnist1d, "split", 5, "class"),
     "MNIST-1D (generated locally), 10 classes in 5 tasks of 2 (class-incremental by default)"),
    ("split-fortunes", Benchmark(_fortunes, "split", 5, "class", text=True),
     "Debian's fortunes, the 20 largest categories in 5 tasks of 4, token ids of up to 64 (extra text, apt "
     "package fortunes; models minilm, bow: docs/text.md)"),
]:
    BENCHMARKS.register(_name, _what)(_bench)


def benchmark(name: str, **options: object) -> Stream:
    """Build a named benchmark's stream, e.g. `benchmark("split-fmnist", scenario="task", seed=1)`."""
    bench: Benchmark = BENCHMARKS.get(name).factory
    return bench.make(**options)  # type: ignore[arg-type]
