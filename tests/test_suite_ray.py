"""`lifelong bench --ray`: the points as Ray tasks give the local bench's folders and matrices, a point
whose worker is killed is retried and resumes from its checkpoint, and ray stays an optional extra."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from lifelong.checkpoint import PAUSE_ENV
from lifelong.errors import ConfigError
from lifelong.extras import MissingExtra
from lifelong.suite import parse, run_suite, run_suite_ray

TINY = {"n_tasks": 2, "hidden": [16], "epochs": 1, "batch_size": 64}


def tiny_suite(**over):
    return {"settings": TINY, "benchmarks": ["split-digits"], "strategies": ["naive", {"ewc": {"lam": 10}}], **over}


def local_run(data, out):
    """The local bench with one CPU thread, as each Ray point has by default."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_suite(parse(data, "s", out))
    finally:
        torch.set_num_threads(before)


def matrices(outcomes, root):
    return {str(o.point.path.relative_to(root)): json.loads((o.point.path / "results.json").read_text())["runs"][0]
            ["matrix"] for o in outcomes}


def _holders(value: str, killed: set[int]) -> list[int]:
    """Our processes with LIFELONG_PAUSE_AT=`value` whose stderr (a Ray worker's log file) says they hold there."""
    found = []
    for pid in (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()):
        try:
            if pid in killed or f"{PAUSE_ENV}={value}".encode() not in Path(f"/proc/{pid}/environ").read_bytes():
                continue
            if f"paused at {value}" in Path(os.readlink(f"/proc/{pid}/fd/2")).read_text():
                found.append(pid)
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the held worker through /proc")
def test_ray_points_give_the_local_folders_and_matrices_and_a_killed_worker_resumes(ray_local, tmp_path, monkeypatch):
    data = tiny_suite(settings={**TINY, "n_tasks": 3})
    local = local_run(data, tmp_path / "local")
    where = "naive-seed0:task:0"  # naive's worker holds once task 0 is learnt and saved (`checkpointing.PauseAt`)
    monkeypatch.setenv(PAUSE_ENV, where)  # passed on to the points' workers
    killed: set[int] = set()
    stop = threading.Event()

    def killer():
        while not stop.is_set():
            for pid in _holders(where, killed):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    seen = []
    try:
        remote = run_suite_ray(parse(data, "s", tmp_path / "ray"), threads=1, on_outcome=seen.append)
    finally:
        stop.set()
        thread.join()
    # killed once; a retry that started over would have held at task 0 again and been killed again
    assert len(killed) == 1
    assert [o.status for o in remote] == ["ran", "ran"] and len(seen) == 2
    assert [o.point.label for o in remote] == [o.point.label for o in local]  # the suite's order
    assert matrices(remote, tmp_path / "ray") == matrices(local, tmp_path / "local")
    for o in local:
        twin = tmp_path / "ray" / o.point.path.relative_to(tmp_path / "local")
        assert sorted(p.name for p in twin.iterdir()) == sorted(p.name for p in o.point.path.iterdir())
        assert (twin / "config.json").read_text() == (o.point.path / "config.json").read_text()
    again = run_suite_ray(parse(data, "s", tmp_path / "ray"), threads=1)
    assert [o.status for o in again] == ["skipped", "skipped"]


def test_an_error_in_a_point_stops_the_bench_with_its_own_message(ray_local, tmp_path):
    suite = parse(tiny_suite(strategies=[{"replay": {"buffer_size": 100000}}]), "s", tmp_path)
    with pytest.raises(ConfigError, match="larger than the .* training samples"):
        run_suite_ray(suite, threads=1)


def test_without_ray_bench_ray_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    with pytest.raises(MissingExtra, match=r"ray is not installed .*pip install 'lifelong\[ray\]'"):
        run_suite_ray(parse(tiny_suite(), "s", tmp_path))
    assert not any(tmp_path.iterdir())


def test_the_cli_does_not_import_ray():
    code = "import sys, lifelong.cli; sys.exit('ray' in sys.modules or 'ray.tune' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
