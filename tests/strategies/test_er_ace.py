import pytest
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.cli import main
from lifelong.memory import Buffer
from lifelong.strategies import ERACE, Naive

from ..conftest import small_mlp
from .steps import in_step


def test_loss_is_asymmetric_cross_entropy_plus_replay(digits):
    stream = ll.data.split(digits, n_tasks=5, scenario="class", seed=0)
    ace = ERACE(buffer_size=100, replay_batch_size=16)
    trainer = ll.Trainer(small_mlp(stream), ace)
    ace.attach(trainer, stream)
    for task in stream.tasks[:3]:  # classes 0-5 seen and stored
        ace.before_task(task)
        x, y = task.train.batch(torch.arange(64))
        t = torch.full_like(y, task.id)
        in_step(trainer, x, y, t)
        ace.batch(x, y, t)
    ace.before_task(stream[3])
    x, y = stream[3].train.batch(torch.arange(20))  # task 3's classes (units 6 and 7) arrive
    x, y = x[y == 6], y[y == 6]  # one class only: unit 7 stays unseen
    copy = Buffer.from_state(ace.memory.state_dict())
    out = ace.model(x)
    t = torch.full_like(y, 3)
    in_step(trainer, x, y, t)
    ace.batch(x, y, t)  # C_in, the replayed samples, the batch into the memory
    total = ace.task_loss(out, x, y, t, F.cross_entropy) + ace.loss(out, x, y, t)
    keep = torch.arange(10) >= 6  # the present class and those never seen; seen, absent ones leave
    m = copy.sample(16)
    expect = F.cross_entropy(out[:, keep], (keep.cumsum(0) - 1)[y]) + F.cross_entropy(ace.model(m.x), m.y)
    assert torch.allclose(total, expect)


def test_first_task_is_plain_cross_entropy_and_only_fills_the_memory(digits):
    """The paper's Algorithm and both reference codes mask and replay from the second task on."""
    stream = ll.data.split(digits, n_tasks=5, scenario="class", seed=0)
    ace = ERACE(buffer_size=100, replay_batch_size=16)
    trainer = ll.Trainer(small_mlp(stream), ace)
    ace.attach(trainer, stream)
    ace.before_task(stream[0])
    for start in (0, 32):
        x, y = stream[0].train.batch(torch.arange(start, start + 32))
        out, t = ace.model(x), torch.zeros_like(y)
        in_step(trainer, x, y, t)
        ace.batch(x, y, t)
        assert torch.equal(ace.task_loss(out, x, y, t, F.cross_entropy), F.cross_entropy(out, y))
        assert ace.loss(out, x, y, t) is None
    assert len(ace.memory) == 64
    ace.before_task(stream[1])
    x, y = stream[1].train.batch(torch.arange(32))
    in_step(trainer, x, y, torch.ones_like(y))
    ace.batch(x, y, torch.ones_like(y))
    assert ace.loss(ace.model(x), x, y, torch.ones_like(y)) is not None


def test_er_ace_beats_naive(digits_stream):
    def fit(strategy):
        return ll.Trainer(small_mlp(digits_stream), strategy, epochs=2, batch_size=16, seed=0).fit(digits_stream)

    assert fit(ERACE(buffer_size=200, replay_batch_size=32)).metrics["acc"] > fit(Naive()).metrics["acc"] + 0.15


@pytest.mark.parametrize("scenario", ["task", "domain"])
def test_other_scenarios_are_refused_with_a_one_line_error(digits, scenario, capsys):
    stream = ll.data.split(digits, n_tasks=5, scenario=scenario, seed=0)
    with pytest.raises(ll.ConfigError, match=f"er-ace does not support {scenario} streams: use `scenario` class"):
        ll.Trainer(small_mlp(stream), ERACE()).fit(stream)
    assert main(["run", "--benchmark", "split-digits", "--scenario", scenario, "--strategy", "er-ace"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("kwargs", [{"buffer_size": 0}, {"replay_batch_size": 0}])
def test_bad_sizes_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        ERACE(**kwargs)


class SubtractedCE(ERACE):
    """ER-ACE as it was written before the `task_loss` hook: the Trainer's cross-entropy over all
    logits, plus logsumexp over C_in minus logsumexp over all logits, plus the replay loss."""

    def batch(self, x, y, t):
        return x, y, t

    def task_loss(self, out, x, y, t, criterion):
        return criterion(out, y)

    def loss(self, out, x, y, t):
        present = torch.zeros_like(self.seen).index_fill_(0, y, True)
        self.seen |= present
        extra = None
        if not self.first:
            keep = present | ~self.seen
            extra = (torch.logsumexp(out.masked_fill(~keep, torch.finfo(out.dtype).min), 1)
                     - torch.logsumexp(out, 1)).mean() + self.replay_loss(self.memory.sample(self.replay_batch_size))
        self.memory.add(x, y, t)
        return extra


def test_task_loss_hook_gives_the_subtracted_formulation_up_to_rounding(digits):
    """The same equation (Caccia et al. 2022) as the CE-compensating version: per-epoch losses agree
    to float rounding (relative differences ~1e-7 here), and the accuracies with them."""
    stream = ll.data.split(digits, n_tasks=3, scenario="class", seed=0)

    def fit(strategy):
        return ll.Trainer(small_mlp(stream), strategy, epochs=2, batch_size=32, seed=0).fit(stream)

    new, old = fit(ERACE(buffer_size=60, replay_batch_size=16)), fit(SubtractedCE(buffer_size=60, replay_batch_size=16))
    for a, b in zip(new.losses, old.losses):
        assert a == pytest.approx(b, rel=1e-5)
    for a, b in zip(new.matrix, old.matrix):
        assert a == pytest.approx(b, abs=0.02)


def test_task_free_stream_replays_once_the_memory_holds_samples(digits):
    stream = ll.data.online(ll.data.split(digits, n_tasks=5, scenario="class", seed=0), seed=0)
    ace = ERACE(buffer_size=50, replay_batch_size=10)
    trainer = ll.Trainer(small_mlp(stream), ace, batch_size=10, lr=0.05, optimizer="sgd", seed=0)
    trainer.start(stream)
    x, y = stream[0].train.batch(torch.arange(10))
    t = torch.zeros_like(y)
    in_step(trainer, x, y, t)
    ace.batch(x, y, t)
    assert ace.first and ace.replayed is None  # nothing to replay yet
    in_step(trainer, x, y, t)
    ace.batch(x, y, t)
    assert not ace.first and len(ace.replayed.y) == 10
