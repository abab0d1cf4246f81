"""`lifelong tune`: SPEC validation (one-line errors naming the key), trials that report validation
accuracies after each task, ASHA stopping the trial that falls behind, and the best configuration
written as a `lifelong run --config` file."""

import importlib.util
import json
import sys

import pytest
import torch
import yaml

from lifelong.cli import build_config, parser
from lifelong.errors import ConfigError, LifelongError
from lifelong.experiment import run
from lifelong.experiment.tune import (Report, Trial, best_trial, load_spec, parse_spec, table, task_metrics,
                                      trial_config, tune)
from lifelong.extras import MissingExtra

BASE = {"benchmark": "split-digits", "n_tasks": 3, "strategy": "ewc", "hidden": [32], "epochs": 1, "batch_size": 16,
        "validation": 0.2}


def spec(**over):
    return {"base": BASE, "search": {"lr": {"grid": [3e-3, 1e-6]}}, **over}


@pytest.mark.parametrize("over, key, message", [
    ({"serch": {}}, "serch", "unknown key 'serch'"),
    ({"base": {**BASE, "validation": 0.0}}, "base.validation", "must be > 0 .* never on the test split"),
    ({"base": {k: v for k, v in BASE.items() if k != "validation"}}, "base.validation", "must be > 0"),
    ({"base": {**BASE, "seeds": 2}}, "base.seeds", "one strategy with one seed"),
    ({"base": {**BASE, "strategy": "ewc,naive"}}, "base.strategy", "one strategy with one seed"),
    ({"base": {**BASE, "epohcs": 1}}, "base", "unknown config key 'epohcs'"),
    ({"search": {}}, "search", "`search` must be a mapping"),
    ({"search": {"lr": [1e-3, 1e-2]}}, "search.lr", "must be one of"),
    ({"search": {"lr": {"uniform": [1e-2, 1e-3]}}}, "search.lr", r"\[low, high\] with low < high"),
    ({"search": {"lr": {"loguniform": [0, 1e-3]}}}, "search.lr", "low > 0"),
    ({"search": {"epochs": {"randint": [1, 2.5]}}}, "search.epochs", "whole numbers"),
    ({"search": {"epohcs": {"grid": [1]}}}, "search.epohcs", "not a `lifelong run` option"),
    ({"search": {"validation": {"grid": [0.1]}}}, "search.validation", "cannot be searched"),
    ({"search": {"batch_size": {"grid": [32, 0]}}}, "search.batch_size", "`batch_size` must be a whole number"),
    ({"search": {"ewc.lamda": {"grid": [1]}}}, "search.ewc.lamda", "has no option 'lamda'"),
    ({"search": {"ewc.lam": {"choice": [-1]}}}, "search.ewc.lam", "lam"),
    ({"samples": 0}, "samples", "whole number from 1 to 10000, got 0"),
    ({"samples": 99999999999999999999}, "samples", "from 1 to 10000, got 99999999999999999999"),
    ({"concurrent": 10**6}, "concurrent", "from 0 to 10000"),
    ({"metric": "test_acc"}, "metric", "one of acc, learning_accuracy"),
    ({"searcher": "optuna"}, "searcher", "use `choice` instead of `grid`"),
])
def test_bad_specs_fail_in_one_line_naming_the_key(over, key, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_spec(spec(**over), "s.yaml")
    assert info.value.argument == key and "\n" not in str(info.value)


def test_search_keys_take_run_options_and_strategy_options_by_either_name(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec(search={"batch-size": {"choice": [32, 64]}, "ewc.lambda": {"grid": [1, 10]},
                                                "lr": {"loguniform": [1e-4, 1e-2]}})))
    parsed = load_spec(path)
    assert parsed.search == {"batch_size": ("choice", [32, 64]), "ewc.lam": ("grid", [1, 10]),
                             "lr": ("loguniform", [1e-4, 1e-2])}
    assert (parsed.samples, parsed.searcher, parsed.metric, parsed.scheduler) == (1, "random", "acc", "asha")
    assert str(parsed.out) == "runs/tune-s"
    config = trial_config(parsed.base, {"batch_size": 32, "ewc.lam": 10})
    assert (config.batch_size, config.strategy, config.strategy_options) == (32, ["ewc"], {"ewc": {"lam": 10}})


