"""`lifelong pretrain`, `lifelong transfer` and `lifelong run --backbone --freeze` end to end on digits."""

import json

import pytest
import torch

from lifelong.cli import main
from lifelong.models import load
from lifelong.experiment.transfer import RECORD_KEYS

PRETRAIN = ["pretrain", "--benchmark", "digits:0-4", "--model", "mlp", "--hidden", "32", "--epochs", "3",
            "--batch-size", "32"]


@pytest.fixture
def saved(tmp_path, capsys):
    assert main([*PRETRAIN, "--out", str(tmp_path / "ckpt")]) == 0
    capsys.readouterr()
    return tmp_path / "ckpt"


def test_pretrain_saves_and_refuses_to_overwrite(saved, capsys):
    assert load(saved).head.out_features == 5
    before = (saved / "model.safetensors").read_bytes()
    assert main([*PRETRAIN, "--out", str(saved)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (saved / "model.safetensors").read_bytes() == before
    assert main([*PRETRAIN, "--out", str(saved), "--overwrite", "--seed", "1"]) == 0
    assert (saved / "model.safetensors").read_bytes() != before


def test_transfer_json_table_and_plot(saved, tmp_path, capsys):
    args = ["transfer", "--backbone", str(saved), "--target", "digits:5-9", "--shots", "1,all", "--method",
            "scratch,features,finetune", "--steps", "5", "--batch-size", "64"]
    assert main([*args, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["method"], r["shots"]) for r in rows] == [(m, k) for k in (1, "all")
                                                         for m in ("scratch", "features", "finetune")]
    assert all(set(rows[0]) == set(RECORD_KEYS) and r["source"] == "digits:0-4" for r in rows)
    out = tmp_path / "curve"
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 shot" in text and "all" in text and "finetune" in text
    saved_run = json.loads((out / "results.json").read_text())
    assert saved_run["schema"] == "lifelong.transfer/1" and len(saved_run["records"]) == 6
    assert f"{saved_run['records'][0]['acc'] * 100:.2f}" in text
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["--method", "magic"], "unknown transfer method"),
    (["--shots", "x"], "whole numbers"),
    (["--target", "nope:1-2"], "unknown dataset"),
])
def test_transfer_bad_input(saved, capsys, args, message):
    try:
        code = main(["transfer", "--backbone", str(saved), *args])
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_run_on_a_frozen_pretrained_backbone(saved, capsys):
    before = load(saved).state_dict()
    args = ["run", "--benchmark", "split-digits", "--backbone", str(saved), "--batch-size", "32", "--json"]
    assert main([*args, "--strategy", "naive,slda,ncm", "--freeze", "backbone"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["strategy"] for r in rows] == ["naive", "slda", "ncm"]
    assert rows[1]["acc"] > rows[0]["acc"] + 0.3  # class-IL: a frozen-feature LDA does not forget
    assert all(torch.equal(v, load(saved).state_dict()[k]) for k, v in before.items())  # the file is untouched
    assert main([*args, "--strategy", "naive", "--freeze", "none"]) == 0
    assert main(["run", "--benchmark", "split-mnist1d", "--backbone", str(saved)]) == 2  # 40 inputs, not 64
    assert "shape" in capsys.readouterr().err
    assert main(["run", "--benchmark", "split-digits", "--backbone", str(saved / "nothing")]) == 2
