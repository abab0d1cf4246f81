"""Task-free online fits (`Trainer.fit_online`) and batches given one by one (`Trainer.learn`)."""

import pytest
import torch
from torch import nn

import lifelong as ll
from lifelong.data import online, served
from lifelong.errors import ConfigError
from lifelong.models import pre_logits
from lifelong.strategies import L2, NCM, Naive, Replay


@pytest.fixture(scope="module")
def stream():
    return online(ll.data.split(ll.data.digits(), n_tasks=3, scenario="class", seed=0), seed=0)


def mlp(s, seed=0):
    torch.manual_seed(seed)
    return ll.models.mlp(64, s.n_outputs, hidden=(32,))


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_naive_online_fit_is_one_sgd_pass_in_the_stream_order(stream):
    trainer = ll.Trainer(mlp(stream), Naive(), batch_size=10, lr=0.05, optimizer="sgd", seed=0)
    result = trainer.fit_online(stream, eval_every=200, eval_samples=50)
    model = mlp(stream)  # the same loop by hand
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    train, _ = stream.training_data()
    for idx in stream.order.split(10):
        x, y = train.batch(idx)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert torch.equal(params(trainer.model), params(model))
    curve, n = result.online, len(stream.order)
    assert result.samples_seen == n and len(result.matrix) == len(stream) == len(curve["ends"])
    for end in [*range(200, n, 200), *stream.ends]:  # measured after the batch that reaches each mark
        assert any(end <= m < end + 10 for m in curve["samples"])
    assert {"aaa", "online_forgetting", "stability_gap"} <= set(result.metrics)


def test_anytime_accuracy_counts_only_the_classes_met_so_far(stream):
    trainer = ll.Trainer(mlp(stream), Naive(), batch_size=10, lr=0.05, optimizer="sgd", seed=0)
    curve = trainer.fit_online(stream, eval_every=100, eval_samples=50).online
    first = sum(m < stream.ends[0] for m in curve["samples"])  # points where task 0 alone has been met
    for p in range(first):
        assert curve["anytime"][p] == pytest.approx(curve["tasks"][p][0])
    assert curve["anytime"][-1] == pytest.approx(sum(curve["tasks"][-1]) / 3, abs=0.02)  # 50 held out per task


def test_learn_batch_by_batch_equals_the_online_fit(stream):
    fitted = ll.Trainer(mlp(stream), Replay(buffer_size=30, replay_batch_size=5), batch_size=10, lr=0.05,
                        optimizer="sgd", momentum=0.9, seed=0)
    fitted.fit_online(stream, eval_every=10_000, eval_samples=10)
    learner = ll.Trainer(mlp(stream), Replay(buffer_size=30, replay_batch_size=5), batch_size=10, lr=0.05,
                         optimizer="sgd", momentum=0.9, seed=0, reference=False)
    learner.start(served((64,), stream.n_outputs))
    train, _ = stream.training_data()
    for idx in stream.order.split(10):
        learner.learn(*train.batch(idx))
    assert torch.equal(params(fitted.model), params(learner.model))
    assert learner.samples_seen == len(stream.order)


def test_learn_needs_a_started_learner():
    with pytest.raises(ConfigError, match="call `start"):
        ll.Trainer(ll.models.mlp(4, 2, hidden=(4,))).learn(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))


class Windows(L2):
    """L2 that records the windows it consolidates on."""

    def __init__(self) -> None:
        super().__init__(lam=0.01)
        self.seen: list[tuple[int, int]] = []

    def after_task(self, task):
        self.seen.append((task.id, len(task.train)))
        super().after_task(task)


def test_scheduled_consolidation_covers_the_stream_once_in_windows(stream):
    with pytest.raises(ConfigError, match="needs task boundaries.*consolidate_every"):
        ll.Trainer(mlp(stream), L2(), batch_size=10).fit_online(stream)
    strategy = Windows()
    ll.Trainer(mlp(stream), strategy, batch_size=10, lr=0.05, optimizer="sgd").fit_online(
        stream, eval_every=10_000, eval_samples=10, consolidate_every=300)
    n = len(stream.order)
    assert [i for i, _ in strategy.seen] == list(range(len(strategy.seen)))
    assert [k for _, k in strategy.seen] == [300] * ((n - 1) // 300)  # each full window, none after the stream
    assert strategy.omega  # consolidated: the penalty holds its anchor


def test_only_the_consolidating_parts_are_told_of_windows(stream):
    with pytest.raises(ConfigError, match="`consolidate_every` .5. must be at least `batch_size`"):
        ll.Trainer(mlp(stream), L2(), batch_size=10).fit_online(stream, consolidate_every=5)
    ncm = NCM()
    trainer = ll.Trainer(mlp(stream), ll.Compose(ncm, L2()), batch_size=10)
    result = trainer.fit_online(stream, eval_every=10_000, eval_samples=10, consolidate_every=200)
    assert int(ncm.counts.sum()) == len(stream.order)  # each sample counted once, not again per window
    assert result.online["consolidate_every"] == 200
    plain = ll.Trainer(mlp(stream), Naive(), batch_size=10).fit_online(stream, eval_every=10_000, eval_samples=10,
                                                                       consolidate_every=200)
    assert plain.online["consolidate_every"] == 0  # nothing consolidates


def test_gradient_free_strategy_observes_every_batch_once(stream):
    trainer = ll.Trainer(mlp(stream), NCM(), batch_size=10, seed=0)
    weights = params(trainer.model).clone()
    trainer.fit_online(stream, eval_every=10_000, eval_samples=10)
    assert torch.equal(params(trainer.model), weights)  # no gradient step
    train, _ = stream.training_data()
    x, y = train.batch(torch.arange(len(train)))
    with torch.no_grad():
        z = pre_logits(trainer.model.eval(), x)
    means = torch.stack([z[y == c].mean(0) for c in range(stream.n_outputs)])
    assert torch.allclose(trainer.strategy.means, means, atol=1e-5)
