"""Task distributions for meta-learning: sinusoid regression and few-shot classification.

- Sinusoid (Finn, Abbeel & Levine 2017, "Model-Agnostic Meta-Learning", Section 5.1): a task is
  y = A sin(x - phi) with amplitude A ~ U[0.1, 5.0] and phase phi ~ U[0, pi]; inputs x ~ U[-5, 5].
  K support points to adapt on; the query points measure the adapted model.
- Few-shot classification: N-way K-shot episodes (`lifelong.data.episodes`) from meta-train,
  meta-validation and meta-test classes of a data set (Fashion-MNIST, digits, MNIST-1D). Without
  meta-validation classes (e.g. 5-way 0-4//5-9), the meta-train classes' held-out samples (the data
  set's test split) make the validation episodes and meta-training sees their training split only.

A `TaskSet` gives one seeded sampler per phase; samplers are drawn from with `.sample(n)`.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..data import Dataset, Split, sources
from ..data.episodes import Episodes, EpisodeSampler, check_counts, class_split
from ..errors import ConfigError
from ..registry import Registry

TEST_SEED, VALID_SEED = 2_000_003, 1_000_003  # offsets: a seed's test tasks differ from its training tasks


class Sampler(Protocol):
    def sample(self, n: int) -> Episodes: ...


class Sinusoid:
    """Sinusoid regression tasks: `shots` support and `queries` query points per task, seeded."""

    amplitude, phase, x_range = (0.1, 5.0), (0.0, math.pi), (-5.0, 5.0)

    def __init__(self, shots: int, queries: int, seed: int = 0) -> None:
        check_counts(shots=shots, queries=queries)
        self.shots, self.queries = shots, queries
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, n: int) -> Episodes:
        g = self.generator
        amp = torch.empty(n, 1, 1).uniform_(*self.amplitude, generator=g)
        phase = torch.empty(n, 1, 1).uniform_(*self.phase, generator=g)
        x = torch.empty(n, self.shots + self.queries, 1).uniform_(*self.x_range, generator=g)
        y = amp * torch.sin(x - phase)
        return Episodes(x[:, : self.shots], y[:, : self.shots], x[:, self.shots :], y[:, self.shots :])


@dataclass
class TaskSet:
    """A benchmark's task samplers for meta-training, -validation and -testing."""

    name: str
    kind: str  # "regression" or "classification"
    train: Sampler
    test: Sampler
    input_shape: tuple[int, ...]
    n_outputs: int  # 1 for regression, N (ways) for classification
    valid: Sampler | None = None
    pool: Split | None = None  # classification: every meta-train class sample, labels 0..C-1 (baseline, finetune)
    rotations: int = 1  # 4: meta-train classes turned by 90/180/270 degrees are classes of their own
    info: dict[str, Any] = field(default_factory=dict)


def sinusoid(shots: int = 10, queries: int = 10, seed: int = 0, test_queries: int = 100) -> TaskSet:
    """Finn et al.'s sinusoid tasks; meta-test tasks have `test_queries` query points each."""
    return TaskSet("sinusoid", "regression", Sinusoid(shots, queries, seed), Sinusoid(shots, test_queries,
                   seed + TEST_SEED), (1,), 1, Sinusoid(shots, test_queries, seed + VALID_SEED),
                   info={"amplitude": list(Sinusoid.amplitude), "phase": list(Sinusoid.phase)})


def fewshot(data: Dataset, ways: int = 5, shots: int = 1, queries: int = 15, classes: str | None = None,
            seed: int = 0, rotations: int = 1) -> TaskSet:
    """N-way K-shot episodes of `data`; `classes` is the TRAIN/VALID/TEST class split (see `class_split`).
    Validation episodes come from the meta-validation classes if there are at least `ways` of them, else
    from the held-out (test-split) samples of the meta-train classes (turned as in meta-training), which
    meta-training then never sees (none if there are too few for an episode). `rotations=4` adds the
    meta-train classes' turned copies as classes; meta-test classes stay upright. Warns when the
    meta-test pool holds exactly `ways` classes: every test episode is then the same task."""
    train, valid, test = class_split(data.num_classes, classes, ways)
    if len(test) == ways:
        warnings.warn(f"the meta-test pool {test} holds exactly {ways} classes, so every {ways}-way test episode is "
                      "the same task and the 95% CI measures sample noise only: give it more classes (--classes)",
                      stacklevel=2)
    every = Split.cat([data.train, data.test])
    held_out = len(valid) < ways
    seen = data.train if held_out else every
    pool = seen.subset(torch.isin(seen.y, torch.tensor(train)).nonzero().flatten())
    pool.y = torch.searchsorted(torch.tensor(sorted(train)), pool.y)
    meta_test = EpisodeSampler(every, test, ways, shots, queries, seed + TEST_SEED)
    meta_train = EpisodeSampler(seen, train, ways, shots, queries, seed, rotations)
    if not held_out:
        validation: EpisodeSampler | None = EpisodeSampler(every, valid, ways, shots, queries, seed + VALID_SEED)
    elif torch.bincount(data.test.y, minlength=data.num_classes)[train].min() >= shots + queries:
        validation = EpisodeSampler(data.test, train, ways, shots, queries, seed + VALID_SEED, rotations)
    else:
        validation = None
    return TaskSet(
        f"{data.name}-fewshot", "classification", meta_train, meta_test, data.input_shape, ways, validation, pool,
        rotations,
        {"classes": {"train": train, "valid": valid if not held_out else
                     "held-out samples of the meta-train classes" if validation else "none (too few held-out samples)",
                     "test": test}, "rotations": rotations},
    )


META_BENCHMARKS = Registry("meta-learning benchmark")
_LOADERS: dict[str, Callable[[], Dataset]] = {"fmnist-fewshot": sources.fashion_mnist, "digits-fewshot": sources.digits,
            "mnist1d-fewshot": sources.mnist1d}


@functools.lru_cache(maxsize=2)
def _load(name: str) -> Dataset:
    return _LOADERS[name]()


def _episodes_of(name: str) -> Callable[..., TaskSet]:
    def make(ways: int, shots: int, queries: int, seed: int, classes: str | None, rotations: int = 1) -> TaskSet:
        return fewshot(_load(name), ways, shots, queries, classes, seed, rotations)

    return make


META_BENCHMARKS.register("sinusoid", "sine waves, amplitude 0.1-5, phase 0-pi, x in [-5, 5] (Finn et al. 2017)")(
    lambda ways, shots, queries, seed, classes, rotations=1: sinusoid(shots, queries, seed))
for _name, _what in (("fmnist-fewshot", "Fashion-MNIST N-way K-shot episodes, disjoint class pools"),
                     ("digits-fewshot", "scikit-learn 8x8 digits N-way K-shot episodes (small, fast)"),
                     ("mnist1d-fewshot", "MNIST-1D N-way K-shot episodes")):
    META_BENCHMARKS.register(_name, _what)(_episodes_of(_name))


def meta_benchmark(name: str, ways: int = 5, shots: int = 1, queries: int = 15, seed: int = 0,
                   classes: str | None = None, rotations: int = 1) -> TaskSet:
    """A named benchmark's TaskSet, e.g. `meta_benchmark("fmnist-fewshot", ways=5, shots=5, classes="0-4//5-9")`;
    `rotations=4` (image benchmarks) adds turned meta-train classes."""
    if rotations != 1 and name == "sinusoid":
        raise ConfigError(f"sinusoid tasks cannot be rotated: `rotations` must be 1, got {rotations!r}", "rotations")
    return META_BENCHMARKS.get(name).factory(ways, shots, queries, seed, classes, rotations)
