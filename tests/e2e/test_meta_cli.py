"""`lifelong meta` end to end on small budgets, plus bad input."""

import json

import pytest

from lifelong.cli import main
from lifelong.experiment.meta import RECORD_KEYS

FAST = ["--iterations", "5", "--eval-tasks", "20", "--hidden", "16", "--valid-tasks", "5"]


def test_json_one_object_per_method_shots_seed_with_the_baselines_beside(capsys):
    code = main(["meta", "--benchmark", "digits-fewshot", "--method", "maml,protonet", "--ways", "3",
                 "--shots", "1,2", "--seeds", "2", "--steps", "1", "--json", *FAST])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = [json.loads(line) for line in out.strip().splitlines()]
    keys = [(r["method"], r["shots"], r["seed"]) for r in rows]
    assert keys == [(m, k, s) for m in ("maml", "protonet", "baseline", "finetune") for k in (1, 2) for s in (0, 1)]
    assert all(set(RECORD_KEYS) | {"acc"} <= set(r) and r["ways"] == 3 for r in rows)
    assert all(0 <= r["acc"] <= 1 and r["ci95"] > 0 for r in rows)
    assert {r["steps"] for r in rows if r["method"] == "protonet"} == {0}
    assert all(r["model"] == "conv4" and r["kept"] in (0, 5) for r in rows)  # the image default; model selection


def test_sinusoid_table_steps_and_run_folder(capsys, tmp_path):
    out_dir = tmp_path / "meta"
    code = main(["meta", "--method", "fomaml", "--steps", "1,10", "--out", str(out_dir), *FAST])
    out, _ = capsys.readouterr()
    assert code == 0 and "MSE (95% CI)" in out and "fomaml" in out and "finetune" in out
    saved = json.loads((out_dir / "results.json").read_text())
    assert saved["schema"] == "lifelong.meta/1" and len(saved["records"]) == 6  # 3 methods x 2 step counts
    first = saved["records"][0]
    assert first["benchmark"] == "sinusoid" and first["ways"] is None and f"{first['mse']:.3f}" in out
    for name in ("results.png", "losses.png"):
        assert (out_dir / name).read_bytes()[:4] == b"\x89PNG"
    before = (out_dir / "results.json").read_bytes()
    assert main(["meta", "--out", str(out_dir), *FAST]) == 2  # a finished run is not overwritten
    assert "--overwrite" in capsys.readouterr().err and (out_dir / "results.json").read_bytes() == before


def test_a_meta_test_pool_of_exactly_ways_classes_is_warned_in_one_line(capsys):
    assert main(["meta", "--benchmark", "digits-fewshot", "--method", "protonet", "--ways", "2", "--classes",
                 "0-5/6-7/8-9", "--json", *FAST]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "meta-test pool" in line]
    assert warned == ["lifelong: warning: the meta-test pool [8, 9] holds exactly 2 classes, so every 2-way test "
                      "episode is the same task and the 95% CI measures sample noise only: give it more classes "
                      "(--classes)"]


@pytest.mark.parametrize("args, message", [
    (["--method", "protonet"], "classification tasks only"),
    (["--method", "mamal"], "did you mean 'maml'"),
    (["--benchmark", "digits-fewshot", "--ways", "9"], "at least 9 classes"),
    (["--shots", "0"], "--shots"),
    (["--benchmark", "digits-fewshot", "--classes", "0-4/5"], "TRAIN/VALID/TEST"),
    (["--rotate"], "sinusoid tasks cannot be rotated"),
    (["--benchmark", "mnist1d-fewshot", "--ways", "2", "--rotate"], "square images"),
    (["--valid-every", "-1"], "--valid-every"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    assert main(["meta", *FAST, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
