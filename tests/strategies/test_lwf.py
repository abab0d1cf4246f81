import pytest
import torch

import lifelong as ll
from lifelong.strategies import LwF

from ..conftest import small_mlp


def fit(stream, strategy, seed=0):
    model = small_mlp(stream, seed)
    trainer = ll.Trainer(model, strategy, epochs=3, batch_size=16, seed=seed)
    return trainer, trainer.fit(stream)


@pytest.mark.parametrize("scenario, groups", [("task", [[0, 1], [2, 3]]), ("class", [[0, 1, 2, 3]]),
                                              ("domain", [None])])
def test_old_outputs_per_scenario(digits, scenario, groups):
    stream = ll.data.split(digits, n_tasks=5, scenario=scenario, seed=0, class_order=list(range(10)))
    lwf = LwF()
    lwf.attach(ll.Trainer(small_mlp(stream)), stream)
    lwf.before_task(stream[2])
    assert [None if g is None else g.tolist() for g in lwf.groups] == groups  # None: all outputs


def test_distillation_gradient_vanishes_at_the_teacher(digits):
    stream = ll.data.split(digits, n_tasks=2, scenario="task", seed=0)
    model = small_mlp(stream)
    trainer = ll.Trainer(model)
    lwf = LwF(alpha=1.0, temperature=2.0)
    lwf.attach(trainer, stream)
    lwf.after_task(stream[0])
    lwf.before_task(stream[1])
    x = stream[1].train.x[:32]
    trainer.logits = model(x)
    lwf.loss(None, x, None, None).backward()
    assert all(p.grad.abs().max() < 1e-6 for p in model.parameters())
    assert all(not p.requires_grad for p in lwf.teacher.parameters())


def test_lwf_keeps_old_head_outputs_closer_than_naive(digits):
    stream = ll.data.split(digits, n_tasks=2, scenario="task", seed=0)
    x0 = stream[0].test.x
    units = stream[0].units

    def old_head_change(strategy):
        model = small_mlp(stream)
        snapshots = []

        class Snap(ll.Strategy):
            def after_task(self, task):
                with torch.no_grad():
                    snapshots.append(torch.softmax(model(x0)[:, units], 1))

        ll.Trainer(model, ll.Compose(Snap(), strategy), epochs=3, batch_size=16, seed=0).fit(stream)
        return (snapshots[1] - snapshots[0]).abs().sum(1).mean().item()

    assert old_head_change(LwF(alpha=5.0)) < 0.5 * old_head_change(ll.strategies.Naive())


@pytest.mark.parametrize("replay", [False, True])
def test_recorded_teacher_outputs_equal_the_teachers_forward_pass(digits, replay):
    """The outputs recorded once per task (Algorithm 1's Y_o) are the teacher's outputs on each batch,
    also when a replay strategy appends memory rows after the drawn ones."""
    stream = ll.data.split(digits, n_tasks=3, scenario="class", seed=0)
    lwf, checked = LwF(), []

    class Check(ll.Strategy):
        def loss(self, out, x, y, t):
            if lwf.teacher is not None:
                with torch.no_grad():
                    same = torch.allclose(lwf.teacher_outputs(x), lwf.teacher(x), atol=1e-5)
                recorded = lwf._recorded is not None and len(lwf._recorded[1]) == len(self.trainer.train_data)
                checked.append((len(x), same and recorded))

    parts = [lwf, ll.strategies.Replay(buffer_size=50, replay_batch_size=8)] if replay else [lwf]
    ll.Trainer(small_mlp(stream), ll.Compose(*parts, Check()), epochs=2, batch_size=16, seed=0).fit(stream)
    assert checked and all(ok for _, ok in checked)
    assert any(n > 16 for n, _ in checked) == replay  # replayed rows were appended (and checked)


def test_teacher_state_round_trip(digits_stream):
    trainer, _ = fit(digits_stream, LwF())
    a = trainer.strategy
    b = LwF()
    b.attach(trainer, digits_stream)
    b.load_state_dict(a.state_dict())
    x = digits_stream[0].test.x
    assert torch.equal(a.teacher(x), b.teacher(x))
    assert a.memory_bytes() == sum(p.numel() * 4 for p in trainer.model.parameters())


class Snapshot(ll.Strategy):
    """The model's parameters at the end of each task and at the start of each task's joint training."""

    name = "snapshot"

    def __init__(self):
        self.after, self.start = [], []

    def before_task(self, task):
        self.start.append({k: v.detach().clone() for k, v in self.model.named_parameters()})

    def after_task(self, task):
        self.after.append({k: v.detach().clone() for k, v in self.model.named_parameters()})


@pytest.mark.parametrize("scenario", ["task", "class"])
def test_warmup_trains_only_the_new_tasks_head_rows(digits, scenario):
    """Li & Hoiem's warm-up: θ_s and θ_o frozen, θ_n (the new task's units) trained on L_new alone."""
    stream = ll.data.split(digits, n_tasks=2, scenario=scenario, seed=0)
    snap = Snapshot()
    trainer = ll.Trainer(small_mlp(stream), ll.Compose(LwF(warmup=2), snap), epochs=1, batch_size=16, seed=0)
    trainer.fit(stream)
    end_of_first, warmed = snap.after[0], snap.start[1]
    new, old = stream[1].units, stream[0].units
    assert all(torch.equal(warmed[k], end_of_first[k]) for k in warmed if not k.startswith("head."))
    for k in ("head.weight", "head.bias"):
        assert torch.equal(warmed[k][old], end_of_first[k][old])
        assert (warmed[k][new] != end_of_first[k][new]).reshape(len(new), -1).any(1).all()
    assert all(p.requires_grad for p in trainer.model.parameters()) and trainer.model.training
    assert trainer.samples_seen == len(stream[0].train) + 3 * len(stream[1].train)  # warm-up: 2 epochs
    x, y = stream[1].train.x, stream[1].train.y

    def new_task_loss(params):
        logits = torch.func.functional_call(trainer.model, params, (x,))
        return torch.nn.functional.cross_entropy(stream.mask(logits, torch.ones_like(y)), y)

    assert new_task_loss(warmed) < 0.95 * new_task_loss(end_of_first)  # the new head has learnt L_new


def test_bad_options():
    with pytest.raises(ll.ConfigError, match="`warmup`"):
        LwF(warmup=-1)
    with pytest.raises(ll.ConfigError):
        LwF(temperature=0)
