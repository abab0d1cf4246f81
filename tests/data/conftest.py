"""Shared, session-scoped data for the tests/data suite (loaded once: loading is the slow part)."""

from __future__ import annotations

import numpy as np
import pytest

from lifelong.data import arrays, digits


@pytest.fixture(scope="session")
def digits_ds():
    """scikit-learn's 8x8 digits (1797 images) with the default 75/25 stratified split."""
    return digits()


@pytest.fixture(scope="session")
def tagged_ds():
    """10 classes x 20 samples of 2 features: feature 0 is the original class, feature 1 a unique id,
    so that any task's samples can be traced back to the data set."""
    n_per, c = 20, 10
    y = np.repeat(np.arange(c), n_per)
    x = np.stack([y, np.arange(len(y))], axis=1).astype(np.float32)
    return arrays(x, y, num_classes=c, test_fraction=0.25, seed=0, name="tagged")


@pytest.fixture(scope="session")
def tagged_images():
    """6 classes x 20 images (1, 3, 3): the centre pixel is a unique sample id (class = id // 20), the
    top-left corner is 1 (its place tells how far an image was turned), the rest 0."""
    n_per, c = 20, 6
    y = np.repeat(np.arange(c), n_per)
    x = np.zeros((len(y), 1, 3, 3), dtype=np.float32)
    x[:, 0, 1, 1] = np.arange(len(y))
    x[:, 0, 0, 0] = 1.0
    return arrays(x, y, num_classes=c, test_fraction=0.25, seed=0, name="tagged-images")
