"""Fully connected ReLU networks (the usual 784-400-400 continual-learning baseline)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .net import Net


def mlp(in_features: int, out_features: int, hidden: Sequence[int] = (400, 400)) -> Net:
    """Flatten, then Linear+ReLU per hidden size, then a linear head.

    `hidden=()` gives multinomial logistic regression. Inputs may have any shape (N, ...)
    whose trailing dimensions multiply to `in_features`.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return Net(nn.Sequential(*layers), nn.Linear(width, out_features))
