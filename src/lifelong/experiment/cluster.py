"""Ray, for `lifelong bench --ray` and `lifelong tune`: an optional extra (`pip install 'lifelong[ray]'`),
imported only inside `ray_session`, so that `import lifelong` and `lifelong --help` never load it."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from ..errors import ConfigError
from ..extras import need


@contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator[ModuleType]:
    """The `ray` module, connected: to the cluster at `address` ("auto", "ray://host:10001", "host:6379"), or,
    without one, to a local Ray started offline with `cpus` CPUs (default: all cores), shut down at the
    end with its session folder (logs included) removed. A Ray the caller started already (`ray.init` in
    a notebook or a test) is used as it is."""
    ray = need("ray", "ray")
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tempfile.mkdtemp(prefix="ray-") if address is None else None  # short: Ray's socket paths are limited
    try:
        try:
            if temp is not None:
                ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1",
                         _temp_dir=temp, logging_level=logging.WARNING)
            else:
                ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as err:
            raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({str(err).splitlines()[0]}): start "
                              "it with `ray start --head`, or leave the address out for a local Ray", "ray") from None
        yield ray
    finally:
        ray.shutdown()
        if temp is not None:
            remove_folder(temp)


def remove_folder(folder: str) -> None:
    """Delete a local Ray's temporary folder after `ray.shutdown()`; its processes may still be writing their
    last log lines there for a moment, so try a few times."""
    for _ in range(10):
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.exists(folder):
            return
        time.sleep(0.2)

def gpu_request(device: str, share: float) -> dict[str, float]:
    """Ray's `num_gpus` for a run on `device`: `share` of a GPU for cuda, nothing on the CPU."""
    return {"num_gpus": share} if str(device).startswith("cuda") else {}
