"""The CLI end to end on split-digits (small and fast), plus bad input."""

import json
import os
import subprocess
import sys

import pytest
import torch

from lifelong import cli
from lifelong.cli import main
from lifelong.data.sources import fashion_mnist_dirs
from lifelong.experiment import EXPERIMENTS, RECORD_KEYS, RESULTS_SCHEMA, continual, load_results, make_strategy

FAST = ["--benchmark", "split-digits", "--hidden", "64", "--batch-size", "16", "--epochs", "2"]


def run_cli(capsys, *args):
    code = main(["run", *FAST, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_one_object_per_strategy_and_seed(capsys):
    code, out, _ = run_cli(capsys, "--strategy", "naive", "--strategy", "joint", "--seeds", "2", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [(r["strategy"], r["seed"]) for r in rows] == [("naive", 0), ("naive", 1), ("joint", 0), ("joint", 1)]
    assert all(set(RECORD_KEYS) <= set(r) for r in rows)
    assert all(len(r["matrix"]) == 5 and r["scenario"] == "class" for r in rows)
    assert min(r["acc"] for r in rows[2:]) > max(r["acc"] for r in rows[:2]) + 0.4


def test_same_seed_same_matrix_through_cli(capsys):
    a = json.loads(run_cli(capsys, "--strategy", "naive", "--json")[1])
    b = json.loads(run_cli(capsys, "--strategy", "naive", "--json")[1])
    assert a["matrix"] == b["matrix"]


def test_table_and_run_directory(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, _ = run_cli(capsys, "--strategy", "naive,joint", "--scenario", "task", "--out", str(out_dir))
    assert code == 0
    assert "naive" in out and "joint" in out and "ACC" in out and "task-incremental" in out
    results = load_results(out_dir / "results.json")
    assert results["schema"] == RESULTS_SCHEMA and len(results["runs"]) == 2
    assert json.loads((out_dir / "config.json").read_text())["scenario"] == "task"
    for name in ("matrix-naive.png", "curves-naive.png", "matrix-joint.png", "curves-joint.png"):
        assert (out_dir / name).read_bytes()[:4] == b"\x89PNG"
    # the table prints the numbers that results.json holds
    acc = results["runs"][0]["acc"] * 100
    assert f"{acc:.2f}" in out


def test_threads_option_sets_records_and_restores_pytorch_threads(capsys, tmp_path, monkeypatch):
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    seen = []
    real = continual.run
    monkeypatch.setattr(continual, "run", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    assert run_cli(capsys, "--strategy", "naive", "--threads", str(want), "--out", str(tmp_path / "run"))[0] == 0
    assert seen == [want] and torch.get_num_threads() == before  # set for the command, then restored
    environment = load_results(tmp_path / "run" / "results.json")["environment"]
    assert environment["threads"] == want and not (tmp_path / "run" / "config.json").read_text().count("threads")


class Built(Exception):
    """Raised by a config's validate: the command got as far as building its config."""


@pytest.mark.parametrize("command, config", [(["transfer"], "CurveConfig"), (["meta"], "MetaConfig"),
                                             (["adapt"], "AdaptConfig"), (["run"], "RunConfig"),
                                             (["pretrain"], "PretrainConfig")])
@pytest.mark.parametrize("threads", [[], ["--threads", "1"]])
def test_threads_is_no_config_option(command, config, threads, monkeypatch):
    def built(self):
        raise Built

    assert EXPERIMENTS[command[0]].config_class.__name__ == config
    monkeypatch.setattr(EXPERIMENTS[command[0]].config_class, "validate", built)
    with pytest.raises(Built):
        main([*command, *threads])
    with pytest.raises(Built):  # the command functions alone, as a program embedding the CLI calls them
        getattr(cli, f"cmd_{command[0]}")(cli.parser().parse_args([*command, *threads]))


def test_finished_run_is_not_clobbered(capsys, tmp_path):
    out_dir = tmp_path / "run"
    assert run_cli(capsys, "--strategy", "naive", "--out", str(out_dir))[0] == 0
    before = {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    assert any(p.suffix == ".safetensors" for p in before)
    code, out, err = run_cli(capsys, "--strategy", "joint", "--out", str(out_dir))
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()} == before
    assert run_cli(capsys, "--strategy", "joint", "--out", str(out_dir), "--overwrite")[0] == 0
    assert load_results(out_dir / "results.json")["runs"][0]["strategy"] == "joint"


def test_config_file_and_command_line_precedence(capsys, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("benchmark: split-digits\nstrategy: [naive]\nepochs: 1\nn-tasks: 2\nhidden: [16]\n")
    assert main(["run", "--config", str(cfg), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert len(row["matrix"]) == 2
    assert main(["run", "--config", str(cfg), "--n-tasks", "5", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["matrix"]) == 5


def test_shared_buffer_size_sets_every_memory_strategy_and_own_options_win(capsys, tmp_path):
    shared = ["--buffer-size", "40", "--replay-batch-size", "8"]
    config = cli.build_config(cli.parser().parse_args(["run", "--strategy", "replay,der,icarl,ewc", *shared,
                                                       "--der-buffer-size", "60"]))
    made = {s: make_strategy(s, config.strategy_options, config.shared_options()).options() for s in config.strategy}
    assert made["replay"] == {"buffer_size": 40, "replay_batch_size": 8, "policy": "reservoir"}
    assert made["der"] == {"buffer_size": 60, "replay_batch_size": 8, "alpha": 1.0}  # --der-buffer-size wins
    assert made["icarl"] == {"buffer_size": 40} and made["ewc"] == make_strategy("ewc", {}).options()
    cfg = tmp_path / "run.yaml"
    cfg.write_text("buffer_size: 40\nreplay-batch-size: 8\n")
    assert cli.build_config(cli.parser().parse_args(["run", "--config", str(cfg)])).shared_options() == \
        {"buffer_size": 40, "replay_batch_size": 8}  # a config file's keys work as the flags
    assert run_cli(capsys, "--strategy", "der", "--n-tasks", "2", "--epochs", "1", *shared, "--out",
                   str(tmp_path / "run"))[0] == 0
    assert load_results(tmp_path / "run" / "results.json")["runs"][0]["options"]["buffer_size"] == 40
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--buffer-size" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--benchmark", "split-fmnst"], "did you mean 'split-fmnist'"),
        (["--strategy", "ewcc"], "unknown strategy 'ewcc'"),
        (["--model", "vgg"], "unknown model 'vgg'"),
        (["--model", "resnet18", "--benchmark", "split-mnist1d"], "resnet18"),
        (["--epochs", "0"], "epochs must be"),
        (["--seeds", "0"], "--seeds"),
        (["--n-tasks", "11"], "n_tasks must be"),
        (["--class-order", "0,0,1"], "class_order"),
        (["--lr", "-1"], "learning rate"),
        (["--buffer-size", "0"], "--buffer-size must be a whole number >= 1"),
        (["--buffer-size", "100000", "--strategy", "replay"], "--buffer-size 100000 is larger"),
        (["--no-such-option"], "unrecognized arguments"),
        (["--epochs", "two"], "invalid int value"),
        (["--scenario", "sideways"], "invalid choice"),
        (["--threads", "0"], "CPU threads >= 1"),
    ],
)
def test_bad_input_one_line_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["run", "--benchmark", "split-digits", *args]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "text, message",
    [("epochz: 3\n", "unknown config key 'epochz'"), ("epochs: three\n", "wrong type"),
     ("- a\n- b\n", "mapping"), ("epochs: [\n", "not valid YAML"), ("lr: true\n", "wrong type")],
)
def test_bad_config_file(capsys, tmp_path, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_out_is_a_file(capsys, tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    assert run_cli(capsys, "--out", str(target))[0] == 2
    assert target.read_text() == "keep me"


def test_list_names_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("split-fmnist", "permuted-fmnist", "rotated-fmnist", "split-digits", "permuted-digits",
                 "split-mnist1d", "naive", "joint", "cumulative", "mlp", "cnn", "resnet18", "domain"):
        assert f"  {name} " in out


def test_output_cut_short_by_its_reader_ends_quietly(monkeypatch):
    """`lifelong list | head -1`: the reader has left, writing fails with EPIPE; no traceback, exit 0."""
    read, write = os.pipe()
    os.close(read)  # the reader leaves before anything is written
    out = os.fdopen(write, "w", buffering=1)  # line-buffered: the first line already fails
    monkeypatch.setattr(sys, "stdout", out)
    try:
        assert main(["list"]) == 0
        out.write("x\n")  # stdout now goes nowhere: the final flush at exit cannot fail again
    finally:
        out.close()


def _subprocess(args, env=None):
    return subprocess.run([sys.executable, "-m", "lifelong", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_corrupt_idx_file_is_refused(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (folder / stem).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 10)
    proc = _subprocess(["run", "--strategy", "naive"], env={"LIFELONG_DATA": str(tmp_path)})
    assert proc.returncode == 2
    assert "truncated" in proc.stderr and "train-images-idx3-ubyte" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


HAVE_FMNIST = any((d / "train-images-idx3-ubyte.gz").exists() for d in fashion_mnist_dirs())


@pytest.mark.skipif(not HAVE_FMNIST, reason="Fashion-MNIST is not installed (make data)")
def test_default_run_shows_forgetting_and_upper_bound():
    """`lifelong run` with no arguments: class-IL Split Fashion-MNIST, naive and joint."""
    proc = _subprocess(["run", "--json"])
    assert proc.returncode == 0, proc.stderr
    rows = {r["strategy"]: r for r in map(json.loads, proc.stdout.strip().splitlines())}
    assert rows["joint"]["acc"] > 0.80
    assert 0.15 < rows["naive"]["acc"] < 0.30  # near 1/5: class-incremental forgetting
    assert rows["naive"]["benchmark"] == "split-fmnist" and len(rows["naive"]["matrix"]) == 5
