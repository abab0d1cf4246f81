"""PNN: frozen columns give bit-identical old outputs; columns grow; bad input is refused."""

import dataclasses

import pytest
import torch
from torch import Tensor

import lifelong as ll
from lifelong import checkpoint
from lifelong.cli import main
from lifelong.strategies import PNN, Compose, Strategy

from ..conftest import small_mlp


class Record(Strategy):
    """After each task: logits of every task learned so far on its own test set (its units only),
    and the model's parameter count."""

    name = "record"

    def __init__(self) -> None:
        self.outputs: list[list[Tensor]] = []
        self.params: list[int] = []

    def after_task(self, task):
        self.trainer.model.eval()
        with torch.no_grad():
            self.outputs.append([self.trainer.predict(t.test.x, torch.full_like(t.test.y, t.id))[:, t.units]
                                 for t in list(self.stream)[: task.id + 1]])
        self.trainer.model.train()
        self.params.append(sum(p.numel() for p in self.trainer.model.parameters()))


def first_tasks(stream, n):
    """The stream cut to its first `n` tasks (output units unchanged)."""
    return dataclasses.replace(stream, tasks=stream.tasks[:n])


def fit_recording(strategy, stream, **options):
    """Fit `strategy` on `stream` (small MLP); returns the trainer, the result and the Record."""
    record = Record()
    trainer = ll.Trainer(small_mlp(stream), Compose(strategy, record), batch_size=32, seed=0, **options)
    return trainer, trainer.fit(stream), record


def fit_and_restore(make_strategy, stream, path, **options):
    """Fit with a checkpoint, then restore it the documented way: a fresh model and strategy,
    `attach`, then `checkpoint.load` into `trainer.model` (the network the strategy installed)."""
    trainer = ll.Trainer(small_mlp(stream), make_strategy(), batch_size=32, checkpoint=path, **options)
    trainer.fit(stream)
    again = ll.Trainer(small_mlp(stream, seed=5), make_strategy())
    again.strategy.attach(again, stream)
    checkpoint.load(path, again.model, again.strategy)
    return trainer, again


def assert_same_predictions(trainer, again, task):
    x, t = task.test.x, torch.full_like(task.test.y, task.id)
    with torch.no_grad():
        assert torch.equal(again.predict(x, t), trainer.predict(x, t))


def assert_earlier_outputs_kept(record, atol=0.0):
    """After every task k, each earlier task j's outputs are those right after j (atol 0: bit for bit)."""
    for k, row in enumerate(record.outputs):
        for j in range(k):
            now, then = row[j], record.outputs[j][j]
            assert torch.equal(now, then) if atol == 0 else (now - then).abs().max() <= atol, (k, j)


def assert_refuses_bad_setups(make_strategy, digits, weight_decay=True):
    """Class- and domain-incremental streams, a batch-norm ResNet (and weight decay) are refused."""
    for scenario in ("class", "domain"):
        other = ll.data.split(digits, n_tasks=5, scenario=scenario, seed=0)
        with pytest.raises(ll.ConfigError, match=r"task id at test time\): use `scenario` task"):
            ll.Trainer(small_mlp(other), make_strategy()).fit(other)
    stream = ll.data.split(digits, n_tasks=5, scenario="task", seed=0)
    with pytest.raises(ll.ConfigError, match="mlp"):
        ll.Trainer(ll.models.resnet18(stream.n_outputs, in_channels=1), make_strategy()).fit(stream)
    if weight_decay:
        with pytest.raises(ll.ConfigError, match="`weight_decay` 0"):
            ll.Trainer(small_mlp(stream), make_strategy(), weight_decay=1e-4).fit(stream)


@pytest.fixture
def task_stream(digits):
    return ll.data.split(digits, n_tasks=5, scenario="task", seed=0)


def test_earlier_outputs_are_bit_identical_and_columns_grow(task_stream):
    strategy = PNN()
    trainer, result, record = fit_recording(strategy, task_stream, epochs=2)
    assert_earlier_outputs_kept(record)
    assert result.metrics["bwt"] == 0.0 and result.metrics["acc"] > 0.9
    assert trainer.model is strategy.net and len(strategy.net.columns) == 5
    assert all(b > a for a, b in zip(record.params, record.params[1:]))
    *old, last = strategy.net.columns
    assert not any(p.requires_grad for c in old for p in c.parameters())
    assert all(p.requires_grad for p in last.parameters())
    # column k's adapters read the k earlier columns' hidden layer (64 units each)
    assert [c.adapters[0].v.in_features for c in old[1:]] == [64, 128, 192]


def test_checkpoint_restores_every_column(task_stream, tmp_path):
    stream = first_tasks(task_stream, 3)
    trainer, again = fit_and_restore(PNN, stream, tmp_path / "ck", epochs=1)
    assert len(again.strategy.net.columns) == 3 and again.model is again.strategy.net
    for task in stream:
        assert_same_predictions(trainer, again, task)
    assert again.strategy.memory_bytes() == sum(p.numel() * 4 for p in trainer.model.parameters()) + 6 * 8
    fresh = PNN()  # or straight from the strategy's own state, before any attach
    fresh.load_state_dict(trainer.strategy.state_dict())
    x = stream[2].test.x
    with torch.no_grad():
        assert torch.equal(fresh.net(x), trainer.model(x))


def test_refuses_other_scenarios_and_models(digits, task_stream):
    assert_refuses_bad_setups(PNN, digits, weight_decay=False)  # frozen columns are not in the optimiser
    cnn = ll.models.cnn((1, 8, 8), task_stream.n_outputs)
    with pytest.raises(ll.ConfigError, match="convolutional columns are not supported"):
        ll.Trainer(cnn, PNN()).fit(task_stream)


def test_cli_refuses_class_incremental_in_one_line(capsys):
    code = main(["run", "--benchmark", "split-digits", "--strategy", "pnn", "--hidden", "16"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--scenario task" in err
