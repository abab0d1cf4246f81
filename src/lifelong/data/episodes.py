"""N-way K-shot episodes for meta-learning (Vinyals et al. 2016, "Matching Networks for One Shot Learning").

An episode draws N classes from a pool, then K support and Q query samples of each (without
replacement); its labels are the class's position 0..N-1 among the N drawn, in random order, so a
learner cannot memorise which data-set class a label means. The classes of a data set are cut into
disjoint meta-train / meta-validation / meta-test pools (`class_split`), so meta-testing measures
learning of classes never seen in meta-training. Every sample of a class (its train and test split
both) is in its pool. Sampling is vectorised over episodes and seeded: the same seed gives the same
episodes.

Class augmentation (`rotations=4`): each class turned by 0, 90, 180 and 270 degrees is a class of its
own, so a pool of C classes holds 4C (Santoro et al. 2016, "Meta-Learning with Memory-Augmented
Neural Networks", Section 4.1; Vinyals et al. 2016, Section 4.1.1: the standard Omniglot
augmentation). Meant for meta-train pools only; meta-test classes stay upright.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ..configs import whole_numbers
from ..errors import ConfigError, DataError
from .stream import Dataset, Split


class Episodes(NamedTuple):
    """A batch of B episodes: support `xs` (B, S, ...), `ys` (B, S) and query `xq` (B, Q, ...), `yq`
    (B, Q). Classification labels are int64 in 0..N-1; regression targets are float (B, S, 1)."""

    xs: Tensor
    ys: Tensor
    xq: Tensor
    yq: Tensor

    def to(self, device: torch.device | str) -> Episodes:
        return Episodes(*(t.to(device) for t in self))


def parse_classes(text: str) -> list[int]:
    """`"0-4"` -> [0, 1, 2, 3, 4]; `"0,2,5-6"` -> [0, 2, 5, 6]; `""` -> []."""
    out: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            out += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ConfigError(f"class list {text!r} is not like 0-4 or 0,2,5-6") from None
    return out


def class_split(num_classes: int, spec: str | None = None, ways: int = 1) -> tuple[list[int], list[int], list[int]]:
    """Meta-train / meta-validation / meta-test classes. `spec` is `"TRAIN/VALID/TEST"` in
    `parse_classes` syntax (e.g. `"0-3/4-5/6-9"`; the middle may be empty: `"0-4//5-9"`). By default
    the first 40% of the classes train, the next 20% validate and the last 40% test (10 classes:
    0-3/4-5/6-9), so that the meta-test pool holds more classes than an episode and test episodes are
    different tasks; unless that leaves no more than `ways` test classes: then the first half trains and
    the second half tests (10 classes, 4 or 5 ways: 0-4//5-9)."""
    if spec is None:
        a, b = round(num_classes * 0.4), round(num_classes * 0.6)
        if num_classes - b <= ways:
            a = b = num_classes // 2
        return list(range(a)), list(range(a, b)), list(range(b, num_classes))
    parts = spec.split("/")
    if len(parts) != 3:
        raise ConfigError(f"class split {spec!r} must be TRAIN/VALID/TEST, e.g. 0-5/6-7/8-9 or 0-4//5-9")
    train, valid, test = (parse_classes(p) for p in parts)
    every = train + valid + test
    if len(set(every)) != len(every) or not all(0 <= c < num_classes for c in every):
        raise ConfigError(f"class split {spec!r} must use distinct class ids from 0 to {num_classes - 1}")
    if not train or not test:
        raise ConfigError(f"class split {spec!r} needs meta-train and meta-test classes")
    return train, valid, test


def rotate(x: Tensor, turns: Tensor) -> Tensor:
    """`x` (B, ..., H, W) with item b turned by `turns[b]` x 90 degrees (counter-clockwise)."""
    out = x.clone()
    for r in range(1, 4):
        hit = turns % 4 == r
        out[hit] = x[hit].rot90(r, (-2, -1))
    return out


def check_counts(**values: object) -> None:
    """Raise ConfigError unless each value (ways, shots, queries, ...) is a whole number >= 1."""
    whole_numbers(values)


def check_rotations(rotations: int, shape: tuple[int, ...]) -> None:
    """Raise ConfigError unless `rotations` is 1 (none) or 4 turns of square (..., H, W) images can be made."""
    if rotations not in (1, 4):
        raise ConfigError(f"`rotations` must be 1 (none) or 4 (0/90/180/270 degrees), got {rotations!r}",
                          "rotations")
    if rotations == 4 and (len(shape) < 2 or shape[-1] != shape[-2]):
        raise ConfigError(f"rotating classes needs square images (..., H, H), got input shape {tuple(shape)}: "
                          "set `rotations` to 1", "rotations")


class EpisodeSampler:
    """Draws N-way K-shot episodes (`shots` support and `queries` query samples per class) from the
    samples of `classes` in `data` (a Dataset: both of its splits; or a Split); with `rotations=4`,
    from the 4 x len(classes) classes of their turned copies."""

    def __init__(self, data: Dataset | Split, classes: Sequence[int], ways: int, shots: int, queries: int = 15,
                 seed: int = 0, rotations: int = 1) -> None:
        check_counts(ways=ways, shots=shots, queries=queries)
        pool = Split.cat([data.train, data.test]) if isinstance(data, Dataset) else data
        self.shape = tuple(pool.x.shape[1:])
        check_rotations(rotations, self.shape)
        if ways > len(classes) * rotations:
            raise ConfigError(f"{ways}-way episodes need at least {ways} classes, this pool has {len(classes)} "
                              f"({list(classes)}): lower `ways` or give the pool more classes (`classes`)", "ways")
        self.pool, self.ways, self.shots, self.queries, self.rotations = pool, ways, shots, queries, rotations
        self.classes = [int(c) for c in classes]
        index = [(pool.y == c).nonzero().flatten() for c in self.classes]
        counts = torch.tensor([len(i) for i in index])
        small = [c for c, n in zip(self.classes, counts.tolist()) if n < shots + queries]
        if small:
            raise DataError(f"classes {small} have fewer than shots + queries = {shots + queries} samples: "
                            "lower `shots` or `queries`")
        self.counts = counts
        self.index = torch.nn.utils.rnn.pad_sequence(index, batch_first=True)  # (classes, most samples)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, n: int) -> Episodes:
        """`n` episodes: support (n, ways*shots, ...) then query (n, ways*queries, ...), grouped by way."""
        return self.sample_with_classes(n)[0]

    def sample_with_classes(self, n: int) -> tuple[Episodes, Tensor]:
        """`sample(n)` and the data-set class that each episode's labels 0..N-1 stand for, shape (n, N)
        (turns not told apart), to tell which class subset each episode is."""
        g, n_way, k, c = self.generator, self.ways, self.shots + self.queries, len(self.classes)
        drawn = torch.rand(n, c * self.rotations, generator=g).argsort(1)[:, :n_way]  # (n, N) (turn, class) ids
        ways, turns = drawn % c, drawn // c  # pool positions, quarter turns
        keys = torch.rand(n, n_way, self.index.shape[1], generator=g)
        keys.masked_fill_(torch.arange(self.index.shape[1]) >= self.counts[ways].unsqueeze(-1), 2.0)
        pick = keys.topk(k, dim=-1, largest=False).indices  # k distinct real samples per way
        rows = self.index[ways.unsqueeze(-1), pick]  # (n, N, k) sample indices
        x = self.pool.batch(rows.flatten())[0].view(*rows.shape, *self.shape)
        if self.rotations > 1:
            x = rotate(x.flatten(0, 1), turns.flatten()).view_as(x)
        labels = torch.arange(n_way).view(1, n_way, 1)
        shape = self.shape
        return Episodes(x[:, :, : self.shots].reshape(n, -1, *shape),
                        labels.expand(n, n_way, self.shots).reshape(n, -1),
                        x[:, :, self.shots :].reshape(n, -1, *shape),
                        labels.expand(n, n_way, self.queries).reshape(n, -1)), torch.tensor(self.classes)[ways]
