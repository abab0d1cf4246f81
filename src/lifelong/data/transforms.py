"""Per-batch input transforms: stored inputs (e.g. uint8 pixels) -> the float batch a model sees.

A split keeps its inputs as they come and applies its transform to each batch, so a permuted or rotated
task is its data set's tensors plus a permutation or an angle, never a converted copy: memory does not
grow with the number of tasks. Each transform works row by row, so a batch gives exactly the rows the
whole set would give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol, Self, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DataError


@runtime_checkable
class Transform(Protocol):
    """`transform(x)`: a batch of stored inputs as the float tensor the model sees; `to(device)` moves
    the tensors it holds."""

    def __call__(self, x: Tensor) -> Tensor: ...

    def to(self, device: torch.device | str) -> Self: ...


@dataclass(frozen=True)
class Scale:
    """x.float() / `divisor`, then (x - mean) / std when `mean` is given (Fashion-MNIST's pixels)."""

    divisor: float = 255.0
    mean: float | None = None
    std: float = 1.0

    def __call__(self, x: Tensor) -> Tensor:
        x = x.float().div_(self.divisor)
        return x.sub_(self.mean).div_(self.std) if self.mean is not None else x

    def to(self, device: torch.device | str) -> Scale:
        return self


@dataclass(frozen=True, eq=False)
class Permute:
    """The input features reordered by `perm` (a permutation of the flattened feature indices)."""

    perm: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        return x.flatten(1).index_select(1, self.perm).reshape(x.shape)  # twice as fast as x[:, perm] on CPU

    def to(self, device: torch.device | str) -> Permute:
        return replace(self, perm=self.perm.to(device))


@dataclass(frozen=True)
class Rotate:
    """Images (N, C, H, W) rotated by `degrees` about their centre (`rotate`)."""

    degrees: float

    def __call__(self, x: Tensor) -> Tensor:
        return rotate(x, self.degrees)

    def to(self, device: torch.device | str) -> Rotate:
        return self


@dataclass(frozen=True, eq=False)
class Chain:
    """`steps` applied in order."""

    steps: tuple[Transform, ...]

    def __call__(self, x: Tensor) -> Tensor:
        for step in self.steps:
            x = step(x)
        return x

    def to(self, device: torch.device | str) -> Chain:
        return Chain(tuple(s.to(device) for s in self.steps))


def then(first: Transform | None, second: Transform) -> Transform:
    """`second` after `first` (`first` may be None: no transform)."""
    if first is None:
        return second
    return Chain((*(first.steps if isinstance(first, Chain) else (first,)), second))


def rotate(x: Tensor, degrees: float, chunk: int = 8192) -> Tensor:
    """Rotate a batch of images (N, C, H, W) about their centre; pixels from outside repeat the border."""
    if x.ndim != 4:
        raise DataError(f"rotation needs images (N, C, H, W), got shape {tuple(x.shape)}")
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype,
                         device=x.device)
    out = torch.empty_like(x)
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk]
        grid = F.affine_grid(theta.expand(len(xb), 2, 3), list(xb.shape), align_corners=False)
        out[i : i + chunk] = F.grid_sample(xb, grid, padding_mode="border", align_corners=False)
    return out
