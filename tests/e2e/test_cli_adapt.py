"""`lifelong adapt` end to end on a small Fashion-MNIST run, plus bad input."""

import json

import pytest

from lifelong.cli import main
from lifelong.data.sources import fashion_mnist_dirs
from lifelong.experiment.adapt import RECORD_KEYS
from lifelong.transfer.adaptation import GRIDS

have_fmnist = any(any(d.glob("t10k-labels-idx1-ubyte*")) for d in fashion_mnist_dirs() if d.is_dir())
FAST = ["--source", "fmnist", "--target", "fmnist-invert", "--hidden", "16", "--epochs", "1", "--batch-size", "512"]


@pytest.mark.skipif(not have_fmnist, reason="Fashion-MNIST is not installed")
def test_json_records_and_table(capsys):
    code = main(["adapt", *FAST, "--method", "source-only,coral", "--coral-lambda", "10", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [(r["method"], r["seed"], r["shots"]) for r in rows] == [("source-only", 0, 0), ("coral", 0, 0)]
    assert all(set(r) == set(RECORD_KEYS) and r["source"] == "fmnist" and r["target"] == "fmnist-invert"
               for r in rows)
    assert main(["adapt", *FAST, "--method", "source-only"]) == 0
    out, _ = capsys.readouterr()
    assert "fmnist -> fmnist-invert" in out and "Target acc %" in out
    assert f"{rows[0]['acc'] * 100:.2f}" in out  # the table prints what --json gave (same seed)


@pytest.mark.skipif(not have_fmnist, reason="Fashion-MNIST is not installed")
def test_select_picks_the_weight_by_a_label_free_scorer(capsys, monkeypatch):
    monkeypatch.setitem(GRIDS, "coral", (0.0, 10.0))
    assert main(["adapt", *FAST, "--method", "coral", "--select", "entropy"]) == 0
    out, _ = capsys.readouterr()
    assert "λ chosen by entropy: coral " in out and "Target acc %" in out


@pytest.mark.parametrize("args, message", [
    (["--method", "mmd"], "unknown adaptation method 'mmd'"),
    (["--target", "fmnist-rot45"], "did you mean 'fmnist-rot30'"),
    (["--tca-kernel", "poly"], "unknown tca kernel 'poly'"),
    (["--dann-hidden", "0"], "positive whole numbers"),
    (["--seeds", "0"], "--seeds must be"),
    (["--select", "devv"], "unknown selection scorer 'devv'"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    assert main(["adapt", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and err.count("\n") == 1
