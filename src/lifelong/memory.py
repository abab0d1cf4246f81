"""Replay memory: a fixed number of samples held in preallocated tensors.

Policies (what is kept when more samples are offered than fit):
- `reservoir` (Vitter 1985, Algorithm R): the n-th sample offered is kept with probability
  capacity / n, in a uniformly drawn slot, so the memory is a uniform sample of everything offered.
- `class_balanced` (the greedy sampler of GDumb, Prabhu et al. 2020): a sample of class c is kept
  while c holds fewer than ceil(capacity / classes offered so far) samples; when the memory is full
  the largest classes give up their most recently stored samples. Counts of classes that were
  offered enough samples differ by at most one.
- `per_task`: the same with task ids as keys (an equal quota per task, as GEM's episodic memory).

A batch is inserted at once, without a Python loop over its samples and without reading anything
back from the device: reservoir draws one slot per sample (later samples win a shared slot, as in
the sequential algorithm); the balanced policies keep per-key counts and a per-key stack of slots up
to date incrementally (O(1) per sample, never rescanning the memory). Within one batch the keys of
the batch count as offered. Row `capacity` of every table is scratch space for discarded writes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from .data import Split
from .errors import ConfigError

POLICIES = ("reservoir", "class_balanced", "per_task")


class Samples(NamedTuple):
    """Memory samples: inputs, labels, task ids and (when stored) logits."""

    x: Tensor
    y: Tensor
    t: Tensor
    logits: Tensor | None


def waterfill(m: Tensor, e: Tensor) -> Tensor:
    """Remove `e` units from the counts `m`, always from the largest: the lowered counts end up
    within one of each other (ties give the extra unit to the lower index). Vectorised, O(K log K)."""
    s, order = m.sort(descending=True, stable=True)
    k = torch.arange(1, len(m) + 1, device=m.device)
    keep = s.cumsum(0) - e  # what the k largest hold once e units are gone
    level = keep.div(k, rounding_mode="floor")
    valid = level >= torch.cat([s[1:], s.new_zeros(1)])  # the next count is not above the level
    first = valid.int().argmax()  # the fewest largest counts that must come down
    extra = keep[first] - level[first] * (first + 1)
    pos = torch.arange(len(m), device=m.device)
    lowered = torch.where(pos <= first, level[first] + (pos < extra).long(), s)
    return torch.empty_like(m).scatter_(0, order, lowered)


class Buffer:
    """`capacity` samples in preallocated tensors (allocated at the first `add`, on its device)."""

    def __init__(self, capacity: int, policy: str = "reservoir", n_keys: int = 1, seed: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"the memory needs a whole number of samples >= 1, got {capacity!r}")
        if policy not in POLICIES:
            raise ConfigError(f"unknown memory policy {policy!r}: choose one of {', '.join(POLICIES)}")
        self.capacity, self.policy, self.n_keys, self.seed = capacity, policy, max(int(n_keys), 1), seed
        self.tensors: dict[str, Tensor] = {}
        self.generator: torch.Generator | None = None
        self.filled = False  # whether anything is stored, known without asking the device

    def _allocate(self, x: Tensor, logits: Tensor | None) -> None:
        n, dev, k = self.capacity + 1, x.device, self.n_keys
        self.tensors = {"x": x.new_zeros((n, *x.shape[1:])), "y": torch.zeros(n, dtype=torch.long, device=dev),
                        "t": torch.zeros(n, dtype=torch.long, device=dev),
                        "size": torch.zeros((), dtype=torch.long, device=dev),
                        "offered": torch.zeros((), dtype=torch.long, device=dev)}
        if logits is not None:
            self.tensors["logits"] = logits.new_zeros((n, logits.shape[1]))
        if self.policy != "reservoir":
            self.tensors |= {"counts": torch.zeros(k, dtype=torch.long, device=dev),
                             "keys_offered": torch.zeros(k, dtype=torch.bool, device=dev),
                             "members": torch.zeros(k, n, dtype=torch.long, device=dev)}
        self.generator = torch.Generator(device=dev).manual_seed(self.seed)

    def __getattr__(self, name: str) -> Tensor:
        tensors = self.__dict__.get("tensors", {})
        if name in tensors:
            return tensors[name]
        raise AttributeError(name)

    def __len__(self) -> int:
        return int(self.size) if self.tensors else 0

    def add(self, x: Tensor, y: Tensor, t: Tensor, logits: Tensor | None = None) -> None:
        """Offer a batch; the policy decides which samples are kept and where."""
        if len(y) == 0:
            return
        if not self.tensors:
            self._allocate(x, logits)
        slot = self._reservoir(len(y)) if self.policy == "reservoir" else self._balanced(
            y if self.policy == "class_balanced" else t)
        self.x.index_copy_(0, slot, x.detach().to(self.x.dtype))
        self.y.index_copy_(0, slot, y)
        self.t.index_copy_(0, slot, t)
        if logits is not None:
            self.logits.index_copy_(0, slot, logits.detach())
        self.offered.add_(len(y))
        self.filled = True

    def _reservoir(self, b: int) -> Tensor:
        cap, dev = self.capacity, self.x.device
        i = torch.arange(b, device=dev)
        n = self.offered + i + 1  # 1-based position of each sample in the stream
        draw = (torch.rand(b, dtype=torch.float64, device=dev, generator=self.generator) * n).long()
        slot = torch.where(n <= cap, n - 1, draw)
        slot = torch.where(slot < cap, slot, cap)
        last = torch.full((cap + 1,), -1, dtype=torch.long, device=dev).scatter_reduce_(0, slot, i, "amax")
        self.size.copy_(torch.clamp(self.offered + b, max=cap))
        return torch.where(last[slot] == i, slot, cap)  # a later sample drawing the same slot wins

    def _balanced(self, key: Tensor) -> Tensor:
        cap, b, counts, dev = self.capacity, len(key), self.counts, key.device
        arrivals = torch.bincount(key, minlength=self.n_keys)
        sorted_key, order = key.sort(stable=True)
        rank = torch.empty_like(key).scatter_(  # position of each sample among its key's in the batch
            0, order, torch.arange(b, device=dev) - torch.searchsorted(sorted_key, sorted_key))
        self.keys_offered.logical_or_(arrivals > 0)
        n_offered = self.keys_offered.sum()
        quota = (cap + n_offered - 1) // n_offered
        take = torch.minimum((quota - counts).clamp(min=0), arrivals)
        free = cap - self.size
        final = waterfill(counts + take, (take.sum() - free).clamp(min=0))
        insert, evict = (final - counts).clamp(min=0), (counts - final).clamp(min=0)
        kept = rank < insert[key]
        order_in = kept.long().cumsum(0) - 1  # the k-th kept sample fills free slots, then evicted ones
        k = torch.arange(b, device=dev)
        ends = evict.cumsum(0)
        owner = torch.searchsorted(ends, k, right=True).clamp(max=self.n_keys - 1)
        top = counts[owner] - 1 - (k - (ends - evict)[owner])  # evictions pop the owner's stack
        evicted = self.members[owner, top.clamp(min=0)]
        slot = torch.where(order_in < free, self.size + order_in, evicted[(order_in - free).clamp(0, b - 1)])
        slot = torch.where(kept, slot, cap)
        self.members.index_put_((key, torch.where(kept, counts[key] + rank, cap)), slot)
        self.size.add_(torch.minimum(take.sum(), free))
        counts.copy_(final)
        return slot

    def add_split(self, split: Split, task_id: int, generator: torch.Generator, chunk: int = 4096) -> None:
        """Offer a whole training split in a random order (chunk by chunk, for lazily loaded data)."""
        for idx in torch.randperm(len(split), generator=generator).split(chunk):
            x, y = split.batch(idx.to(split.y.device))
            self.add(x, y, torch.full_like(y, task_id))

    def sample(self, n: int) -> Samples:
        """`n` stored samples drawn uniformly without replacement (repeating when fewer are stored)."""
        cap = self.capacity
        keys = torch.rand(cap, device=self.x.device, generator=self.generator)
        keys = keys.masked_fill(torch.arange(cap, device=self.x.device) >= self.size, 2.0)
        idx = keys.argsort()[torch.arange(n, device=self.x.device) % self.size.clamp(min=1)]
        return self._at(idx)

    def stored(self) -> Samples:
        """Everything stored, in slot order (reads the size from the device: not for the inner loop)."""
        return self._at(torch.arange(len(self), device=self.x.device))

    def _at(self, idx: Tensor) -> Samples:
        logits = self.tensors.get("logits")
        return Samples(self.x[idx], self.y[idx], self.t[idx], logits[idx] if logits is not None else None)

    def state_dict(self) -> dict[str, Any]:
        """Tensors (without the scratch row) and JSON values; see `from_state`."""
        state: dict[str, Any] = {"capacity": self.capacity, "policy": self.policy, "n_keys": self.n_keys,
                                 "seed": self.seed}
        state |= {name: self._without_scratch(name, v) for name, v in self.tensors.items()}
        if self.generator is not None:
            state["rng"] = self.generator.get_state()
        return state

    def _without_scratch(self, name: str, v: Tensor) -> Tensor:
        if name in ("x", "y", "t", "logits"):
            return v[: self.capacity]
        return v[:, : self.capacity] if name == "members" else v

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device | str = "cpu") -> Buffer:
        """A buffer holding what `state_dict` returned, on `device`."""
        buf = cls(state["capacity"], state["policy"], state["n_keys"], state["seed"])
        if "x" in state:
            logits = state.get("logits")
            buf._allocate(state["x"].to(device), logits.to(device) if logits is not None else None)
            for name, v in buf.tensors.items():
                buf._without_scratch(name, v).copy_(state[name])
            assert buf.generator is not None
            buf.generator.set_state(state["rng"])
            buf.filled = len(buf) > 0
        return buf

    @property
    def nbytes(self) -> int:
        """Bytes of the memory's state: samples, labels, task ids, logits and bookkeeping."""
        return sum(v.numel() * v.element_size() for v in self.state_dict().values() if isinstance(v, Tensor))
