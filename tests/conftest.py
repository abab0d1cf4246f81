import pytest
import torch

import lifelong as ll


@pytest.fixture(scope="session")
def digits():
    return ll.data.digits()


@pytest.fixture
def digits_stream(digits):
    return ll.data.split(digits, n_tasks=5, scenario="class", seed=0)


def small_mlp(stream, seed=0, hidden=(64,)):
    torch.manual_seed(seed)
    return ll.models.mlp(64, stream.n_outputs, hidden=hidden)
