import json

import pytest
import torch

pytest.importorskip("torchrl")

from lifelong.cli import main  # noqa: E402
from lifelong.errors import ConfigError  # noqa: E402
from lifelong.rl import run_sequence, sequence  # noqa: E402

TINY = ["--tasks", "2", "--steps-per-task", "256", "--evals-per-task", "2", "--episodes", "2"]


def test_the_same_seed_gives_the_same_curves_and_another_seed_others():
    seq = sequence("cartpole-physics", tasks=2)
    runs = [run_sequence(seq, "ppo", "ewc", 256, seed, evals_per_task=2, episodes=2) for seed in (0, 0, 1)]
    assert runs[0]["returns"] == runs[1]["returns"] and runs[0]["returns"] != runs[2]["returns"]
    assert runs[0]["steps"] == [0, 128, 256, 384, 512]  # the start, then 2 points per task
    assert len(runs[0]["returns"][0]) == 2 and runs[0]["env_steps"] == 512


def test_sac_with_replay_runs_through_a_sequence():
    seq = sequence("pendulum-gravity", tasks=2)
    out = run_sequence(seq, "sac", "replay+multihead", 120, 0, evals_per_task=1, episodes=1,
                       agent_options={"hidden": (16,), "batch_size": 16, "learning_starts": 90})
    assert out["steps"] == [0, 120, 240] and out["heads"] == 2
    assert all(0 <= s <= 1 for row in out["scores"] for s in row)


@pytest.mark.parametrize("steps", [0, -5, 1.5, True])
def test_a_budget_that_is_not_a_whole_number_of_steps_is_refused(steps):
    with pytest.raises(ConfigError, match="`steps_per_task` must be a whole number >= 1"):
        run_sequence(sequence("cartpole-physics", tasks=1), "ppo", "naive", steps, 0)
    with pytest.raises(ConfigError, match="`evals_per_task` .* cannot exceed `steps_per_task`"):
        run_sequence(sequence("cartpole-physics", tasks=1), "ppo", "naive", 5, 0, evals_per_task=10)


def test_the_algorithm_must_fit_the_actions():
    with pytest.raises(ConfigError, match="pendulum-gravity has continuous actions: use `algo` sac"):
        run_sequence(sequence("pendulum-gravity", tasks=1), "ppo", "naive", 10, 0)


def test_cli_writes_a_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["rl", "--strategy", "naive,ewc", *TINY, "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["schema"] == "lifelong.rl/1" and (out / "config.json").exists() and (out / "returns.png").exists()
    kinds = [(r["kind"], r["strategy"], r.get("task")) for r in data["records"]]
    assert kinds == [("reference", "naive", 0), ("reference", "naive", 1), ("sequence", "naive", None),
                     ("sequence", "ewc", None)]
    seqs = [r for r in data["records"] if r["kind"] == "sequence"]
    for r in seqs:
        assert len(r["forward_transfer_per_task"]) == 2 and len(r["scores"]) == 5 and len(r["scores"][0]) == 2
        assert 0 <= r["average_performance"] <= 1
    # naive's first task is learnt as its reference is: the same seed, the same start, no transfer
    assert seqs[0]["forward_transfer_per_task"][0] == pytest.approx(0.0, abs=1e-12)
    table = capsys.readouterr().out
    assert "Avg perf" in table and "ewc" in table


@pytest.mark.parametrize("argv, match", [
    (["--strategy", "lwf"], "does not support reinforcement learning"),
    (["--steps-per-task", "0"], "--steps-per-task must be a whole number >= 1"),
    (["--sequence", "classic-discrete"], "observe different sizes .*--pad"),
    (["--sequence", "pendulum-gravity", "--algo", "ppo"], "continuous actions: use --algo sac"),
    (["--sequence", "cartpole"], "unknown sequence 'cartpole'"),
    (["--steps-per-task", "5"], "--evals-per-task .*cannot exceed --steps-per-task"),
])
def test_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, argv, match):
    out = tmp_path / "run"
    assert main(["rl", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lifelong: error:")
    assert __import__("re").search(match, err), err
    assert not out.exists()


def test_an_interrupted_run_resumes_its_unfinished_units_to_the_same_numbers(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["rl", "--strategy", "naive,ewc", *TINY, "--reference", "false", "--out", str(out)]) == 0
    first = json.loads((out / "results.json").read_text())["records"]
    (out / "results.json").unlink()  # as if killed while learning ewc: naive's records are kept
    (out / "checkpoints" / "ewc-seed0.records.json").unlink()
    assert main(["rl", "--resume", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())["records"]
    timed = ("train_seconds", "eval_seconds", "steps_per_second")
    assert [{k: v for k, v in r.items() if k not in timed} for r in again] == \
        [{k: v for k, v in r.items() if k not in timed} for r in first]
    assert again[0]["train_seconds"] == first[0]["train_seconds"]  # naive's unit was read back, not run again


class Killed(Exception):
    pass


@pytest.mark.parametrize("algo, name, spec", [("ppo", "cartpole-physics", "ewc"),
                                              ("ppo", "cartpole-physics", "packnet"),
                                              ("sac", "pendulum-gravity", "ewc+replay"),
                                              ("sac", "pendulum-gravity", "agem+multihead")])
def test_a_run_killed_inside_a_task_resumes_from_the_last_task_end_to_the_same_numbers(tmp_path, algo, name, spec):
    from lifelong.checkpoint import States

    seq = sequence(name, tasks=2)
    small = {"hidden": (16,)} | ({"batch_size": 16, "learning_starts": 60} if algo == "sac" else {})
    steps = 256 if algo == "ppo" else 100
    kw = dict(evals_per_task=2, episodes=1, agent_options=small,
              strategy_options={"agem": {"per_task": 50, "batch_size": 16}})
    whole = run_sequence(seq, algo, spec, steps, 0, **kw)

    def kill(line):
        if line.startswith(f"step {steps + steps // 2}:"):  # inside the second task
            raise Killed

    states = States(tmp_path / "states", "unit")
    with pytest.raises(Killed):
        run_sequence(seq, algo, spec, steps, 0, progress=kill, states=states, **kw)
    assert states.numbers()  # the state at the first task's end
    torch.manual_seed(123)  # whatever the process did in between
    again = run_sequence(seq, algo, spec, steps, 0, states=states, **kw)
    assert again["returns"] == whole["returns"] and again["steps"] == whole["steps"]
    assert again["env_steps"] == whole["env_steps"]


def test_without_the_extra_the_command_says_which_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torchrl", None)  # as if not installed
    assert main(["rl", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == "lifelong: error: torchrl is not installed (needed for rl): pip install 'lifelong[rl]'\n"
    assert not (tmp_path / "run").exists()
