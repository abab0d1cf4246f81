import pytest
import torch

import lifelong as ll
from lifelong.strategies import GDumb, Naive

from ..conftest import small_mlp


def test_memory_never_exceeds_capacity_and_stays_class_balanced(digits_stream):
    gdumb, sizes = GDumb(buffer_size=50, epochs=2), []
    after = gdumb.after_task

    def spy(task):
        after(task)
        counts = torch.bincount(gdumb.memory.stored().y, minlength=10)[: 2 * task.id + 2]
        sizes.append(len(gdumb.memory))
        assert counts.max() - counts.min() <= 1

    gdumb.after_task = spy
    ll.Trainer(small_mlp(digits_stream), gdumb, batch_size=16, seed=0).fit(digits_stream)
    assert sizes == [50] * 5  # every task has more samples than the memory holds


def test_retrains_from_scratch_on_the_memory_only(digits_stream):
    gdumb, calls = GDumb(buffer_size=60, epochs=3), []
    trainer = ll.Trainer(small_mlp(digits_stream), gdumb, batch_size=16, seed=0)
    train = trainer.train

    def spy(data, task_ids, epochs, what=""):
        start = trainer.model.head.weight.detach().clone()
        out = train(data, task_ids, epochs, what)
        calls.append((len(data), epochs, start, trainer.model.head.weight.detach().clone()))
        return out

    trainer.train = spy
    r = trainer.fit(digits_stream)
    assert [c[:2] for c in calls] == [(60, 3)] * 5 and r.losses == [[]] * 5  # never the stream itself
    assert r.samples_seen == 5 * 3 * 60
    bound = 1 / trainer.model.head.in_features ** 0.5  # nn.Linear's initial weights lie in (-bound, bound)
    for previous, call in zip(calls, calls[1:]):  # each retraining starts from fresh weights
        assert not torch.equal(call[2], previous[3]) and call[2].abs().max() <= bound


def test_gdumb_beats_naive(digits_stream):
    def fit(strategy, epochs):
        return ll.Trainer(small_mlp(digits_stream), strategy, epochs=epochs, batch_size=16, seed=0).fit(digits_stream)

    assert fit(GDumb(buffer_size=200, epochs=10), 1).metrics["acc"] > fit(Naive(), 2).metrics["acc"] + 0.3


def test_gradients_are_clipped_while_retraining(digits_stream):
    gdumb, norms = GDumb(buffer_size=30, epochs=1, clip=0.01), []
    clip = gdumb.after_backward

    def spy():
        clip()
        norms.append(torch.cat([p.grad.flatten() for p in gdumb.model.parameters()]).norm())

    gdumb.after_backward = spy
    ll.Trainer(small_mlp(digits_stream), gdumb, batch_size=16, seed=0).fit(digits_stream)
    assert len(norms) == 5 * 2 and max(norms) <= 0.01 * (1 + 1e-4)


def test_domain_incremental_streams_are_refused(digits):
    stream = ll.data.split(digits, n_tasks=5, scenario="domain", seed=0)
    with pytest.raises(ll.ConfigError, match="does not support domain streams"):
        ll.Trainer(small_mlp(stream), GDumb()).fit(stream)


@pytest.mark.parametrize("kwargs", [{"buffer_size": 0}, {"epochs": 0}, {"clip": -1.0}])
def test_bad_options_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        GDumb(**kwargs)
