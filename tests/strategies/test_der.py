import pytest
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.memory import Buffer
from lifelong.strategies import DER, DERpp, Naive

from ..conftest import small_mlp


def test_memory_stores_the_logits_the_samples_were_trained_with(digits):
    stream = ll.data.split(digits, n_tasks=1, scenario="class", seed=0)
    der, outs = DER(buffer_size=2000, replay_batch_size=8), []
    loss = der.loss

    def spy(out, x, y, t):
        outs.append(out.detach().clone())
        return loss(out, x, y, t)

    der.loss = spy
    ll.Trainer(small_mlp(stream), der, epochs=1, batch_size=64, seed=0).fit(stream)
    stored = der.memory.stored()  # the memory never filled up: every sample in arrival order
    assert torch.equal(stored.logits, torch.cat(outs)) and not stored.logits.isnan().any()


@pytest.mark.parametrize("cls", [DER, DERpp])
def test_loss_is_the_papers_on_task_incremental_streams(digits, cls):
    stream = ll.data.split(digits, n_tasks=3, scenario="task", seed=0)
    der = cls(buffer_size=100, replay_batch_size=16, alpha=0.7)
    trainer = ll.Trainer(small_mlp(stream), der, epochs=1, batch_size=32, seed=0)
    trainer.fit(stream)
    stored = der.memory.stored()
    known = ~stored.logits.isnan()
    assert torch.equal(known, stream.masks[stored.t])  # masked units are never stored as values
    copy = Buffer.from_state(der.memory.state_dict())
    x, y = stream[2].train.batch(torch.arange(32))
    t = torch.full_like(y, 2)
    der.batch(x, y, t)  # draws the memory batch for the step
    extra = der.loss(stream.mask(der.model(x), t), x, y, t)
    m = copy.sample(16)  # the batch the step drew
    h = der.model(m.x)
    mse = (h - m.logits)[stream.masks[m.t]].pow(2).mean()
    expect = 0.7 * mse + der.beta * F.cross_entropy(stream.mask(h, m.t), m.y)
    assert torch.isfinite(extra) and torch.allclose(extra, expect)
    assert der.beta == (0.5 if cls is DERpp else 0.0)


def test_der_and_derpp_beat_naive(digits_stream):
    def fit(strategy):
        return ll.Trainer(small_mlp(digits_stream), strategy, epochs=3, batch_size=16, seed=0).fit(digits_stream)

    naive = fit(Naive()).metrics["acc"]
    assert fit(DER(buffer_size=200, replay_batch_size=16, alpha=10.0)).metrics["acc"] > naive + 0.25
    assert fit(DERpp(buffer_size=200, replay_batch_size=32, alpha=1.0, beta=0.5)).metrics["acc"] > naive + 0.2


@pytest.mark.parametrize("kwargs", [{"buffer_size": 0}, {"replay_batch_size": -2}, {"alpha": -1.0},
                                    {"beta": float("nan")}])
def test_bad_options_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        DERpp(**kwargs)
