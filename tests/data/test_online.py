import pytest
import torch

import lifelong as ll
from lifelong.data import online, served, window
from lifelong.errors import ConfigError


@pytest.fixture(scope="module")
def stream():
    return ll.data.split(ll.data.digits(), n_tasks=5, scenario="class", seed=0)


def origins(s):
    _, origin = s.training_data()
    return origin[s.order]


def test_sharp_boundaries_meet_each_task_in_its_own_segment(stream):
    s = online(stream, seed=1)
    sizes = [len(t.train) for t in stream]
    assert s.scenario == "task-free" and s.base == "class"
    assert sorted(s.order.tolist()) == list(range(sum(sizes)))  # every sample once
    assert s.ends == torch.tensor(sizes).cumsum(0).tolist()
    o = origins(s)
    for k, (a, b) in enumerate(zip([0, *s.ends], s.ends)):
        assert (o[a:b] == k).all()
    assert not torch.equal(s.order[: s.ends[0]], torch.arange(s.ends[0]))  # shuffled within a segment
    assert torch.equal(online(stream, seed=1).order, s.order) and not torch.equal(online(stream, seed=2).order, s.order)


def test_blurry_moves_about_that_fraction_to_neighbouring_segments_only(stream):
    s = online(stream, blurry=0.3, seed=0)
    o, starts = origins(s), [0, *s.ends]
    segment = torch.bucketize(torch.arange(len(o)), torch.tensor(s.ends), right=True)
    moved = segment != o
    assert (segment - o)[moved].abs().max() == 1  # only to a neighbouring task's segment
    assert 0.25 < moved.float().mean() < 0.35
    assert starts[-1] == len(o)


def test_drift_mixes_only_around_the_boundaries(stream):
    s = online(stream, drift=0.4, seed=0)
    o = origins(s).tolist()
    n = len(o)
    assert any(o[i] > o[i + 1] for i in range(n - 1))  # the next task's samples come before the last of this one's
    # a sample is never more than one task away from its own segment, and the middle of a segment is pure
    for k, (a, b) in enumerate(zip([0, *s.ends], s.ends)):
        mid = o[a + (b - a) * 2 // 5: a + (b - a) * 3 // 5]
        assert set(mid) == {k}
        assert all(abs(v - k) <= 1 for v in o[a:b])


def test_bad_options_and_scenarios_are_refused(stream):
    with pytest.raises(ConfigError, match="`blurry` must be a number from 0 to 1"):
        online(stream, blurry=1.5)
    with pytest.raises(ConfigError, match="`drift`"):
        online(stream, drift=float("nan"))
    task_il = ll.data.split(ll.data.digits(), n_tasks=5, scenario="task", seed=0)
    with pytest.raises(ConfigError, match="class- or domain-incremental"):
        online(task_il)


def test_window_holds_the_samples_met_between_two_positions(stream):
    s = online(stream, seed=0)
    train, _ = s.training_data()
    w = window(train, s.order, 10, 40, 3)
    assert w.id == 3 and len(w.train) == 30 and len(w.test) == 0
    assert torch.equal(w.train.y, train.y[s.order[10:40]])
    assert w.classes == sorted(set(w.train.y.tolist()))


def test_served_stream_has_no_data_and_all_classes():
    s = served((4,), 3)
    assert s.scenario == "task-free" and s.n_outputs == 3 and len(s[0].train) == 0 and s.input_shape == (4,)