def test_task_metrics_are_those_of_the_tasks_learnt_so_far():
    m = task_metrics([[0.9, 0.1, 0.0], [0.6, 0.8, 0.2]])
    assert m == pytest.approx({"tasks": 2, "acc": 0.7, "learning_accuracy": 0.85})


def test_a_trial_reports_validation_accuracies_after_each_task_ending_with_the_runs_acc():
    reports = []
    config = trial_config(BASE, {"lr": 3e-3})
    [record] = run(config, callbacks=[Report(reports.append)])
    assert record["evaluated_on"] == "validation"
    assert [r["tasks"] for r in reports] == [1, 2, 3] and {r["n_tasks"] for r in reports} == {3}
    assert reports[-1]["acc"] == pytest.approx(record["acc"])
    assert reports[0]["acc"] == record["matrix"][0][0]


def test_the_best_is_the_finished_trial_with_the_highest_metric_and_none_finished_is_an_error():
    stopped = Trial({"lr": 0.1}, 1, 3, {"acc": 0.99}, "stopped")  # one task: not comparable with finished runs
    done = [Trial({"lr": v}, 3, 3, {"acc": a}, "done") for v, a in ((0.01, 0.5), (0.001, 0.7), (0.0001, 0.7))]
    parsed = parse_spec(spec(), "s")
    assert best_trial([stopped, *done], "acc") is done[1]
    header, rows = table(parsed, [stopped, *done])
    assert header == ["Trial", "lr", "Tasks", "acc %", "Status"] and rows[0] == ["*2", "0.001", "3/3", "70.00", "done"]
    with pytest.raises(LifelongError, match="no trial finished \\(first error: boom\\)"):
        best_trial([stopped, Trial({"lr": 1.0}, 0, 0, {}, "error: boom")], "acc")


@pytest.mark.skipif(importlib.util.find_spec("optuna") is not None, reason="optuna is installed")
def test_the_optuna_searcher_without_optuna_says_how_to_install_it(tmp_path):
    parsed = parse_spec(spec(search={"lr": {"choice": [3e-3]}}, searcher="optuna"), "s", tmp_path)
    with pytest.raises(MissingExtra, match="pip install optuna"):
        tune(parsed)


def test_without_ray_tune_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtra, match=r"pip install 'lifelong\[ray\]'"):
        tune(parse_spec(spec(), "s", tmp_path))


def test_asha_stops_the_trial_behind_and_the_best_is_a_run_config_file(ray_local, tmp_path):
    parsed = parse_spec(spec(concurrent=1), "s", tmp_path)  # one at a time: the good lr reports first
    trials = tune(parsed, threads=1)
    good, bad = trials
    assert (good.params, good.status, good.tasks) == ({"lr": 3e-3}, "done", 3)
    assert (bad.params, bad.status, bad.tasks) == ({"lr": 1e-6}, "stopped", 1)  # below the first rung's cut
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trial had
    try:
        [record] = run(trial_config(BASE, good.params))
    finally:
        torch.set_num_threads(before)
    assert good.metrics["acc"] == record["acc"]  # on the validation hold-out, as reported

    args = parser().parse_args(["run", "--config", str(tmp_path / "best.yaml")])
    best = build_config(args)
    assert best == trial_config({**BASE, "validation": 0.0}, good.params)  # the final run: on the test split
    saved = json.loads((tmp_path / "trials.json").read_text())
    assert saved["evaluated_on"] == "validation" and [t["status"] for t in saved["trials"]] == ["done", "stopped"]
    assert (tmp_path / "trials.md").read_text().splitlines()[2].startswith("| *0 ")
