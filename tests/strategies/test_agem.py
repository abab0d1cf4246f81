import pytest
import torch

import lifelong as ll
from lifelong.strategies import AGEM, Naive
from lifelong.strategies.agem import project

from ..conftest import small_mlp


def test_projection_matches_a_hand_computation():
    g = [torch.tensor([1.0, 0.0]), torch.tensor([2.0])]
    ref = [torch.tensor([-1.0, 1.0]), torch.tensor([-1.0])]
    # g . ref = -1 - 2 = -3 < 0, |ref|^2 = 3: g~ = g - (-3 / 3) ref = g + ref
    out = project(g, ref)
    assert torch.allclose(out[0], torch.tensor([0.0, 1.0])) and torch.allclose(out[1], torch.tensor([1.0]))
    dot = sum((a * r).sum() for a, r in zip(out, ref))
    assert abs(float(dot)) < 1e-6  # the projection lies on the constraint's boundary


def test_no_change_when_the_reference_loss_would_not_rise():
    g = [torch.tensor([1.0, 2.0])]
    assert torch.equal(project(g, [torch.tensor([0.5, -0.1])])[0], g[0])  # g . ref = 0.3 >= 0
    assert torch.equal(project(g, [torch.zeros(2)])[0], g[0])  # an empty reference changes nothing


def test_memory_holds_past_tasks_only_and_agem_beats_naive(digits_stream):
    agem = AGEM(buffer_size=200, replay_batch_size=32)
    tasks_in_memory = []
    before = agem.before_task

    def spy(task):
        before(task)
        tasks_in_memory.append(sorted(set(agem.memory.stored().t.tolist())) if agem.memory.filled else [])

    agem.before_task = spy
    r = ll.Trainer(small_mlp(digits_stream), agem, epochs=2, batch_size=16, seed=0).fit(digits_stream)
    assert tasks_in_memory == [list(range(k)) for k in range(5)]
    naive = ll.Trainer(small_mlp(digits_stream), Naive(), epochs=2, batch_size=16, seed=0).fit(digits_stream)
    assert r.metrics["acc"] > naive.metrics["acc"] + 0.15


@pytest.mark.parametrize("kwargs", [{"buffer_size": 0}, {"replay_batch_size": 0}])
def test_bad_sizes_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        AGEM(**kwargs)


def test_online_agem_keeps_a_reservoir_of_the_stream_and_projects(digits):
    stream = ll.data.online(ll.data.split(digits, n_tasks=5, scenario="class", seed=0), seed=0)
    agem = AGEM(buffer_size=100, replay_batch_size=20)
    trainer = ll.Trainer(small_mlp(stream), agem, batch_size=10, lr=0.05, optimizer="sgd", seed=0)
    trainer.fit_online(stream, eval_every=10_000, eval_samples=20)
    assert agem.memory.policy == "reservoir" and len(agem.memory) == 100
    stored = agem.memory.stored()
    assert len(stored.y.unique()) == 10  # a uniform sample of the whole stream holds every class
    naive = ll.Trainer(small_mlp(stream), Naive(), batch_size=10, lr=0.05, optimizer="sgd", seed=0)
    naive.fit_online(stream, eval_every=10_000, eval_samples=20)
    differ = [not torch.equal(a, b) for a, b in zip(trainer.model.parameters(), naive.model.parameters())]
    assert all(differ)  # the steps were projected (same start, same batches)
