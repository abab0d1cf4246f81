"""GrowingHead (units switched on task by task) and the multi-head that task-IL masking gives."""

import dataclasses
import json

import pytest
import torch

import lifelong as ll
from lifelong.cli import main
from lifelong.models import GrowingHead, with_head
from lifelong.strategies import STRATEGIES, Strategy, hyper_parameters

from ..conftest import small_mlp

LOWEST = torch.finfo(torch.float32).min


def growing(stream, seed=0):
    return with_head(small_mlp(stream, seed), "growing")


def test_inactive_units_are_never_predicted_nor_trained():
    head = GrowingHead(5, 6)
    head.grow([4, 1])
    head.grow([1, 2])
    assert head.active.tolist() == [False, True, True, False, True, False]
    f = torch.randn(7, 5)
    out = head(f)
    assert torch.all(out[:, [0, 3, 5]] == LOWEST)
    assert torch.equal(out[:, [1, 2, 4]], torch.nn.functional.linear(f, head.weight, head.bias)[:, [1, 2, 4]])
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 2, 4, 4, 1, 2, 1])).backward()
    assert torch.all(head.weight.grad[[0, 3, 5]] == 0) and torch.all(head.bias.grad[[0, 3, 5]] == 0)
    assert torch.all(head.weight.grad[[1, 2, 4]].abs().sum(1) > 0)
    with pytest.raises(ll.ConfigError, match="n_outputs"):
        head.grow([6])


def test_with_head_keeps_the_initialisation_and_state_round_trips(digits_stream):
    linear, grown = small_mlp(digits_stream), growing(digits_stream)
    assert torch.equal(linear.head.weight, grown.head.weight) and isinstance(grown.head, GrowingHead)
    grown.head.grow([3, 7])
    fresh = growing(digits_stream, seed=1)
    fresh.load_state_dict(grown.state_dict())
    x = digits_stream[0].test.x
    assert torch.equal(fresh(x), grown(x))
    resnet = with_head(ll.models.resnet18(10, in_channels=1), "growing")
    assert isinstance(resnet.head, GrowingHead)
    with pytest.raises(ll.ConfigError, match="linear, growing"):
        with_head(linear, "wide")


def test_class_incremental_head_grows_with_the_classes(digits_stream):
    model = growing(digits_stream)
    result = ll.Trainer(model, epochs=2, batch_size=32).fit(digits_stream)
    assert model.head.active.all()
    assert all(acc == 0.0 for acc in result.matrix[0][1:])  # after task 0 only its 2 classes exist
    assert result.matrix[0][0] > 0.9


def test_task_incremental_linear_head_is_a_multi_head(digits):
    stream = ll.data.split(digits, n_tasks=5, scenario="task", seed=0)
    model = small_mlp(stream)
    rows = {}

    class Snapshot(Strategy):
        def after_task(self, task):
            rows[task.id] = (model.head.weight[task.units].clone(), model.head.bias[task.units].clone())

    ll.Trainer(model, Snapshot(), epochs=2, batch_size=32).fit(stream)
    for k, (w, b) in rows.items():  # later tasks never touch task k's head
        assert torch.equal(w, model.head.weight[stream[k].units]) and torch.equal(b, model.head.bias[stream[k].units])


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_runs_with_a_growing_head(digits, name):
    cls = STRATEGIES.get(name).factory
    stream = ll.data.split(digits, n_tasks=2, scenario="class" if "class" in cls.scenarios else "task", seed=0)
    few = [dataclasses.replace(t, train=t.train.subset(torch.arange(48))) for t in stream]  # keep it fast
    stream, model = dataclasses.replace(stream, tasks=few), growing(stream)
    options = {"epochs": 1} if "epochs" in hyper_parameters(cls) else {}  # GDumb's own retraining
    trainer = ll.Trainer(model, cls(**options), batch_size=16)
    assert len(trainer.fit(stream).matrix) == 2
    heads = [m for m in trainer.model.modules() if isinstance(m, GrowingHead)]  # PNN builds its own heads
    assert all(h.active.all() for h in heads) and (heads or name == "pnn")


def test_cli_head_option(capsys):
    args = ["run", "--benchmark", "split-digits", "--hidden", "16", "--strategy", "naive", "--json"]
    assert main([*args, "--head", "growing"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["matrix"][0][1:] == [0.0] * 4
    with pytest.raises(SystemExit, match="2"):
        main([*args, "--head", "wide"])
