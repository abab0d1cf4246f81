import pytest
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.cli import main
from lifelong.memory import Buffer
from lifelong.strategies import ERACE, Naive

from ..conftest import small_mlp


def test_loss_is_asymmetric_cross_entropy_plus_replay(digits):
    stream = ll.data.split(digits, n_tasks=5, scenario="class", seed=0)
    ace = ERACE(buffer_size=100, replay_batch_size=16)
    ace.attach(ll.Trainer(small_mlp(stream), ace), stream)
    for task in stream.tasks[:3]:  # classes 0-5 seen and stored
        ace.before_task(task)
        x, y = task.train.batch(torch.arange(64))
        ace.loss(ace.model(x), x, y, torch.full_like(y, task.id))
    ace.before_task(stream[3])
    x, y = stream[3].train.batch(torch.arange(20))  # task 3's classes (units 6 and 7) arrive
    x, y = x[y == 6], y[y == 6]  # one class only: unit 7 stays unseen
    copy = Buffer.from_state(ace.memory.state_dict())
    out = ace.model(x)
    total = F.cross_entropy(out, y) + ace.loss(out, x, y, torch.full_like(y, 3))
    keep = torch.arange(10) >= 6  # the present class and those never seen; seen, absent ones leave
    m = copy.sample(16)
    expect = F.cross_entropy(out[:, keep], (keep.cumsum(0) - 1)[y]) + F.cross_entropy(ace.model(m.x), m.y)
    assert torch.allclose(total, expect)


def test_first_task_is_plain_cross_entropy_and_only_fills_the_memory(digits):
    """The paper's Algorithm and both reference codes mask and replay from the second task on."""
    stream = ll.data.split(digits, n_tasks=5, scenario="class", seed=0)
    ace = ERACE(buffer_size=100, replay_batch_size=16)
    ace.attach(ll.Trainer(small_mlp(stream), ace), stream)
    ace.before_task(stream[0])
    for start in (0, 32):
        x, y = stream[0].train.batch(torch.arange(start, start + 32))
        assert ace.loss(ace.model(x), x, y, torch.zeros_like(y)) is None
    assert len(ace.memory) == 64
    ace.before_task(stream[1])
    x, y = stream[1].train.batch(torch.arange(32))
    assert ace.loss(ace.model(x), x, y, torch.ones_like(y)) is not None


def test_er_ace_beats_naive(digits_stream):
    def fit(strategy):
        return ll.Trainer(small_mlp(digits_stream), strategy, epochs=2, batch_size=16, seed=0).fit(digits_stream)

    assert fit(ERACE(buffer_size=200, replay_batch_size=32)).metrics["acc"] > fit(Naive()).metrics["acc"] + 0.15


@pytest.mark.parametrize("scenario", ["task", "domain"])
def test_other_scenarios_are_refused_with_a_one_line_error(digits, scenario, capsys):
    stream = ll.data.split(digits, n_tasks=5, scenario=scenario, seed=0)
    with pytest.raises(ll.ConfigError, match="class-incremental"):
        ll.Trainer(small_mlp(stream), ERACE()).fit(stream)
    assert main(["run", "--benchmark", "split-digits", "--scenario", scenario, "--strategy", "er-ace"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("kwargs", [{"buffer_size": 0}, {"replay_batch_size": 0}])
def test_bad_sizes_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        ERACE(**kwargs)
