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
