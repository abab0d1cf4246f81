import json

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from scipy.stats import chisquare

import lifelong as ll
from lifelong.memory import Buffer, waterfill


def offer(buf, labels, tasks=None, batch=32, features=3):
    """Offer samples whose input encodes their stream position (x[:, 0] = index)."""
    labels = torch.as_tensor(labels)
    tasks = torch.zeros_like(labels) if tasks is None else torch.as_tensor(tasks)
    for i in range(0, len(labels), batch):
        idx = torch.arange(i, min(i + batch, len(labels)))
        buf.add(idx[:, None].float().expand(-1, features), labels[idx], tasks[idx])


def test_reservoir_keeps_a_uniform_sample():
    n, capacity, trials = 60, 10, 1200
    hits = torch.zeros(n)
    for trial in range(trials):
        buf = Buffer(capacity, seed=trial)
        offer(buf, torch.zeros(n, dtype=torch.long), batch=(3, 7, 25)[trial % 3])  # 25 > capacity: in-batch ties
        ids = buf.stored().x[:, 0].long()
        assert len(ids) == capacity and len(set(ids.tolist())) == capacity
        hits[ids] += 1
    assert chisquare(hits.numpy()).pvalue > 1e-3  # each sample kept with probability capacity / n
    assert hits.min() > 0


def test_reservoir_fills_in_order_then_never_grows():
    buf = Buffer(5, seed=0)
    offer(buf, [0, 1, 2], batch=3)
    assert buf.stored().x[:, 0].tolist() == [0, 1, 2] and len(buf) == 3
    offer(buf, list(range(100)), batch=9)
    assert len(buf) == 5 and int(buf.offered) == 103


def test_class_balanced_counts_stay_within_one():
    buf = Buffer(100, "class_balanced", n_keys=10, seed=0)
    g = torch.Generator().manual_seed(0)
    for task in range(5):  # two new classes per task, in random order, uneven batch sizes
        labels = torch.tensor([2 * task, 2 * task + 1]).repeat(150)[torch.randperm(300, generator=g)]
        offer(buf, labels, batch=17 + task)
        stored = buf.stored()
        counts = torch.bincount(stored.y, minlength=10)[: 2 * task + 2]
        assert len(buf) == 100 and counts.max() - counts.min() <= 1
        assert torch.equal(counts, buf.counts[: 2 * task + 2])
        for c in range(2 * task + 2):  # each class's stack lists exactly its stored slots
            slots = buf.members[c, : buf.counts[c]]
            assert (buf.y[slots] == c).all() and len(set(slots.tolist())) == len(slots)


def test_class_balanced_keeps_first_offered_and_drops_last_stored():
    buf = Buffer(4, "class_balanced", n_keys=2)
    offer(buf, [0, 0, 0, 0, 0], batch=5)  # quota 4 for the one class seen: the first four
    assert sorted(buf.stored().x[:, 0].tolist()) == [0, 1, 2, 3]
    offer(buf, [1, 1, 1], batch=3)  # quota 2 each: class 0 gives up its two most recent
    kept = buf.stored()
    assert sorted(kept.x[kept.y == 0, 0].tolist()) == [0, 1] and len(buf) == 4


def test_per_task_quotas_are_equal():
    buf = Buffer(90, "per_task", n_keys=3)
    for task in range(3):
        offer(buf, torch.zeros(200, dtype=torch.long), torch.full((200,), task), batch=64)
    assert torch.bincount(buf.stored().t, minlength=3).tolist() == [30, 30, 30]


@pytest.mark.parametrize("seed", range(20))
def test_waterfill_equals_removing_from_the_largest_one_at_a_time(seed):
    g = torch.Generator().manual_seed(seed)
    m = torch.randint(0, 30, (6,), generator=g)
    e = int(torch.randint(0, int(m.sum()) + 1, (), generator=g))
    expect = m.clone()
    for _ in range(e):
        expect[expect.argmax()] -= 1
    got = waterfill(m, torch.tensor(e))
    assert torch.equal(got.sort().values, expect.sort().values) and (got <= m).all()


def test_sample_draws_stored_samples_without_replacement():
    buf = Buffer(50, seed=0)
    offer(buf, torch.arange(20) % 3)
    s = buf.sample(15)
    assert len(set(s.x[:, 0].tolist())) == 15 and (s.x[:, 0] < 20).all()
    assert torch.equal(s.y, s.x[:, 0].long() % 3)  # inputs and labels stay paired
    assert len(buf.sample(45).y) == 45  # more than stored: each stored sample repeats


@pytest.mark.parametrize("capacity, n_keys", [(30, 4), (3, 10)])
def test_state_round_trip_through_safetensors_and_json_continues_identically(capacity, n_keys):
    a = Buffer(capacity, "class_balanced", n_keys=n_keys, seed=3)
    offer(a, torch.arange(100) % 4)
    a.add(torch.ones(2, 3), torch.tensor([1, 2]), torch.zeros(2, dtype=torch.long))
    state = a.state_dict()
    tensors = st_load(st_save({k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}))
    values = json.loads(json.dumps({k: v for k, v in state.items() if not isinstance(v, torch.Tensor)}))
    b = Buffer.from_state({**tensors, **values})
    for buf in (a, b):
        offer(buf, torch.arange(40) % 4)
    assert torch.equal(a.sample(7).x, b.sample(7).x) and len(b.state_dict()["counts"]) == n_keys
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in tensors)


def test_size_in_bytes_counts_samples_logits_and_bookkeeping():
    buf = Buffer(100, seed=0)
    assert buf.nbytes == 0
    buf.add(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long),
            logits=torch.zeros(4, 10))
    per_sample = 64 * 4 + 8 + 8 + 10 * 4
    assert 100 * per_sample <= buf.nbytes < 100 * per_sample + 6000  # + counters and the RNG state


@pytest.mark.parametrize("args", [(0,), (-3,), (2.5,), (10, "fifo")])
def test_bad_arguments_are_config_errors(args):
    with pytest.raises(ll.ConfigError):
        Buffer(*args)


def test_add_split_offers_a_whole_split(digits):
    buf = Buffer(len(digits.train.y) + 5, seed=0)
    buf.add_split(digits.train, 2, torch.Generator().manual_seed(0), chunk=100)
    stored = buf.stored()
    assert len(buf) == len(digits.train.y) and (stored.t == 2).all()
    assert torch.equal(stored.y.sort().values, digits.train.y.sort().values)
