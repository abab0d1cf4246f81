"""Suites: grid expansion, validation before training, one folder per run, skipping finished runs and
those another process holds."""

import json
import re
from pathlib import Path

import pytest

from lifelong.errors import ConfigError
from lifelong.experiment import SCHEMAS, RunConfig, load_results, run
from lifelong import suite as suite_module
from lifelong.files import exclusive
from lifelong.report import write_report
from lifelong.suite import _run_point, load, parse, run_suite

TINY = {"n_tasks": 2, "hidden": [16], "epochs": 1, "batch_size": 64}


def tiny_suite(**over):
    return {"settings": TINY, "benchmarks": ["split-digits"], "strategies": ["naive", {"ewc": {"lam": 10}}],
            "seeds": 2, **over}


def test_grid_expands_in_order_with_labels_and_folders(tmp_path):
    suite = parse(tiny_suite(scenarios=["class", "task"]), "s", tmp_path)
    assert len(suite.points) == 2 * 2 * 2
    rel = [str(p.path.relative_to(tmp_path)) for p in suite.points]
    assert rel[:4] == ["split-digits/class/naive/seed0", "split-digits/class/naive/seed1",
                       "split-digits/class/ewc-lam=10/seed0", "split-digits/class/ewc-lam=10/seed1"]
    ewc = suite.points[2].config
    assert ewc.strategy == ["ewc"] and ewc.strategy_options == {"ewc": {"lam": 10}}
    assert (ewc.seed, ewc.seeds, ewc.epochs, ewc.hidden, ewc.scenario) == (0, 1, 1, [16], "class")


def test_lists_of_values_are_swept_and_composed_options_go_per_part(tmp_path):
    suite = parse(tiny_suite(strategies=[{"ewc": {"lam": [1, 10]}},
                                         {"ewc+replay": {"ewc": {"lam": 5}, "replay": {"batch_size": [8, 16]}}}],
                             seeds=[3]), "s", tmp_path)
    labels = [p.label for p in suite.points]
    assert labels == ["ewc-lam=1", "ewc-lam=10", "ewc_replay-ewc.lam=5-replay.replay_batch_size=8",
                      "ewc_replay-ewc.lam=5-replay.replay_batch_size=16"]
    assert suite.points[3].config.strategy_options == {"ewc": {"lam": 5}, "replay": {"replay_batch_size": 16}}
    assert {p.config.seed for p in suite.points} == {3}


def test_default_scenario_folder_and_several_grids(tmp_path):
    suite = parse({"settings": TINY, "grids": [
        {"benchmarks": ["split-digits"], "strategies": ["naive"]},
        {"benchmarks": ["split-digits"], "scenarios": ["task"], "strategies": ["pnn"], "settings": {"epochs": 2}},
    ]}, "s", tmp_path)
    assert [str(p.path.relative_to(tmp_path)) for p in suite.points] == [
        "split-digits/class/naive/seed0", "split-digits/task/pnn/seed0"]
    assert [p.config.epochs for p in suite.points] == [1, 2]


