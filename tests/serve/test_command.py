"""`lifelong serve` on the command line, in process: mistakes are one line (exit 2) before anything is served or
stored, and `--replay-log DIR` learns a folder's log again (an audit against its newest state, or another
strategy on the same history)."""

from __future__ import annotations

import secrets
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import torch

from lifelong import checkpoint, models
from lifelong.cli import main, parser
from lifelong.errors import ConfigError
from lifelong.serve.command import token as read_token
from lifelong.serve.config import read, resolve
from lifelong.serve.learner import Learner

from .test_learner import fill, run_until

pytest.importorskip("fastapi", reason="lifelong serve needs the extra `serve` (pip install 'lifelong[serve]')")


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = secrets.token_urlsafe(32)
    monkeypatch.setenv("LIFELONG_TOKEN", value)
    monkeypatch.delenv("LIFELONG_READ_TOKEN", raising=False)
    return value


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lifelong: error: ") and err.count("\n") == 1 and words in err, err


def test_mistakes_are_one_line_and_store_nothing(tmp_path, capsys, token, monkeypatch):
    new = tmp_path / "new"
    one_line_error(capsys, ["serve", "--state", str(new), "--strategy", "ewc"], "needs task boundaries")
    one_line_error(capsys, ["serve", "--state", str(new), "--lr", "-1"], "--lr must be a number > 0")
    one_line_error(capsys, ["serve", "--state", str(new), "--max-batch", "0"], "--max-batch must be a whole")
    one_line_error(capsys, ["serve", "--state", str(new), "--port", "70000"], "--port must be a port number")
    assert not (new / "serve.json").exists()
    resolve(tmp_path / "old", {"strategy": "der", "hidden": [8]})
    one_line_error(capsys, ["serve", "--state", str(tmp_path / "old"), "--strategy", "replay"],
                   "holds a learner with --strategy 'der', not 'replay'")
    one_line_error(capsys, ["serve", "--state", str(tmp_path / "old"), "--der-alpha", "0.25"],
                   "holds a learner with `strategy_options`")
    (tmp_path / "short").write_text("abc\n")
    one_line_error(capsys, ["serve", "--state", str(new), "--token-file", str(tmp_path / "short")],
                   "the token of --token-file (or LIFELONG_TOKEN) must be at least 16 characters")
    one_line_error(capsys, ["serve", "--state", str(new), "--read-token-file", str(tmp_path / "short")],
                   "the token of --read-token-file (or LIFELONG_READ_TOKEN) must be at least 16 characters")
    one_line_error(capsys, ["serve", "--state", str(new), "--max-pending", "0"], "--max-pending must be a whole")
    (tmp_path / "same").write_text(token)
    one_line_error(capsys, ["serve", "--state", str(new), "--read-token-file", str(tmp_path / "same")],
                   "the read-only token (--read-token-file) must differ")
    monkeypatch.delenv("LIFELONG_TOKEN")
    one_line_error(capsys, ["serve", "--state", str(new)], "needs a bearer token: give --token-file (a file")
    one_line_error(capsys, ["serve", "--replay-log", str(tmp_path / "old")], "has learnt nothing yet")
    one_line_error(capsys, ["serve", "--replay-log", str(tmp_path / "nothing")], "holds no served learner")
    one_line_error(capsys, ["serve"], "needs --state: the folder")


def test_replay_log_audits_the_newest_state_and_tries_another_strategy(tmp_path, capsys):
    folder = tmp_path / "state"
    resolve(folder, {"strategy": "replay", "hidden": [8], "inputs": [4], "classes": 3, "buffer_size": 10})
    fill(folder, 9)
    learner = Learner(folder, read(folder), checkpoint_every=0, serving=False)
    run_until(learner, 6)
    learner.save()  # the newest state, at batch 6 of 9
    out = tmp_path / "replayed"
    assert main(["serve", "--replay-log", str(folder), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "replayed 9 batches" in said and "equals the state" in said and "saved at batch 6" in said, said
    model = models.build("mlp", (4,), 3, (8,))
    meta = checkpoint.load(out, model)
    assert meta["seq"] == 9 and meta["config"]["strategy"] == "replay"
    run_until(learner, 9)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  learner.trainer.model.state_dict().values(), strict=True))
    assert main(["serve", "--replay-log", str(folder), "--strategy", "naive"]) == 0
    said = capsys.readouterr().out
    assert "with naive" in said and "audit:" not in said, said
    one_line_error(capsys, ["serve", "--replay-log", str(folder), "--inputs", "5"], "holds batches of --inputs [4]")


def test_token_errors_name_their_argument(tmp_path, monkeypatch):
    (tmp_path / "short").write_text("abc\n")
    monkeypatch.setenv("LIFELONG_READ_TOKEN", "short")
    for path, env, argument in ((tmp_path / "short", "LIFELONG_TOKEN", "token_file"),
                                (None, "LIFELONG_READ_TOKEN", "read_token_file"),
                                (tmp_path / "absent", "LIFELONG_TOKEN", "token_file")):
        with pytest.raises(ConfigError) as err:
            read_token(path, env, argument, True)
        assert err.value.argument == argument and f"`{argument}`" in str(err.value), err.value


def tree(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file and folder under `folder`: its bytes (b"" for a folder), mtime and mode."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns,
                                         p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


def test_replay_log_of_a_read_only_copy_changes_nothing(tmp_path, capsys):
    """An audit (`--replay-log`) of a copy whose files and folders are read-only works and leaves every file
    as it was (no schema or pragma written, no write-ahead file made: bytes, mtimes and the listing)."""
    folder = tmp_path / "state"
    resolve(folder, {"strategy": "replay", "hidden": [8], "inputs": [4], "classes": 3, "buffer_size": 10})
    fill(folder, 5)
    learner = Learner(folder, read(folder), checkpoint_every=0, serving=False)
    run_until(learner, 5)
    learner.save()
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    paths = sorted([copy, *copy.rglob("*")], key=lambda p: -len(p.parts))
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        before = tree(copy)
        assert main(["serve", "--replay-log", str(copy)]) == 0
        assert tree(copy) == before
    finally:
        for path in reversed(paths):
            path.chmod(0o755 if path.is_dir() else 0o644)
    said = capsys.readouterr().out
    assert "replayed 5 batches" in said and "equals the state" in said, said


def test_the_commands_of_docs_serve_md_parse():
    """Every `lifelong serve` command line of docs/serve.md is one the parser takes (they were run by hand)."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "serve.md").read_text()
    lines = [line.split("#")[0] for line in page.splitlines() if ".venv/bin/lifelong serve" in line]
    assert len(lines) >= 4
    for line in lines:
        words = shlex.split(line)
        args = parser().parse_args(words[words.index(".venv/bin/lifelong") + 1:])
        assert args.command == "serve" and (args.state or args.replay_log), line


def test_a_missing_fastapi_names_the_extra(tmp_path, capsys, token, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if not installed
    one_line_error(capsys, ["serve", "--state", str(tmp_path)], "fastapi is not installed (needed for serve): pip "
                   "install 'lifelong[serve]'")
