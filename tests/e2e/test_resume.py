"""Crash-safe runs end to end: a real `lifelong run` is killed with SIGKILL at exact points (held there
by LIFELONG_PAUSE_AT, see `lifelong.checkpointing.PauseAt`), resumed with `--resume`, and must end with
the results of an uninterrupted run, bit for bit."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys

import pytest

import lifelong as ll
from lifelong import __version__
from lifelong.checkpoint import PAUSE_ENV
from lifelong.cli import build_config, main, parser
from lifelong.experiment import load_results, run

RUN = ["run", "--benchmark", "split-digits", "--hidden", "32", "--batch-size", "32", "--epochs", "2",
       "--strategy", "naive", "--strategy", "ewc+replay", "--replay-buffer-size", "50", "--checkpoint-every", "5"]


def lifelong(args, pause=None):
    """Run the CLI in a subprocess: its stdout and stderr; with `pause`, SIGKILL it once it holds there."""
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV} | ({PAUSE_ENV: pause} if pause else {})
    proc = subprocess.Popen([sys.executable, "-m", "lifelong", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    if pause is None:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return out, err
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the run says where it holds, then waits to be killed
            if line.strip() == f"lifelong: paused at {pause}":
                break
        else:
            pytest.fail(f"the run never reached {pause}: exit code {proc.wait()}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None and pause is None:
            proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL
    return "", ""


def test_killed_run_resumes_to_identical_results(tmp_path):
    """Naive, then EWC+replay (a Compose: penalty state, a buffer with its own random stream). Killed
    mid-epoch in the naive fit, between a state's tensors and its JSON in the middle of an epoch of the
    stateful one, and between its tasks; `--checkpoint-every 5`, so each kill loses a few steps, redone.
    Then the newest state is damaged: the last resume passes it over for the one before."""
    config = build_config(parser().parse_args(RUN))
    ref = run(dataclasses.replace(config, checkpoint_every=0))  # uninterrupted, in this process, no files
    stream = ll.data.benchmark("split-digits", seed=0)
    steps = [2 * math.ceil(len(t.train) / 32) for t in stream]  # per task: 2 epochs of batches of 32
    step = 5 * math.ceil((steps[0] + steps[1] // 2 + 1) / 5)  # a state saved in task 1's second epoch
    number = 1 + step // 5 + 1  # states: 1 at the start, one every 5 steps, one after task 0
    out = tmp_path / "run"
    lifelong([*RUN, "--out", str(out)], pause="naive-seed0:step:7")  # after state 2 (step 5)
    lifelong(["run", "--resume", str(out)], pause=f"ewc_replay-seed0:write:{number}")  # naive finished
    lifelong(["run", "--resume", str(out)], pause="ewc_replay-seed0:task:2")
    newest = sorted((out / "checkpoints" / "ewc_replay-seed0.resume").glob("state-*.safetensors"))[-1]
    newest.write_bytes(newest.read_bytes()[:-100])
    printed, err = lifelong(["run", "--resume", str(out), "--json"])
    assert err == f"lifelong: warning: state {newest} is truncated or altered (checksum mismatch): resuming from " \
        "an older state\n"
    got = load_results(out / "results.json")
    for a, b in zip(ref, got["runs"], strict=True):
        assert (a["strategy"], a["matrix"], a["losses"]) == (b["strategy"], b["matrix"], b["losses"])
    assert [json.loads(line)["matrix"] for line in printed.splitlines()] == [r["matrix"] for r in ref]
    assert got["config"] == config.to_dict()
    assert not list((out / "checkpoints").glob("*.resume"))  # finished fits keep their record, not their states


TINY = ["run", "--benchmark", "split-digits", "--n-tasks", "2", "--hidden", "8", "--strategy", "naive"]


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def files(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_resume_refusals_are_one_line_and_touch_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(capsys, *TINY, "--out", str(out))[0] == 0
    (out / "results.json").unlink()  # as if killed after its last fit: unfinished
    before = files(out)
    for args, message in [
        ([*TINY, "--out", str(out)], "holds an unfinished run: continue it with `lifelong run --resume"),
        (["run", "--resume", str(out), "--epochs", "3"], "another configuration (epochs: 1 there, 3 here)"),
        (["run", "--resume", str(out), "--out", str(tmp_path / "x")], "drop --out"),
        (["run", "--resume", str(tmp_path / "nothing")], "holds no run to resume"),
        (["run", "--checkpoint-every", "5", "--benchmark", "split-digits"], "--checkpoint-every saves the states"),
        (["run", "--checkpoint-every", "-1", "--benchmark", "split-digits"], "--checkpoint-every must be"),
    ]:
        code, _, err = cli(capsys, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
        assert files(out) == before
    run_file = out / "checkpoints" / "run.json"
    info = json.loads(run_file.read_text())
    run_file.write_text(json.dumps({**info, "lifelong": "0.0.1"}))
    code, _, err = cli(capsys, "run", "--resume", str(out))
    assert code == 2 and f"started by lifelong 0.0.1 and this is {__version__}" in err
    run_file.write_text(json.dumps(info))
    code, printed, _ = cli(capsys, "run", "--resume", str(out), "--checkpoint-every", "7")  # may change
    assert code == 0 and "naive" in printed and load_results(out / "results.json")["config"]["checkpoint_every"] == 7
    code, _, err = cli(capsys, "run", "--resume", str(out))
    assert code == 2 and "finished run (results.json): there is nothing to resume" in err
    assert cli(capsys, *TINY, "--out", str(out), "--overwrite", "--epochs", "2")[0] == 0
    assert load_results(out / "results.json")["config"]["epochs"] == 2


def test_resume_with_another_thread_count_warns(tmp_path, capsys):
    """The thread count can change PyTorch's sums in the last bits: run.json records it, and a resume with
    another count says so in one line (and how to match it), then finishes (`main` restores the count)."""
    out = tmp_path / "run"
    assert cli(capsys, *TINY, "--threads", "1", "--out", str(out))[0] == 0
    assert json.loads((out / "checkpoints" / "run.json").read_text())["threads"] == 1
    (out / "results.json").unlink()
    code, _, err = cli(capsys, "run", "--resume", str(out), "--threads", "2")
    assert code == 0 and err.strip() == (f"lifelong: warning: {out} was started with 1 CPU thread(s) and "
                                         "continues with 2: sums may round differently from an uninterrupted "
                                         "run; pass --threads 1 for identical results")
    (out / "results.json").unlink()
    code, _, err = cli(capsys, "run", "--resume", str(out), "--threads", "1")
    assert code == 0 and "warning" not in err
