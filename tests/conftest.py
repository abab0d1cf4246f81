import os
import shutil
import tempfile

import pytest
import torch

import lifelong as ll
from lifelong.data import sources

NO_FMNIST = "Fashion-MNIST is not installed here (`make data`, or its four IDX files in $LIFELONG_DATA/fashion-mnist)"


def pytest_configure(config):
    """The command line's catalog (`lifelong.catalog`) is cached for this session in a folder of its own,
    which commands started as subprocesses share, rather than in the user's ~/.cache."""
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="lifelong-test-cache-")
    config.addinivalue_line("markers", "fmnist: needs Fashion-MNIST; skipped, saying so, where it is not installed")


def pytest_unconfigure(config):
    shutil.rmtree(os.environ["XDG_CACHE_HOME"], ignore_errors=True)


def pytest_runtest_setup(item):
    """Tests marked `fmnist` skip with NO_FMNIST where `fashion_mnist()` would find no data set."""
    if item.get_closest_marker("fmnist") is not None and sources.fashion_mnist_files() is None:
        pytest.skip(NO_FMNIST)


@pytest.fixture(scope="session")
def digits():
    return ll.data.digits()


@pytest.fixture
def digits_stream(digits):
    return ll.data.split(digits, n_tasks=5, scenario="class", seed=0)


def small_mlp(stream, seed=0, hidden=(64,)):
    torch.manual_seed(seed)
    return ll.models.mlp(64, stream.n_outputs, hidden=hidden)


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray of 2 CPUs for the whole session, started once offline (~5 s), as ARCHITECTURE.md
    says (no usage stats, no dashboard, the node on 127.0.0.1), shut down at the end with its session
    folders removed. Tests that take it skip where ray is not installed."""
    import logging
    import os
    import tempfile

    from lifelong.experiment.cluster import remove_folder

    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit in 107 characters
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=temp,
             log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()
    remove_folder(temp)