@pytest.mark.parametrize("over, message", [
    ({"stratgies": ["naive"]}, "unknown key 'stratgies'"),
    ({"strategies": ["ewcc"]}, "unknown strategy 'ewcc'"),
    ({"strategies": [{"ewc": {"lamda": 1}}]}, "has no option 'lamda'"),
    ({"strategies": [{"ewc": {"lam": -1}}]}, "lam"),
    ({"strategies": [{"ewc+replay": {"lam": 1}}]}, "options per part"),
    ({"benchmarks": ["split-digits", 3]}, "'benchmarks' must be a str"),
    ({"seeds": 0}, "'seeds' must be >= 1"),
    ({"seeds": ["a"]}, "'seeds' must be a int"),
    ({"settings": {"epochs": "two"}}, "epochs: 'two' has the wrong type"),
    ({"settings": {"seed": 3}}, "grid key"),
    ({"settings": {"epohcs": 3}}, "not a `lifelong run` option"),
    ({"strategies": ["naive", "naive"]}, "same run twice"),
    ({"scenarios": ["sideways"]}, "unknown scenario"),
    ({"strategies": [{"ewc": {"lam": "abc"}}]}, "`lam` of ewc: 'abc' has the wrong type (expected float)"),
    ({"strategies": [{"ewc+replay": {"replay": {"buffer_size": [1.5]}}}]}, "`buffer_size` of replay: 1.5 has"),
    # counted before any point is made: a few lines asking for billions of runs do not hang
    ({"seeds": 10**12}, "the seeds make 1000000000000 runs, more than a suite runs (10000)"),
    ({"strategies": [{"ewc": {"lam": list(range(101)), "samples": list(range(1, 101))}}]},
     "the option values of strategy 'ewc' make 10100 runs"),
    ({"strategies": [{"ewc+replay": {"ewc": {"lam": list(range(101)), "samples": list(range(1, 101))}}}]},
     "the option values of strategy 'ewc' make 10100 runs"),
    ({"strategies": [{"ewc+replay": {"ewc": {"lam": list(range(101))},
                                     "replay": {"buffer_size": list(range(1, 101))}}}]},
     "the option values of strategy 'ewc+replay' make 10100 runs"),
    ({"benchmarks": ["split-digits"] * 11, "strategies": [{"ewc": {"lam": list(range(1000))}}]},
     "benchmarks x scenarios x strategies x seeds make 22000 runs"),
])
def test_bad_suites_fail_before_any_training(tmp_path, over, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(tiny_suite(**over), "s", tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_sweep_of_another_command_is_counted_before_its_points_are_made(tmp_path):
    with pytest.raises(ConfigError, match="the `transfer` sweep and seeds make 10100 runs, more than"):
        parse({"grids": [{"command": "transfer", "sweep": {"steps": list(range(1, 101))}, "seeds": 101}]}, "s",
              tmp_path)


def test_suite_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read suite file"):
        load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("benchmarks: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load(tmp_path / "list.yaml")


def test_runs_skip_finished_and_redo_unfinished(tmp_path):
    suite = parse(tiny_suite(), "s", tmp_path)
    first = run_suite(suite)
    assert [o.status for o in first] == ["ran"] * 4
    for o, p in zip(first, suite.points):
        results = load_results(p.path / "results.json")
        assert results["runs"][0]["acc"] == o.acc and results["config"] == p.config.to_dict()
        assert (p.path / "metrics.csv").exists()
    stamp = {p.path: (p.path / "results.json").stat().st_mtime_ns for p in suite.points}
    (suite.points[1].path / "results.json").unlink()  # as if killed before the end
    again = run_suite(parse(tiny_suite(), "s", tmp_path))
    assert [o.status for o in again] == ["skipped", "ran", "skipped", "skipped"]
    assert all((p.path / "results.json").stat().st_mtime_ns == stamp[p.path] for i, p in enumerate(suite.points)
               if i != 1)
    # the re-run gives the very matrix of an uninterrupted run of that point
    assert load_results(suite.points[1].path / "results.json")["runs"][0]["matrix"] == \
        run(suite.points[1].config)[0]["matrix"]


def test_suite_run_equals_a_plain_run(tmp_path):
    suite = parse(tiny_suite(seeds=[1]), "s", tmp_path)
    run_suite(suite)
    point = suite.points[1]
    plain = run(RunConfig(benchmark="split-digits", strategy=["ewc"], strategy_options={"ewc": {"lam": 10}},
                          seed=1, **TINY))[0]
    assert load_results(point.path / "results.json")["runs"][0]["matrix"] == plain["matrix"]


def test_a_finished_run_of_another_config_is_refused_untouched(tmp_path):
    run_suite(parse(tiny_suite(seeds=1), "s", tmp_path))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    changed = tiny_suite(seeds=1, settings={**TINY, "epochs": 2})
    with pytest.raises(ConfigError, match="another configuration"):
        run_suite(parse(changed, "s", tmp_path))
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert json.loads((tmp_path / "split-digits/class/naive/seed0/config.json").read_text())["epochs"] == 1


def test_points_held_by_another_process_are_passed_over(tmp_path):
    """Two `lifelong bench` of one suite share the work: a held point is left to its holder."""
    suite = parse(tiny_suite(seeds=1), "s", tmp_path)
    held = suite.points[0].path
    held.mkdir(parents=True)
    with exclusive(held):
        outcomes = run_suite(suite)
    assert [o.status for o in outcomes] == ["busy", "ran"]
    assert not (held / "results.json").exists()
    assert [o.status for o in run_suite(parse(tiny_suite(seeds=1), "s", tmp_path))] == ["ran", "skipped"]
    # a point its holder finished while we waited is skipped, not run again
    assert _run_point(suite.points[0], tensorboard=False).status == "skipped"


def test_a_suite_stopped_by_a_refused_point_leaves_no_empty_folders(tmp_path):
    """The second point is refused when its data is loaded (a memory larger than the stream), after the
    first ran: the first's folder stays, the empty one made for the second goes, with its empty parents."""
    suite = parse(tiny_suite(seeds=1, strategies=["naive", {"replay": {"buffer_size": 10**6}}]), "s", tmp_path)
    with pytest.raises(ConfigError, match="`buffer_size` 1000000 is larger than"):
        run_suite(suite)
    assert (suite.points[0].path / "results.json").is_file()
    refused = suite.points[1].path
    assert not refused.exists() and not refused.parent.exists() and refused.parent.parent.is_dir()


def test_a_point_another_bench_finishes_during_the_start_is_skipped(tmp_path, monkeypatch):
    """Between the scan for unfinished points and the run, another bench may finish one: no error."""
    run_suite(parse(tiny_suite(seeds=1, strategies=["naive"]), "s", tmp_path))  # "the other bench"
    scanned = set()

    def racing(point):  # the scan saw the point unfinished; it is finished by the time it is checked
        if point.path not in scanned:
            scanned.add(point.path)
            return False
        return real(point)

    real = suite_module.finished
    monkeypatch.setattr(suite_module, "finished", racing)
    outcomes = run_suite(parse(tiny_suite(seeds=1), "s", tmp_path))
    assert [o.status for o in outcomes] == ["skipped", "ran"]


MIXED = {"settings": TINY, "grids": [
    {"benchmarks": ["split-digits"], "strategies": ["naive"]},
    {"command": "transfer", "settings": {"source": "digits:0-4", "target": "digits:5-9", "model": "mlp",
                                         "hidden": [16], "source_epochs": 1, "shots": [1, "all"], "steps": 2},
     "sweep": {"method": [["scratch"], "features,ncm"]}, "seeds": 1},
    {"command": "pretrain", "settings": {"benchmark": "digits:0-4", "model": "mlp", "hidden": [16]}, "seeds": [3]},
]}


def test_a_suite_mixes_commands_and_reports_them(tmp_path):
    suite = parse(MIXED, "s", tmp_path)
    assert [(p.command, str(p.path.relative_to(tmp_path))) for p in suite.points] == [
        ("run", "split-digits/class/naive/seed0"), ("transfer", "transfer/method=scratch/seed0"),
        ("transfer", "transfer/method=features,ncm/seed0"), ("pretrain", "pretrain/default/seed3")]
    assert suite.points[2].config.method == ["features", "ncm"] and suite.points[1].config.shots == [1, None]
    assert suite.points[3].config.seed == 3 and suite.points[0].config.epochs == 1  # top-level settings: `run` only
    outcomes = run_suite(suite)
    assert [o.status for o in outcomes] == ["ran"] * 4 and outcomes[1].headline.startswith("ACC ")
    schemas = [load_results(p.path / "results.json", SCHEMAS)["schema"] for p in suite.points]
    assert schemas == ["lifelong.results/1", "lifelong.transfer/1", "lifelong.transfer/1", "lifelong.pretrain/1"]
    assert (suite.points[3].path / "model.safetensors").exists()
    assert [o.status for o in run_suite(parse(MIXED, "s", tmp_path))] == ["skipped"] * 4
    md, _ = write_report([tmp_path], tmp_path / "report")
    text = md.read_text()
    assert "## split-digits, class-incremental" in text and "## transfer: digits:0-4 -> digits:5-9" in text
    assert "## pretrain: digits:0-4: mlp" in text and "| ncm |" in text


@pytest.mark.parametrize("grid, message", [
    ({"command": "transfr"}, "unknown command 'transfr'"),
    ({"command": "transfer", "strategies": ["naive"]}, "unknown key 'strategies' in a `transfer` grid"),
    ({"command": "transfer", "settings": {"shots": [0]}}, "`shots` takes whole numbers"),
    ({"command": "transfer", "sweep": {"stepz": [1]}}, "'stepz' is not a `lifelong transfer` option"),
    ({"command": "meta", "settings": {"seed": 1}}, "'seed' is a grid key"),
])
def test_bad_command_grids_fail_before_any_training(tmp_path, grid, message):
    with pytest.raises(ConfigError, match=message):
        parse({"grids": [grid]}, "s", tmp_path)
    assert not any(tmp_path.iterdir())


def test_issue_21_table_suite_is_the_22_runs_of_its_protocol(tmp_path):
    """suites/table.yaml (benchmarks/table.py): P1 class-IL 15, P2 domain-IL Permuted 4, P3 task-IL 3, one seed,
    MLP 400-400, SGD 0.01 momentum 0.9, batch 128, 1 epoch; every point validated (options of current names)."""
    suite = load(Path(__file__).resolve().parent.parent / "suites" / "table.yaml", tmp_path)
    parts = [str(p.path.relative_to(tmp_path)).split("/")[:2] for p in suite.points]
    assert [parts.count(k) for k in (["split-fmnist", "class"], ["permuted-fmnist", "domain"],
                                     ["split-fmnist", "task"])] == [15, 4, 3]
    assert {p.config.strategy[0] for p in suite.points[:15]} == {
        "naive", "joint", "cumulative", "ewc", "online-ewc", "si", "lwf", "replay", "agem", "gem", "der", "derpp",
        "er-ace", "icarl", "gdumb"}
    assert {(tuple(c.hidden), c.optimizer, c.lr, c.momentum, c.batch_size, c.epochs, c.seed)
            for c in (p.config for p in suite.points)} == {((400, 400), "sgd", 0.01, 0.9, 128, 1, 0)}
    assert {p.config.n_tasks for p in suite.points[15:19]} == {5}
    options = {p.config.strategy[0]: p.config.strategy_options for p in suite.points[:15]}
    assert options["ewc"] == {"ewc": {"lam": 1000}} and options["replay"] == {"replay": {"buffer_size": 500}}
    assert options["agem"] == {"agem": {"buffer_size": 1280}} and options["gem"] == {"gem": {"buffer_size": 1280}}
    assert not any(tmp_path.iterdir())
