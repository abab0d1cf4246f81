"""The command line's catalog (`lifelong.catalog`): a cache of every command's options and of the
`lifelong list` tables that equals the live registries, is rebuilt when the sources change or the file
is damaged, and lets `--help`, `list`, `report` and the errors of a mistyped command line run without
importing PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lifelong import catalog, cli
from lifelong.errors import ConfigError
from lifelong.experiment import EXPERIMENTS, RunConfig, run, write_run_dir
from lifelong.strategies import STRATEGIES, Naive

PROBE = """import sys
from lifelong.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
sys.stderr.write(f"torch imported: {'torch' in sys.modules}\\n")
sys.exit(code)"""


def probe(*argv: str) -> tuple[int, str, list[str]]:
    """(exit code, stdout, stderr lines) of `lifelong ARGV` in a new process, whose last stderr line says
    whether it imported torch (the cache is this session's: tests/conftest.py)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr.splitlines()


def test_the_cached_catalog_equals_the_live_registries(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = catalog.load(cli.live_catalog)
    (written,) = (tmp_path / "lifelong").glob("catalog-*.json")
    assert json.loads(written.read_text()) == built
    monkeypatch.setattr(catalog, "source_digest", lambda: "e" * 64)  # the sources edited: the old entry goes
    catalog.load(cli.live_catalog)
    assert [p.name for p in (tmp_path / "lifelong").glob("catalog-*.json")] == [f"catalog-{'e' * 24}.json"]
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = catalog.load(cli.live_catalog)
    assert catalog.load(lambda: pytest.fail("rebuilt although cached")) == built
    assert set(built["commands"]) == set(EXPERIMENTS)
    assert built["commands"]["run"]["flags"]["ewc.lam"] == "--ewc-lambda"
    assert ["ewc", "Elastic Weight Consolidation"] in [[n, w[:28]] for n, w in built["lists"][2][1]]


def test_a_stale_or_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(catalog, "source_digest", lambda: "a" * 64)
    path = catalog.cache_file("a" * 64)
    path.parent.mkdir(parents=True)
    for damaged in ("{not json", json.dumps({"digest": "b" * 64, "commands": {}, "lists": []}),
                    json.dumps({"digest": "a" * 64, "commands": {}})):
        path.write_text(damaged)
        assert catalog.load(lambda: {"commands": {"x": 1}, "lists": []})["commands"] == {"x": 1}
        assert json.loads(path.read_text())["commands"] == {"x": 1}


def test_an_edited_source_file_changes_the_digest(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(catalog, "ROOT", tmp_path)
    before = catalog.source_digest()
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert catalog.source_digest() != before


def test_without_a_writable_cache_each_start_builds_it(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # a file where the folder would be
    assert catalog.load(lambda: {"commands": {}, "lists": [("t", [("a", "b")])]})["lists"] == [["t", [["a", "b"]]]]


def helps(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """The --help of the top level and of every command."""
    shown = {}
    for command in ("", *EXPERIMENTS, "bench", "tune", "report"):
        with pytest.raises(SystemExit):
            cli.parser().parse_args([command, "--help"] if command else ["--help"])
        shown[command] = capsys.readouterr().out
    return shown


def test_the_parser_from_the_cache_is_the_live_one(monkeypatch, capsys, tmp_path):
    live = helps(capsys)  # in a process that has imported the experiments, the parser reads them
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    catalog.load(cli.live_catalog)
    monkeypatch.setattr(cli, "commands", lambda: catalog.load(lambda: pytest.fail("not cached")))
    assert helps(capsys) == live and "--ewc-lambda" in live["run"]


def test_a_strategy_registered_by_a_program_gets_its_flags(monkeypatch, capsys):
    class Mine(Naive):
        def __init__(self, alpha: float = 0.5) -> None:
            super().__init__()
            self.alpha = alpha

    monkeypatch.setattr(STRATEGIES, "_entries", dict(STRATEGIES._entries))
    STRATEGIES.register("mine", "a program's own strategy")(Mine)
    args = cli.parser().parse_args(["run", "--strategy", "mine", "--mine-alpha", "2"])
    assert cli.build_config(args).strategy_options == {"mine": {"alpha": 2.0}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    config = RunConfig(benchmark="split-digits", strategy=["naive"], epochs=1, hidden=[16])
    out.mkdir()
    write_run_dir(out, config, run(config))
    return out


def test_help_list_report_and_usage_errors_never_import_torch(run_dir: Path, tmp_path):
    catalog.load(cli.live_catalog)  # this session's cache, as the first command after an install makes it
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    report = ["report", str(run_dir), "--out", str(tmp_path / "rep")]
    for argv, code in ((["--help"], 0), (["--version"], 0), (["list"], 0), (["run", "--help"], 0), (report, 0),
                       (["run", "--ewc-lambda", "abc"], 2), (["run", "--nope"], 2), (["run", "--config", str(bad)], 2),
                       (["bench", str(tmp_path / "no.yaml")], 2), (["tune", str(bad)], 2),
                       (["report", str(tmp_path / "nothing")], 2), (["run", "--out", "x" * 300], 2),
                       (["run", "--strategy", "naive", "--strategy", "ewc+replya"], 2)):
        got, _, err = probe(*argv)
        assert (got, err[-1]) == (code, "torch imported: False"), (argv, err)
        if code == 2:
            assert len(err) == 2 and err[0].startswith("lifelong: error: "), (argv, err)
    assert (tmp_path / "rep" / "report.html").is_file()


def test_an_unknown_strategy_is_said_as_the_registry_says_it(capsys):
    assert cli.main(["run", "--strategy", "ewc+replya"]) == 2
    fast = capsys.readouterr().err
    with pytest.raises(ConfigError) as slow:
        STRATEGIES.get("replya")
    assert fast == f"lifelong: error: {slow.value}\n" and "did you mean 'replay'?" in fast


def test_a_command_that_computes_still_imports_torch(tmp_path):
    got, out, err = probe("run", "--benchmark", "split-digits", "--epochs", "1", "--hidden", "8", "--threads", "1")
    assert got == 0 and "naive" in out and err[-1] == "torch imported: True"
