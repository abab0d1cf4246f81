"""RunConfig: the validation protocol used to choose hyper-parameters."""

import pytest
import torch

import lifelong as ll
from lifelong.experiment import RunConfig, make_stream, run


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.flatten(1)}


def test_validation_replaces_the_test_split_by_held_out_training_data():
    config = RunConfig(benchmark="split-digits", validation=0.25)
    full, held = make_stream(RunConfig(benchmark="split-digits"), 0), make_stream(config, 0)
    for f, h in zip(full, held):
        original = rows(f.train.x)
        assert rows(h.test.x) <= original and rows(h.train.x) <= original  # both from training data
        assert not rows(h.test.x) & rows(h.train.x)
        assert not rows(h.test.x) & rows(f.test.x)  # no test sample is ever evaluated
        assert len(h.test) == pytest.approx(0.25 * len(f.train), abs=len(f.classes))
        assert h.valid is None


def test_validation_run_is_labelled_and_bad_fractions_refused():
    rec = run(RunConfig(benchmark="split-digits", strategy=["naive"], validation=0.2, n_tasks=2))[0]
    assert rec["evaluated_on"] == "validation"
    assert run(RunConfig(benchmark="split-digits", strategy=["naive"], n_tasks=2))[0]["evaluated_on"] == "test"
    for bad in (-0.1, 1.0):
        with pytest.raises(ll.ConfigError, match="`validation`"):
            RunConfig(validation=bad).validate()


def test_online_run_writes_the_curve_and_its_metrics(tmp_path, capsys):
    from lifelong.cli import main

    out = tmp_path / "online"
    assert main(["run", "--benchmark", "split-digits", "--scenario", "online", "--strategy", "naive,mir",
                 "--batch-size", "10", "--eval-every", "300", "--eval-samples", "40", "--blurry", "0.1",
                 "--out", str(out)]) == 0
    import json

    runs = json.loads((out / "results.json").read_text())["runs"]
    for rec in runs:
        curve = rec["online"]
        assert rec["scenario"] == "task-free" and len(rec["matrix"]) == 5 and len(curve["ends"]) == 5
        assert len(curve["samples"]) == len(curve["anytime"]) == len(curve["tasks"])
        grid = [a for a, on in zip(curve["anytime"], curve["regular"]) if on]  # every 300 samples
        assert len(grid) == 1347 // 300 and rec["aaa"] == pytest.approx(sum(grid) / len(grid))
        assert rec["stream"]["info"]["online"]["blurry"] == 0.1
    assert (out / "online-mir.png").exists()
    assert "AAA" in capsys.readouterr().out
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert any(p.name.endswith("-online.png") for p in (tmp_path / "report" / "figures").iterdir())


@pytest.mark.parametrize("args, message", [
    (["--blurry", "0.2"], "--blurry is for online streams: add --scenario online"),
    (["--scenario", "online", "--strategy", "ewc"], "ewc needs task boundaries"),
    (["--scenario", "online", "--blurry", "2"], "--blurry must be a number from 0 to 1"),
    (["--scenario", "online", "--eval-every", "0"], "--eval-every must be a whole number >= 1"),
    (["--scenario", "online", "--epochs", "2"], "an online stream is met once: leave --epochs out"),
    (["--scenario", "online", "--checkpoint-every", "5"], "leave --checkpoint-every out"),
    (["--scenario", "online", "--consolidate-every", "50"], "and the run has none of them"),
])
def test_online_options_are_checked_before_anything_is_written(args, message, tmp_path, capsys):
    from lifelong.cli import main

    assert main(["run", "--benchmark", "split-digits", *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_online_run_with_scheduled_consolidation():
    rec = run(RunConfig(benchmark="split-digits", scenario="online", strategy=["si"], batch_size=10, eval_every=500,
                        eval_samples=20, consolidate_every=400, n_tasks=2))[0]
    assert rec["online"]["consolidate_every"] == 400 and 0 <= rec["acc"] <= 1
