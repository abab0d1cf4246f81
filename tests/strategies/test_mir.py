import copy

import pytest
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.data import online, served
from lifelong.errors import ConfigError
from lifelong.strategies import MIR, Naive, Replay

from .steps import in_step


def started(strategy, lr=0.1):
    torch.manual_seed(0)
    trainer = ll.Trainer(ll.models.mlp(6, 4, hidden=(8,)), strategy, batch_size=10, lr=lr, optimizer="sgd",
                         reference=False)
    trainer.start(served((6,), 4))
    trainer.optimizer = trainer.make_optimizer()
    return trainer


def test_retrieves_the_candidates_a_virtual_step_hurts_most():
    mir = MIR(buffer_size=40, replay_batch_size=3, candidates=12)
    trainer = started(mir, lr=0.5)
    g = torch.Generator().manual_seed(1)
    c = ll.memory.Samples(torch.randn(12, 6, generator=g), torch.randint(0, 4, (12,), generator=g),
                          torch.zeros(12, dtype=torch.long), None)
    x, y = torch.randn(10, 6, generator=g), torch.randint(0, 4, (10,), generator=g)
    mir.memory.add(c.x, c.y, c.t)  # the candidates are 12 distinct stored samples
    before_params = [p.detach().clone() for p in trainer.model.parameters()]
    picked = mir.retrieve(c, x, y, torch.zeros_like(y))
    virtual = copy.deepcopy(trainer.model)  # the paper's virtual SGD step, by hand
    F.cross_entropy(virtual(x), y).backward()
    with torch.no_grad():
        for p in virtual.parameters():
            p -= 0.5 * p.grad
        score = F.cross_entropy(virtual(c.x), c.y, reduction="none") - F.cross_entropy(trainer.model(c.x), c.y,
                                                                                      reduction="none")
    top = score.topk(3).indices
    assert torch.equal(picked.x, c.x[top]) and torch.equal(picked.y, c.y[top])
    assert all(torch.equal(a, b) for a, b in zip(before_params, trainer.model.parameters()))  # virtual only


def test_batch_joins_the_retrieved_samples_and_stores_the_incoming_ones():
    mir = MIR(buffer_size=40, replay_batch_size=4, candidates=8)
    trainer = started(mir)
    x, y = torch.randn(10, 6), torch.randint(0, 4, (10,))
    t = torch.zeros_like(y)
    in_step(trainer, x, y, t)
    assert mir.batch(x, y, t)[0].shape[0] == 10  # an empty memory: the batch alone, then stored
    assert len(mir.memory) == 10
    in_step(trainer, x + 1, y, t)
    bx, by, _ = mir.batch(x + 1, y, t)
    assert bx.shape[0] == 14 and torch.equal(bx[:10], x + 1)
    assert all((row == x).all(1).any() for row in bx[10:])  # replayed rows come from the memory
    assert len(mir.memory) == 20


def test_mir_replays_better_than_naive_on_an_online_stream(digits):
    stream = online(ll.data.split(digits, n_tasks=5, scenario="class", seed=0), seed=0)
    accs = {}
    for name, strategy in [("naive", Naive()), ("er", Replay(buffer_size=200, replay_batch_size=10)),
                           ("mir", MIR(buffer_size=200, replay_batch_size=10))]:
        torch.manual_seed(0)
        trainer = ll.Trainer(ll.models.mlp(64, 10, hidden=(64,)), strategy, batch_size=10, lr=0.05,
                             optimizer="sgd", seed=0)
        accs[name] = trainer.fit_online(stream, eval_every=10_000, eval_samples=50).metrics["acc"]
    assert accs["mir"] > accs["naive"] + 0.1 and accs["er"] > accs["naive"] + 0.1  # 0.41, 0.33, 0.20


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="`candidates` of mir must be a whole number"):
        MIR(candidates=0)


def test_a_small_memory_gives_each_stored_sample_at_most_once_before_repeats():
    mir = MIR(buffer_size=40, replay_batch_size=3, candidates=12)
    trainer = started(mir)
    x, y = torch.randn(2, 6), torch.tensor([0, 1])
    in_step(trainer, x, y, torch.zeros_like(y))
    mir.memory.add(x, y, torch.zeros_like(y))  # 2 stored, 12 candidates drawn: 10 are repeats
    picked = mir.retrieve(mir.memory.sample(12), torch.randn(10, 6), torch.randint(0, 4, (10,)),
                          torch.zeros(10, dtype=torch.long))
    assert {tuple(r.tolist()) for r in picked.x[:2]} == {tuple(r.tolist()) for r in x}  # both, before any repeat
