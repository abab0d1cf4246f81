import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lifelong as ll
from lifelong.checkpoint import load as load_checkpoint
from lifelong.checkpoint import save as save_checkpoint
from lifelong.strategies import ICaRL, Naive
from lifelong.strategies.icarl import herding

from ..conftest import small_mlp


def test_herding_picks_the_sample_nearest_the_mean_first_then_keeps_the_running_mean_close():
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(40, 5, generator=g), dim=1)
    labels = torch.arange(40) % 2
    labels[-3:] = 2  # a class with fewer samples than asked for
    idx, real = herding(feats, labels, torch.tensor([0, 1, 2]), 6)
    assert real.sum(1).tolist() == [6, 6, 3] and (labels[idx[0]] == 0).all()
    for c in range(3):
        members = (labels == c).nonzero().flatten()
        mu = feats[members].mean(0)
        assert idx[c, 0] == members[(feats[members] - mu).norm(dim=1).argmin()]
        first = idx[c, 0]
        rest = members[members != first]  # the 2nd pick makes the mean of the first two nearest mu
        best = rest[(mu - (feats[first] + feats[rest]) / 2).norm(dim=1).argmin()]
        assert idx[c, 1] == best
    assert sorted(idx[2, :3].tolist()) == [37, 38, 39]


def test_exemplars_are_herded_prefixes_and_prediction_is_the_nearest_mean(digits):
    stream = ll.data.split(digits, n_tasks=2, scenario="class", seed=0)  # 5 classes per task
    icarl, sets = ICaRL(buffer_size=40), []
    after = icarl.after_task

    def spy(task):
        after(task)
        m = icarl.memory
        sets.append({c: m.x[m.members[c, : m.counts[c]]].clone() for c in range(10) if m.counts[c]})

    icarl.after_task = spy
    trainer = ll.Trainer(small_mlp(stream), icarl, epochs=2, batch_size=16, seed=0)
    trainer.fit(stream)
    assert [len(v) for v in sets[0].values()] == [8] * 5 and [len(v) for v in sets[1].values()] == [4] * 10
    for c in sets[0]:  # reducing an old class keeps the first of its herded exemplars
        assert torch.equal(sets[1][c], sets[0][c][:4])
    x = stream[0].test.x[:50]
    model = icarl.model.eval()
    with torch.no_grad():
        f = F.normalize(model.forward_features(x), dim=1)
        means = torch.stack([F.normalize(F.normalize(model.forward_features(sets[1][c]), dim=1).mean(0), dim=0)
                             for c in range(10)])
        assert torch.equal(icarl.predict(x, None).argmax(1), torch.cdist(f, means).argmin(1))


def test_checkpoint_restores_exemplars_means_and_the_old_network(digits, tmp_path):
    stream = ll.data.split(digits, n_tasks=2, scenario="task", seed=0)
    icarl = ICaRL(buffer_size=30)
    ll.Trainer(small_mlp(stream), icarl, epochs=1, batch_size=32, seed=0).fit(stream)
    save_checkpoint(tmp_path / "ck", icarl.model, icarl)
    again, model = ICaRL(buffer_size=30), small_mlp(stream, seed=1)
    again.attach(ll.Trainer(model, again), stream)
    load_checkpoint(tmp_path / "ck", model, again)
    x = stream[1].test.x[:20]
    assert torch.equal(again.predict(x, None), icarl.predict(x, None))
    assert torch.equal(again.old(x), icarl.old(x)) and again.memory_bytes() == icarl.memory_bytes()


def test_icarl_beats_naive(digits_stream):
    def fit(strategy):
        return ll.Trainer(small_mlp(digits_stream), strategy, epochs=2, batch_size=16, seed=0).fit(digits_stream)

    assert fit(ICaRL(buffer_size=200)).metrics["acc"] > fit(Naive()).metrics["acc"] + 0.3


def test_unsuitable_streams_and_models_are_config_errors(digits):
    domain = ll.data.split(digits, n_tasks=5, scenario="domain", seed=0)
    with pytest.raises(ll.ConfigError, match="does not support domain streams"):
        ll.Trainer(small_mlp(domain), ICaRL()).fit(domain)
    stream = ll.data.split(digits, n_tasks=5, scenario="class", seed=0)
    with pytest.raises(ll.ConfigError, match="forward_features"):
        ll.Trainer(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), ICaRL()).fit(stream)
    with pytest.raises(ll.ConfigError):
        ICaRL(buffer_size=0)


def test_task_loss_is_the_binary_cross_entropy_over_seen_classes_in_place_of_the_criterion(digits):
    stream = ll.data.split(digits, n_tasks=5, scenario="class", seed=0, class_order=list(range(10)))
    icarl = ICaRL(buffer_size=50)
    icarl.attach(ll.Trainer(small_mlp(stream), icarl), stream)
    icarl.before_task(stream[0])  # first task: classes 0 and 1 seen, no old network yet
    x, y = stream[0].train.batch(torch.arange(16))
    out, t = icarl.model(x), torch.zeros_like(y)
    loss = icarl.task_loss(out, x, y, t, F.cross_entropy)
    expect = F.binary_cross_entropy_with_logits(out[:, :2], F.one_hot(y, 2).float(), reduction="sum") / len(y)
    assert torch.allclose(loss, expect)
    assert torch.equal(icarl.task_loss(out, x, y, t, lambda out, y: out.sum()), loss)  # the criterion is unused
