"""Several seeds at once (`lifelong.vectorized`, `lifelong run --seeds N --vectorize`): each seed's fit as
its sequential run makes it, up to float rounding; refusals; the record and the command line."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from lifelong.cli import main
from lifelong.errors import ConfigError
from lifelong.experiment import continual
from lifelong.experiment.continual import RunConfig, make_model, make_strategy, make_stream
from lifelong.training import Trainer
from lifelong.vectorized import BatchedMLP, fit_together

SMALL = {"benchmark": "split-digits", "hidden": [32, 32], "batch_size": 64, "strategy": ["naive"], "seeds": 3}


def trainers(config: RunConfig, device: str = "cpu") -> tuple[list[Trainer], list]:
    """Each seed's trainer and stream as `continual.run` makes them."""
    out, streams = [], []
    for seed in range(config.seed, config.seed + config.seeds):
        stream = make_stream(config, seed)
        torch.manual_seed(seed)
        model = make_model(config, stream, torch.device("cpu"))
        out.append(Trainer(model, make_strategy("naive", {}), epochs=config.epochs, batch_size=config.batch_size,
                           lr=config.lr, optimizer=config.optimizer, momentum=config.momentum,
                           weight_decay=config.weight_decay, seed=seed, device=device))
        streams.append(stream)
    return out, streams


@pytest.mark.parametrize("options", [
    {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},  # class-IL, tasks of unequal sizes
    {"scenario": "task", "epochs": 2},  # Adam, per-seed task masks
    {"benchmark": "permuted-digits", "n_tasks": 3, "optimizer": "sgd", "lr": 0.05, "weight_decay": 1e-3},
])
def test_each_seed_fits_as_its_sequential_run(options):
    config = RunConfig(**(SMALL | options))
    alone, streams = trainers(config)
    together = [copy.deepcopy(t) for t in alone]
    if options.get("benchmark") is None:  # the drawn class orders give the seeds tasks of unequal sizes
        assert len({len(s.tasks[0].train) for s in streams}) > 1
    expected = [t.fit(s) for t, s in zip(alone, streams)]
    got = fit_together(together, streams)
    for a, b, s, e, g in zip(alone, together, streams, expected, got):
        for p, q in zip(a.model.parameters(), b.model.parameters()):
            assert torch.allclose(p, q, rtol=0, atol=1e-5)
        worth = 2 / min(len(t.test) for t in s)  # rounding may flip a prediction or two
        assert torch.allclose(torch.tensor(g.matrix), torch.tensor(e.matrix), rtol=0, atol=worth)
        assert g.reference == e.reference
        assert torch.allclose(torch.tensor(g.losses), torch.tensor(e.losses), rtol=0, atol=1e-5)
        assert g.samples_seen == e.samples_seen and g.stream == e.stream


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_each_seed_fits_as_its_sequential_run_on_cuda():
    config = RunConfig(**(SMALL | {"scenario": "task", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9}))
    alone, streams = trainers(config, "cuda")
    together = [copy.deepcopy(t) for t in alone]
    expected = [t.fit(s) for t, s in zip(alone, streams)]
    got = fit_together(together, streams)
    for a, b, e, g in zip(alone, together, expected, got):
        for p, q in zip(a.model.parameters(), b.model.parameters()):
            assert p.is_cuda and torch.allclose(p, q, rtol=0, atol=1e-4)
        assert torch.allclose(torch.tensor(g.matrix), torch.tensor(e.matrix), rtol=0, atol=0.02)


def test_batched_mlp_is_its_models_side_by_side():
    models = [make_model(RunConfig(**SMALL), make_stream(RunConfig(**SMALL), 0), torch.device("cpu"))
              for _ in range(2)]
    x = torch.randn(2, 5, 64)
    net = BatchedMLP(models)
    assert torch.allclose(net(x), torch.stack([m(x[k]) for k, m in enumerate(models)]), atol=1e-6)
    with torch.no_grad():
        net.params[0].add_(1.0)
    net.copy_back()
    assert torch.allclose(net(x), torch.stack([m(x[k]) for k, m in enumerate(models)]), atol=1e-5)


@pytest.mark.parametrize("options", [{"strategy": ["naive", "ewc"]}, {"model": "cnn"}, {"head": "growing"},
                                     {"scenario": "online"}, {"checkpoint_every": 5}])
def test_unsupported_runs_are_refused_before_anything_is_written(options, tmp_path, capsys):
    config = RunConfig(**(SMALL | options | {"vectorize": True}))
    with pytest.raises(ConfigError, match="`vectorize` trains several seeds as one batched model") as err:
        config.validate()
    assert "\n" not in str(err.value) and err.value.argument == "vectorize"
    argv = ["run", "--benchmark", "split-digits", "--seeds", "2", "--vectorize", "--out", str(tmp_path / "out")]
    flags = {"strategy": ["--strategy", "naive,ewc"], "model": ["--model", "cnn"], "head": ["--head", "growing"],
             "scenario": ["--scenario", "online"], "checkpoint_every": ["--checkpoint-every", "5"]}
    assert main(argv + flags[next(iter(options))]) == 2
    err_text = capsys.readouterr().err
    assert len(err_text.strip().splitlines()) == 1 and "--vectorize trains several seeds" in err_text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_records_say_vectorized_and_come_in_order():
    config = RunConfig(**(SMALL | {"vectorize": True, "n_tasks": 2, "class_order": list(range(10))}))
    records = continual.run(config)
    assert [(r["strategy"], r["seed"], r["vectorized"]) for r in records] == [("naive", s, 3) for s in range(3)]
    assert len({r["train_seconds"] for r in records}) == 1  # the wall time the seeds shared
    plain = continual.run(RunConfig(**(SMALL | {"n_tasks": 2, "class_order": list(range(10))})))
    assert all("vectorized" not in r for r in plain)
    for r, p in zip(records, plain):
        assert torch.allclose(torch.tensor(r["matrix"]), torch.tensor(p["matrix"]), atol=2 / 100)


def test_a_resumed_run_fits_the_unfinished_seeds_together(tmp_path):
    config = RunConfig(**(SMALL | {"vectorize": True, "n_tasks": 2}))
    first = continual.run(config, checkpoints=tmp_path)
    (tmp_path / "naive-seed1.record.json").unlink()
    again = continual.run(config, checkpoints=tmp_path, resume=True)
    assert [(r["seed"], r["vectorized"]) for r in again] == [(0, 3), (1, 1), (2, 3)]
    assert again[0] == first[0] and again[2] == first[2]
    assert torch.allclose(torch.tensor(again[1]["matrix"]), torch.tensor(first[1]["matrix"]), atol=0.02)


def test_cli_run_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--benchmark", "split-digits", "--seeds", "3", "--vectorize", "--strategy", "naive",
            "--hidden", "32", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["vectorized"] for r in results["runs"]] == [3, 3, 3] and results["config"]["vectorize"] is True
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "report written" in capsys.readouterr().out
    assert "naive" in (out / "report" / "report.md").read_text()
