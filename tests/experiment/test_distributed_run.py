"""`lifelong run` data-parallel (issue 20): torchrun and `--nproc N` run every rank through the same
command, rank 0 alone writes and prints, and a run whose rank is killed resumes on every rank to the
results of an uninterrupted one. Each torchrun launch costs ~7 s: the checks share three launches."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lifelong.checkpoint import PAUSE_ENV
from lifelong.cli import _without_nproc, main

from ..ranks import run_ranks, start_retried

# 2 strategies x 2 seeds of 5 tasks of ~290 samples: 9 steps of 32 per task; states every 4 steps
RUN = ["run", "--benchmark", "split-digits", "--hidden", "32", "--batch-size", "32", "--strategy", "naive,ewc",
       "--seeds", "2", "--checkpoint-every", "4", "--threads", "2"]
PAUSE = "naive-seed1:step:14"  # in the second fit's second task, 2 steps after a state was saved

IN_RANKS = """
import builtins, contextlib, io
from lifelong.cli import main as cli

def spy(log, name, real):
    def call(*args, **kwargs):
        if name == "open" and len(args) > 1 and isinstance(args[1], int):  # os.open(path, flags)
            writes = args[1] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        elif name == "open":  # builtins.open(file, mode)
            writes = any(c in (args[1] if len(args) > 1 else kwargs.get("mode", "r")) for c in "wax+")
        else:
            writes = True
        path = args[1] if name == "replace" else args[0]
        if writes and not isinstance(path, int) and (str(path).startswith(OUT) or not os.path.isabs(path)):
            log.append(f"{name} {path}")  # in this test's folder or the working one (not torch's caches)
        return real(*args, **kwargs)
    return call

def main():
    run_dir = os.path.join(OUT, "run")
    log, calls = [], []
    patched = [(m, n, getattr(m, n)) for m in (os, builtins, io) for n in ("replace", "mkdir", "unlink", "rmdir",
                                                                          "open") if hasattr(m, n)]
    for module, name, real in patched:
        setattr(module, name, spy(log, name, real))
    try:
        for args in (RUN + ["--out", run_dir, "--json"], RUN + ["--out", run_dir]):  # the second: a finished run
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli(args)
            calls.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    finally:
        for module, name, real in patched:
            setattr(module, name, real)
    return {"run_dir": run_dir, "writes": log, "calls": calls}
