"""CSV logs always, TensorBoard when installed: the logs hold exactly the numbers of the records."""

import csv
import re
import sys

import pytest

from lifelong import runlog
from lifelong.extras import MissingExtra
from lifelong.experiment import RunConfig, run

CONFIG = RunConfig(benchmark="split-digits", strategy=["naive", "ewc"], seeds=2, n_tasks=3, hidden=[16], epochs=2,
                   batch_size=64)


@pytest.fixture(scope="module")
def records():
    return run(CONFIG)


def rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_csv_logs_hold_the_records(records, tmp_path):
    runlog.write_csv(tmp_path, records)
    metrics, losses, matrix = (rows(tmp_path / f"{n}.csv") for n in ("metrics", "losses", "matrix"))
    assert [(r["strategy"], int(r["seed"])) for r in metrics] == [(r["strategy"], r["seed"]) for r in records]
    for row, rec in zip(metrics, records):
        assert all(float(row[k]) == rec["metrics"][k] for k in runlog.METRIC_KEYS)
    assert len(losses) == 4 * 3 * 2  # (strategy, seed) x tasks x epochs
    for rec in records:
        mine = [r for r in matrix if r["strategy"] == rec["strategy"] and int(r["seed"]) == rec["seed"]]
        rebuilt = [[None] * 3 for _ in range(3)]
        for r in mine:
            rebuilt[int(r["after_task"])][int(r["task"])] = float(r["accuracy"])
        assert rebuilt == rec["matrix"]
        epochs = [[float(r["loss"]) for r in losses if r["strategy"] == rec["strategy"]
                   and int(r["seed"]) == rec["seed"] and int(r["task"]) == t] for t in range(3)]
        assert epochs == rec["losses"]


def test_tensorboard_missing_is_a_clear_error(monkeypatch, records, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(MissingExtra, match=re.escape("pip install 'lifelong[tensorboard]'")):
        runlog.write_tensorboard(tmp_path, records)
    assert not (tmp_path / "tensorboard").exists()


def test_tensorboard_scalars(records, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runlog.write_tensorboard(tmp_path, records)
    rec = records[3]
    events = EventAccumulator(str(tmp_path / "tensorboard" / f"{rec['strategy']}-seed{rec['seed']}"))
    events.Reload()
    accuracy = [e.value for e in events.Scalars("accuracy/task0")]
    assert accuracy == pytest.approx([row[0] for row in rec["matrix"]], abs=1e-6)
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([v for t in rec["losses"] for v in t], rel=1e-6)
    assert events.Scalars("metrics/acc")[0].value == pytest.approx(rec["acc"], abs=1e-6)
