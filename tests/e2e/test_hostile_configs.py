"""Hostile or careless configs, suites, tune specs and options (docs/errors.md): through the real entry
point each is one line on stderr and exit code 2, refused before anything is written: a finished run
folder given as --out (with --overwrite) is left byte for byte as it was, and a new --out is not made."""

import pytest

from lifelong.configs import MAX_YAML_BYTES
from tests.e2e.test_bad_input import TINY, cli, cli_usage, finished, keep  # noqa: F401 (fixtures)
from tests.test_configs import BOMB

RUN = ["run", *TINY]


@pytest.mark.parametrize("text, message", [
    (BOMB, "repeats the value of line 1 with a YAML alias (*name): aliases are refused"),
    ("epochs: 1\nepochs: 2\n", "gives the key 'epochs' twice (line 2): keep one"),
    ("strategy: [ewc, [replay]]\n", "config value strategy: ['ewc', ['replay']] has the wrong type (expected "
     "list[str])"),
    ("strategy: [1, 2]\n", "config value strategy: [1, 2] has the wrong type"),
    ("strategy: ewc\newc_lambda: abc\n", "--ewc-lambda of ewc: 'abc' has the wrong type (expected float)"),
    ("strategy: ewc\nstrategy_options: {ewc: {lam: [1]}}\n", "--ewc-lambda of ewc: [1] has the wrong type"),
    ("backbone: 5\n", "config value backbone: 5 has the wrong type (expected str | None)"),
    ("seed: 99999999999999999999\n", "config value seed: 99999999999999999999 is out of range"),
])
def test_hostile_config_file(capsys, keep, tmp_path, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    argv = ["run", "--benchmark", "split-digits", "--n-tasks", "2", "--hidden", "16", "--config", config]
    assert message in cli(capsys, *argv, "--out", keep, "--overwrite")
    assert message in cli(capsys, *argv, "--out", tmp_path / "new")
    assert not (tmp_path / "new").exists()  # no unfinished run folder is left behind


def test_config_file_not_utf8_or_too_large(capsys, keep, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_bytes(b"\xff\xfeepochs: 1\n")
    assert "is not UTF-8 text (byte 0): save it as UTF-8" in cli(capsys, *RUN, "--config", config, "--out", keep,
                                                                  "--overwrite")
    config.write_bytes(b"# padding\n" * (MAX_YAML_BYTES // 10 + 1))
    assert "is larger than 1 MB" in cli(capsys, *RUN, "--config", config, "--out", keep, "--overwrite")


@pytest.mark.parametrize("argv, message", [
    (["--seed", "99999999999999999999"], "config value seed: 99999999999999999999 is out of range"),
    (["--device", "tpu"], "--device 'tpu' is not one that trains: use cpu, cuda"),
    (["--device", "meta"], "--device 'meta' is not one that trains"),
    (["--hidden", "2000000000"], "does not fit in memory (it asked for"),
    (["--momentum", "nan"], "--momentum must be a finite number >= 0, got nan"),
    (["--weight-decay", "inf"], "--weight-decay must be a finite number >= 0, got inf"),
])
def test_hostile_options(capsys, keep, tmp_path, argv, message):
    assert message in cli(capsys, *RUN, *argv, "--out", keep, "--overwrite")
    assert message in cli(capsys, *RUN, *argv, "--out", tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("option", ["--out", "--resume"])
def test_a_path_over_the_file_name_limit(capsys, tmp_path, option):
    long = tmp_path / ("x" * 300)
    assert "File name too long: choose another path" in cli(capsys, *RUN, option, long)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["--threads", "99999999999999999999"], ["--threads", "100000"],
                                  ["--nproc", "\u00b2"], ["--nproc", "100000"]])
def test_threads_and_processes_are_capped(capsys, argv):
    assert "per core), got" in cli_usage(capsys, *RUN, *argv)


@pytest.mark.parametrize("command, what", [("bench", "suite file"), ("tune", "tune spec")])
@pytest.mark.parametrize("text, message", [
    (BOMB, "repeats the value of line 1 with a YAML alias (*name): aliases are refused"),
    ("seeds: 1\nseeds: 2\n", "gives the key 'seeds' twice"),
])
def test_hostile_suite_and_tune_files(capsys, tmp_path, command, what, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert f"{what} {path} {message}" in cli(capsys, command, path, "--out", tmp_path / "out")
    path.write_bytes(b"out: caf\xe9\n")
    assert f"{what} {path} is not UTF-8 text" in cli(capsys, command, path, "--out", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_suite_strategy_options_of_the_wrong_type(capsys, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("benchmarks: [split-digits]\nstrategies:\n  - ewc: {lam: abc}\n")
    assert "`lam` of ewc: 'abc' has the wrong type (expected float)" in cli(capsys, "bench", path)
