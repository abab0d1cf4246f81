"""Every computing command (`pretrain`, `transfer`, `meta`, `adapt`) through the one experiment model:
`--config FILE`, `--out DIR` (never overwritten without `--overwrite`), `--json` (one object per
record) and `--resume DIR` at record granularity (finished units are read back, the others run
again), on tiny settings."""

import json

import pytest

from lifelong.cli import _strategy_line, main
from lifelong.experiment import EXPERIMENTS
from lifelong.files import seal
from lifelong.registry import Registry
from lifelong.strategies import STRATEGIES

TRANSFER = """source: "digits:0-4"
target: "digits:5-9"
model: mlp
hidden: [16]
source-epochs: 1
shots: [1, all]
method: scratch,features
steps: 2
seeds: 2
"""
CASES = {  # command: (YAML config, the unit left unfinished by the "kill")
    "pretrain": ("benchmark: \"digits:0-4\"\nmodel: mlp\nhidden: [16]\nepochs: 1\n", None),
    "transfer": (TRANSFER, "seed1"),
    "meta": ("benchmark: digits-fewshot\nmethod: [protonet]\nways: 2\nshots: [1]\niterations: 2\nvalid_tasks: 2\n"
             "eval_tasks: 5\nsteps: [1]\nhidden: [8]\n", "finetune-1shot-seed0"),
    "adapt": ("source: mnist1d\ntarget: mnist1d-noisy\nmethod: [source-only, coral]\nhidden: [16]\nepochs: 1\n"
              "batch_size: 256\nseeds: 2\n", "seed1"),
}
TIMES = ("train_seconds", "eval_seconds", "extract_seconds")


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def untimed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMES} for r in records]


@pytest.mark.parametrize("command", list(CASES))
def test_config_out_json_and_resume(command, tmp_path, capsys):
    text, unfinished = CASES[command]
    experiment = EXPERIMENTS[command]
    (tmp_path / "c.yaml").write_text(text)
    out = tmp_path / "out"
    assert main([command, "--config", str(tmp_path / "c.yaml"), "--out", str(out), "--json"]) == 0
    first = lines(capsys)
    saved = json.loads((out / "results.json").read_text())
    assert saved["schema"] == experiment.schema and saved["config"] == json.loads((out / "config.json").read_text())
    assert [experiment(None).json_record(r) for r in saved["records"]] == first and first
    assert saved["config"]["hidden"] in ([16], [8])  # from the config file

    before = (out / "results.json").read_bytes()
    assert main([command, "--config", str(tmp_path / "c.yaml"), "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err and (out / "results.json").read_bytes() == before

    # a "kill": results.json not written yet, one unit unfinished; the finished ones are read back, not rerun
    (out / "results.json").unlink()
    if unfinished:
        (out / "checkpoints" / f"{unfinished}.records.json").unlink()
    kept = sorted((out / "checkpoints").glob("*.records.json"))[0]
    marked = json.loads(kept.read_text())
    marked["records"][0]["train_seconds"] = -1.0  # re-sealed, as only a deliberate edit would be
    kept.write_text(json.dumps(seal({k: v for k, v in marked.items() if k != "digest"})))
    assert main([command, "--resume", str(out), "--json"]) == 0
    again = lines(capsys)
    assert any(r["train_seconds"] == -1.0 for r in again)  # read back
    assert untimed(again) == untimed(first)  # the rerun unit gives the same records (same seeds)
    assert json.loads((out / "results.json").read_text())["schema"] == experiment.schema
    assert main([command, "--resume", str(out)]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_resume_refuses_another_configuration_and_another_command(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(TRANSFER.replace("seeds: 2", "seeds: 1"))
    out = tmp_path / "out"
    assert main(["transfer", "--config", str(tmp_path / "c.yaml"), "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    (out / "results.json").unlink()
    assert main(["transfer", "--resume", str(out), "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert "another configuration (steps: 2 there, 3 here)" in err and err.count("\n") == 1
    assert main(["meta", "--resume", str(out)]) == 2
    assert "holds a `lifelong transfer` run: continue it with `lifelong transfer --resume" in capsys.readouterr().err
    assert main(["transfer", "--config", str(tmp_path / "c.yaml"), "--out", str(out)]) == 2
    assert "unfinished run: continue it with `lifelong transfer --resume" in capsys.readouterr().err


def test_pretrain_needs_a_folder(capsys):
    assert main(["pretrain", "--benchmark", "digits:0-4", "--model", "mlp"]) == 2
    assert "--out" in capsys.readouterr().err


def test_list_shows_the_scenarios_each_strategy_declares(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for entry in STRATEGIES:
        line = next(line for line in out.splitlines() if line.startswith(f"  {entry.name} "))
        declared = getattr(entry.factory, "scenarios", None)
        timed = "; task-free with --consolidate-every" if getattr(entry.factory, "scheduled", False) else ""
        assert not declared or line.endswith(f"[{', '.join(sorted(declared))}{timed}]")
    plain = Registry("strategy")
    plain.register("bare", "declares nothing")(type("Bare", (), {}))
    assert _strategy_line(next(iter(plain))) == ("bare", "declares nothing")  # before strategies declared them