"""


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """`lifelong run` in 2 gloo ranks under torchrun (the CLI's `main` in each rank), every file write of
    each rank recorded; then the same command again on the finished run folder, which rank 0 refuses."""
    return run_ranks(f"RUN = {RUN!r}\n" + IN_RANKS, tmp_path_factory.mktemp("ranks"))


def test_rank_0_alone_writes_one_run_folder_with_the_world_size(two_ranks):
    first, second = two_ranks
    assert first["writes"] and second["writes"] == []  # rank 1 writes nothing at all
    run_dir = Path(first["run_dir"])
    assert all(w.split(" ", 1)[1].startswith(str(run_dir)) for w in first["writes"]), first["writes"]
    data = json.loads((run_dir / "results.json").read_text())
    assert data["environment"]["world_size"] == 2
    assert data["environment"]["threads"] == 1  # --threads 2 shared by the 2 processes of this machine
    assert [(r["strategy"], r["seed"]) for r in data["runs"]] == [("naive", 0), ("naive", 1), ("ewc", 0), ("ewc", 1)]
    for r in data["runs"]:
        assert r["world_size"] == 2 and r["batch_size"] == 32  # the global batch
        assert len(r["matrix"]) == 5 and all(len(row) == 5 for row in r["matrix"])
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.suffix == ".json" and "record" in p.name) \
        == ["ewc-seed0.record.json", "ewc-seed1.record.json", "naive-seed0.record.json", "naive-seed1.record.json"]


def test_only_rank_0_prints_rows_tables_and_errors(two_ranks):
    (run0, again0), (run1, again1) = (r["calls"] for r in two_ranks)
    rows = [json.loads(line) for line in run0["stdout"].splitlines()]
    assert [(r["strategy"], r["seed"], r["world_size"], r["batch_size"]) for r in rows] == [
        ("naive", 0, 2, 32), ("naive", 1, 2, 32), ("ewc", 0, 2, 32), ("ewc", 1, 2, 32)]  # one per fit, not per rank
    saved = runs(two_ranks[0]["run_dir"])
    assert [r["matrix"] for r in rows] == [r["matrix"] for r in saved]
    assert run0["code"] == run1["code"] == 0 and run1["stdout"] == run1["stderr"] == ""
    # the finished folder: rank 0 refuses it in one line, rank 1 stops quietly, both with exit code 2
    assert again0["code"] == again1["code"] == 2
    assert again0["stderr"].count("lifelong: error:") == 1 and "already holds a finished run" in again0["stderr"]
    assert again1["stdout"] == again1["stderr"] == "" and again0["stdout"] == ""


def _rank_pid(tag: str, rank: int) -> int | None:
    """The pid of the worker process of `rank` whose environment holds `tag` (set by this test)."""
    for proc in Path("/proc").iterdir():
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if tag.encode() in env and f"RANK={rank}".encode() in env and any(e.startswith(b"LOCAL_RANK=") for e in env):
            return int(proc.name)
    return None


def killed_run(tmp_path: Path) -> Path:
    """The run folder of `torchrun ... -m lifelong run` held at PAUSE (after a finished fit, mid-task in
    the second) and its rank 1 killed with SIGKILL there (torchrun then stops rank 0)."""
    out, tag = tmp_path / "run", f"LIFELONG_TEST_RUN={tmp_path}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", PAUSE_ENV: PAUSE, tag.split("=")[0]: str(tmp_path)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    proc = subprocess.Popen([*torchrun, "-m", "lifelong", *RUN, "--out", str(out)], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=env, start_new_session=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.strip() == f"lifelong: paused at {PAUSE}":
                break
        else:
            pytest.fail(f"the run never reached {PAUSE}: exit code {proc.wait()}")
        for _ in range(50):  # both ranks print the line; rank 1 may be the second to get there
            pid = _rank_pid(tag, 1)
            if pid is not None:
                break
            time.sleep(0.1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(timeout=120) != 0  # torchrun stops the other rank and fails
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    states = list((out / "checkpoints" / "naive-seed1.resume").glob("state-*.json"))
    assert states and not (out / "results.json").exists()  # killed mid-fit, with states inside its task
    return out


def runs(run_dir: Path | str) -> list[dict]:
    return json.loads((Path(run_dir) / "results.json").read_text())["runs"]


def test_a_killed_rank_resumes_on_every_rank_to_the_uninterrupted_results(two_ranks, tmp_path):
    """After `killed_run`, `lifelong run --nproc 2 --resume`: every rank restores the same state, and the
    results equal those of the uninterrupted 2-rank run, bit for bit."""
    out = killed_run(tmp_path)
    resumed = start_retried([sys.executable, "-m", "lifelong", *RUN, "--nproc", "2", "--resume", str(out), "--json"],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = runs(two_ranks[0]["run_dir"])
    rows = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert [r["matrix"] for r in rows] == [r["matrix"] for r in reference]  # one fit read back, one resumed, 2 new
    assert [r["matrix"] for r in runs(out)] == [r["matrix"] for r in reference]
    assert [r["losses"] for r in runs(out)] == [r["losses"] for r in reference]


@pytest.mark.slow
def test_a_killed_two_rank_run_resumes_in_one_process(two_ranks, tmp_path, capsys):
    """Resumed in one process, the killed 2-rank run ends close to the uninterrupted one (sums in another
    order), with a one-line warning that says so."""
    out = killed_run(tmp_path)
    assert main(["run", "--resume", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    assert "started in 2 data-parallel process(es) and continues in 1" in captured.err
    alone, reference = [json.loads(line) for line in captured.out.splitlines()], runs(two_ranks[0]["run_dir"])
    assert alone[0]["matrix"] == reference[0]["matrix"]  # read back
    assert [r["world_size"] for r in alone] == [2, 1, 1, 1] and abs(alone[1]["acc"] - reference[1]["acc"]) < 0.05


def test_nproc_takes_a_whole_number_of_processes(capsys):
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(SystemExit) as exit_:
            main(["run", "--nproc", bad])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "expected a whole number of processes >= 1" in err
    # a configuration error is found before torchrun starts any process
    assert main(["run", "--nproc", "2", "--epochs", "0"]) == 2
    assert capsys.readouterr().err.count("lifelong: error:") == 1


def test_nproc_is_left_out_of_the_command_line_torchrun_runs():
    assert _without_nproc(["run", "--nproc", "2", "--seeds", "2"]) == ["run", "--seeds", "2"]
    assert _without_nproc(["run", "--nproc=2", "--json"]) == ["run", "--json"]
    assert _without_nproc(["run", "--npr", "3", "--n-tasks", "2"]) == ["run", "--n-tasks", "2"]
    assert _without_nproc(["run", "--out", "x", "--", "--nproc"]) == ["run", "--out", "x", "--", "--nproc"]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL across 2 processes needs 2 CUDA GPUs")
def test_two_ranks_on_two_gpus_with_nccl(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lifelong", *RUN, "--device", "cuda", "--nproc", "2", "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads((tmp_path / "run" / "results.json").read_text())["runs"]
    assert [r["world_size"] for r in runs] == [2] * 4
