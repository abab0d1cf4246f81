import pytest
import torch

import lifelong as ll
from lifelong.data import Dataset, Split


@pytest.fixture(scope="module")
def pair(digits):
    """Source: half of the digits; target: the other half with inverted intensities (1 - x)."""
    x, y = digits.train.x, digits.train.y
    half = len(y) // 2
    source = Dataset("digits", Split(x[:half], y[:half]), digits.test, digits.class_names, digits.input_shape)
    target = Dataset("digits-invert", Split(1 - x[half:], y[half:]), Split(1 - digits.test.x, digits.test.y),
                     digits.class_names, digits.input_shape)
    return source, target


def small_model(seed=0):
    torch.manual_seed(seed)
    return ll.models.mlp(64, 10, hidden=(32, 32))


