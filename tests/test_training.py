import copy
import math

import pytest
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.checkpoint import States
from lifelong.strategies import STRATEGIES, Strategy, hyper_parameters

from .conftest import small_mlp


def fit(stream, strategy=None, seed=0, **kw):
    kw.setdefault("epochs", 3)
    kw.setdefault("batch_size", 16)
    return ll.Trainer(small_mlp(stream, seed), strategy, seed=seed, **kw).fit(stream)


def test_same_seed_gives_identical_matrix_and_losses(digits_stream):
    a, b = fit(digits_stream), fit(digits_stream)
    assert a.matrix == b.matrix and a.losses == b.losses and a.reference == b.reference
    c = fit(digits_stream, seed=1)
    assert c.matrix != a.matrix


def test_result_shapes_and_measurements(digits_stream):
    r = fit(digits_stream, epochs=3)
    assert len(r.matrix) == 5 and all(len(row) == 5 for row in r.matrix)
    assert len(r.reference) == 5 and all(len(ls) == 3 for ls in r.losses)
    assert r.samples_seen == 3 * sum(len(t.train) for t in digits_stream)
    m = r.metrics
    assert m["samples_per_second"] > 0 and m["peak_rss_mb"] > 0 and m["train_seconds"] > 0
    # naive fine-tuning in class-IL: each task learnt, earlier ones forgotten
    assert m["learning_accuracy"] > 0.8 and m["acc"] < 0.4 and m["bwt"] < -0.5


def test_reference_row_is_untrained_model(digits_stream):
    model = small_mlp(digits_stream)
    trainer = ll.Trainer(model, seed=0)
    before = trainer.evaluate(digits_stream)
    r = ll.Trainer(small_mlp(digits_stream), seed=0).fit(digits_stream)
    assert r.reference == before


def test_without_reference_row_the_fit_is_the_same_and_fwt_unknown(digits_stream, monkeypatch):
    with_ref = fit(digits_stream, epochs=1)
    calls = []
    monkeypatch.setattr(ll.Trainer, "evaluate", lambda self, stream, _orig=ll.Trainer.evaluate:
                        calls.append(1) or _orig(self, stream))
    without = fit(digits_stream, epochs=1, reference=False)
    assert len(calls) == len(digits_stream)  # once after each task, none before training
    assert without.matrix == with_ref.matrix and without.losses == with_ref.losses
    assert all(math.isnan(b) for b in without.reference) and math.isnan(without.metrics["fwt"])
    assert without.metrics["acc"] == with_ref.metrics["acc"]


class Recorder(Strategy):
    name = "recorder"

    def __init__(self):
        self.calls = []

    def before_task(self, task):
        self.calls.append(("before_task", task.id))

    def batch(self, x, y, t):
        self.calls.append("batch")
        return x, y, t

    def loss(self, out, x, y, t):
        self.calls.append("loss")
        return None

    def after_backward(self):
        # gradients exist here and the step has not happened yet
        assert all(p.grad is not None for p in self.model.parameters())
        self.calls.append("after_backward")

    def after_step(self):
        self.calls.append("after_step")

    def after_task(self, task):
        self.calls.append(("after_task", task.id))


def test_hook_order(digits):
    stream = ll.data.split(digits, n_tasks=2, seed=0)
    rec = Recorder()
    fit(stream, rec, epochs=1, batch_size=10_000)  # one batch per task
    step = ["batch", "loss", "after_backward", "after_step"]
    assert rec.calls == [("before_task", 0), *step, ("after_task", 0), ("before_task", 1), *step, ("after_task", 1)]


class ConstantLoss(Strategy):
    name = "constant"

    def __init__(self, value: float = 0.0):
        self.value = value

    def loss(self, out, x, y, t):
        return torch.tensor(self.value)


def test_extra_loss_is_added_to_loss_not_output(digits_stream):
    base = fit(digits_stream, epochs=1)
    shifted = fit(digits_stream, ConstantLoss(3.0), epochs=1)
    # a constant has no gradient: same weights, same accuracies, loss shifted by exactly 3
    assert shifted.matrix == base.matrix
    for a, b in zip(shifted.losses, base.losses):
        assert a[0] == pytest.approx(b[0] + 3.0, abs=1e-5)


def test_non_finite_loss_stops_training(digits_stream):
    with pytest.raises(ll.TrainingError, match="non-finite"):
        fit(digits_stream, ConstantLoss(float("nan")))


def test_task_incremental_masks_other_heads(digits):
    stream = ll.data.split(digits, n_tasks=5, scenario="task", seed=0)
    model = small_mlp(stream)
    head_before = model.head.weight.detach().clone()
    stream_one = ll.data.Stream(stream.tasks[:1], "task", stream.n_outputs, stream.input_shape)
    ll.Trainer(model, epochs=1, seed=0).fit(stream_one)
    changed = (model.head.weight.detach() != head_before).any(1)
    assert changed[stream[0].units].all()
    others = [u for t in stream.tasks[1:] for u in t.units]
    assert not changed[others].any()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("scenario, head", [("task", "linear"), ("class", "growing")])
def test_weight_decay_leaves_masked_head_rows_alone(digits, optimizer, scenario, head):
    """One step on the first task's data: the units other heads own (task-IL) or not yet switched on
    (a growing head) keep their rows, as separate heads outside the step would; the task's own rows
    take the optimiser's weight-decay step (grad + decay · θ) exactly as before."""
    stream = ll.data.split(digits, n_tasks=5, scenario=scenario, seed=0)
    one = ll.data.Stream(stream.tasks[:1], scenario, stream.n_outputs, stream.input_shape)
    model = ll.models.with_head(small_mlp(stream), head)
    reference = copy.deepcopy(model)
    before = model.head.weight.detach().clone()
    options = dict(lr=0.01, weight_decay=0.5)
    ll.Trainer(model, epochs=1, batch_size=10_000, optimizer=optimizer, seed=0, **options).fit(one)
    ll.models.heads.grow_heads(reference, stream[0].units)
    x, y = one[0].train.x, one[0].train.y
    F.cross_entropy(one.mask(reference(x), torch.zeros_like(y)), y).backward()
    (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(reference.parameters(), **options).step()
    own, others = stream[0].units, [u for t in stream.tasks[1:] for u in t.units]
    assert torch.equal(model.head.weight[others], before[others])
    assert not torch.equal(reference.head.weight[others], before[others])  # what the optimiser's decay did
    assert torch.allclose(model.head.weight[own], reference.head.weight[own], atol=1e-6)
    assert torch.allclose(model.features[1].weight, reference.features[1].weight, atol=1e-6)


def test_task_incremental_accuracy_beats_class_incremental(digits):
    r_task = fit(ll.data.split(digits, n_tasks=5, scenario="task", seed=0))
    r_class = fit(ll.data.split(digits, n_tasks=5, scenario="class", seed=0))
    assert r_task.metrics["acc"] > r_class.metrics["acc"] + 0.3


@pytest.mark.parametrize("kw", [{"epochs": 0}, {"batch_size": -1}, {"lr": 0.0}, {"optimizer": "rmsprop"},
                                {"momentum": -1.0}])
def test_bad_trainer_arguments(digits_stream, kw):
    with pytest.raises(ll.ConfigError):
        ll.Trainer(small_mlp(digits_stream), **kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_without_gpu_is_a_clear_error(digits_stream):
    with pytest.raises(ll.ConfigError, match="no CUDA"):
        ll.Trainer(small_mlp(digits_stream), device="cuda")


def test_sgd_with_momentum_learns(digits_stream):
    r = fit(digits_stream, ll.strategies.Joint(), optimizer="sgd", lr=0.05, momentum=0.9)
    assert r.metrics["acc"] > 0.85


def test_plot_writes_pngs(digits_stream, tmp_path):
    r = fit(digits_stream, epochs=1)
    paths = r.plot(tmp_path, "naive")
    assert [p.name for p in paths] == ["matrix-naive.png", "curves-naive.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


class Killed(Exception):
    """Stands for SIGKILL in-process: raised at a pause point (see `checkpointing.PauseAt`)."""


@pytest.fixture
def killable(monkeypatch):
    """`kill_at(point)` makes the fit raise Killed at that pause point; None lets it run to the end."""
    from lifelong import checkpoint, checkpointing

    def hold(where):
        raise Killed(where)

    monkeypatch.setattr(checkpointing, "hold", hold)

    def kill_at(point):
        if point is None:
            monkeypatch.delenv(checkpoint.PAUSE_ENV, raising=False)
        else:
            monkeypatch.setenv(checkpoint.PAUSE_ENV, point)

    return kill_at


RESUME_OPTIONS = {"gdumb": {"epochs": 2}}
TASK_IL = {"pnn", "packnet", "hat"}


def resume_chain(stream, make, tmp_path, kill_at, points, every=3, model=None, **options):
    """A fit interrupted at each of `points` in turn, each time resumed by a fresh Trainer (with a
    differently initialised model: `model(seed)`, default a small MLP), then resumed to the end; returns
    its result and where it stopped."""
    model = model or (lambda seed: small_mlp(stream, seed=seed, hidden=(16,)))
    stopped = []
    for k, point in enumerate([*points, None]):
        kill_at(point)
        trainer = ll.Trainer(model(k), make(), epochs=2, batch_size=64, seed=0, **options,
                             checkpoint=tmp_path / "ck", checkpoint_every=every)
        try:
            return trainer.fit(stream, resume=k > 0), stopped
        except Killed as err:
            stopped.append(str(err))
    raise AssertionError("unreachable")


@pytest.mark.parametrize("name", [e.name for e in STRATEGIES])
def test_resumed_fit_is_identical_for_every_strategy(digits, tmp_path, killable, name):
    """Killed mid-epoch in task 0, while writing a state, between tasks 1 and 2 and two steps before
    the end: the resumed fit's matrix and per-epoch losses equal an uninterrupted fit's, bit for bit."""
    stream = ll.data.split(digits, n_tasks=3, seed=0, scenario="task" if name in TASK_IL else "class")
    opts = {**({"buffer_size": 40} if "buffer_size" in hyper_parameters(STRATEGIES.get(name).factory) else {}),
            **RESUME_OPTIONS.get(name, {})}

    def make():
        return STRATEGIES.get(name).factory(**opts)

    trainer = ll.Trainer(small_mlp(stream, hidden=(16,)), make(), epochs=2, batch_size=64, seed=0)
    ref = trainer.fit(stream)
    if not ref.losses[0]:  # no training of its own in task 0 (GDumb trains in after_task)
        points = ["ck:task:0", "ck:write:4"]
    else:  # task 0 has >= 10 steps: states 2, 3 at steps 3, 6; killed at 7; state 4 at step 9
        points = ["ck:step:7", "ck:write:4", "ck:task:1"] + ([f"ck:step:{trainer.step - 2}"] if ref.losses[2] else [])
    result, stopped = resume_chain(stream, make, tmp_path, killable, points)
    assert result.matrix == ref.matrix and result.losses == ref.losses and result.reference == ref.reference
    assert result.samples_seen == ref.samples_seen and stopped == points


@pytest.mark.parametrize("name", ["naive", "si", "packnet"])
def test_resumed_fit_is_identical_with_a_channels_last_cnn(digits, tmp_path, killable, name):
    """The image CNN's conv weights are channels-last; saved states are contiguous: a resumed fit still
    ends bit-identical (Adam's moments and SI's sums go back into tensors of either layout)."""
    stream = ll.data.split(digits, n_tasks=3, seed=0, scenario="task" if name in TASK_IL else "class")

    def model(seed):
        torch.manual_seed(seed)
        return ll.models.build("cnn", digits.input_shape, stream.n_outputs)

    ref = ll.Trainer(model(0), STRATEGIES.get(name).factory(), epochs=2, batch_size=64, seed=0).fit(stream)
    points = ["ck:step:7", "ck:write:4", "ck:task:1"]
    result, stopped = resume_chain(stream, STRATEGIES.get(name).factory, tmp_path, killable, points, model=model)
    assert result.matrix == ref.matrix and result.losses == ref.losses and stopped == points


def test_adam_fused_is_adams_update_in_one_kernel(digits_stream):
    """The same step as the default Adam up to rounding, from PyTorch's fused implementation."""
    models = [small_mlp(digits_stream) for _ in range(2)]
    x, y = digits_stream[0].train.x[:64], digits_stream[0].train.y[:64]
    for model, name in zip(models, ("adam", "adam-fused")):
        opt = ll.Trainer(model, optimizer=name, lr=1e-2).make_optimizer()
        assert opt.defaults["fused"] is (True if name == "adam-fused" else None)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_resumed_fit_with_adam_fused_is_identical(digits, tmp_path, killable):
    stream = ll.data.split(digits, n_tasks=3, seed=0)
    ref = ll.Trainer(small_mlp(stream, hidden=(16,)), epochs=2, batch_size=64, seed=0,
                     optimizer="adam-fused").fit(stream)
    points = ["ck:step:7", "ck:write:4", "ck:task:1"]
    result, stopped = resume_chain(stream, ll.strategies.Naive, tmp_path, killable, points, optimizer="adam-fused")
    assert result.matrix == ref.matrix and result.losses == ref.losses and stopped == points


def test_damaged_newest_state_is_passed_over(digits, tmp_path, killable):
    """A state truncated or tampered with after it was written is refused by its checksum; the fit
    resumes from the newest intact one (with a warning) and still ends identical."""
    stream = ll.data.split(digits, n_tasks=3, seed=0)
    make = ll.strategies.EWC
    ref = ll.Trainer(small_mlp(stream, hidden=(16,)), make(), epochs=2, batch_size=64, seed=0).fit(stream)
    resume_chain(stream, make, tmp_path, killable, ["ck:task:1"])  # its states stay once it has finished
    states = States(tmp_path / "ck.resume", "ck")
    numbers = states.numbers()
    newest = tmp_path / "ck.resume" / f"state-{numbers[-1]:08d}.safetensors"
    newest.write_bytes(newest.read_bytes()[:-7])
    with pytest.warns(UserWarning, match="truncated or altered"):
        again = ll.Trainer(small_mlp(stream, seed=3, hidden=(16,)), make(), epochs=2, batch_size=64, seed=0,
                           checkpoint=tmp_path / "ck").fit(stream, resume=True)
    assert again.matrix == ref.matrix and again.losses == ref.losses
    for n in states.numbers():  # every state damaged: the user is told to start over
        path = tmp_path / "ck.resume" / f"state-{n:08d}.safetensors"
        path.write_bytes(b"x" + path.read_bytes()[1:])
    with pytest.warns(UserWarning), pytest.raises(ll.LifelongError, match="start the run over"):
        ll.Trainer(small_mlp(stream, hidden=(16,)), make(), checkpoint=tmp_path / "ck").fit(stream, resume=True)


def test_resume_refuses_another_setup_and_needs_a_checkpoint(digits, tmp_path):
    stream = ll.data.split(digits, n_tasks=2, seed=0)
    ll.Trainer(small_mlp(stream), epochs=1, batch_size=64, checkpoint=tmp_path / "ck").fit(stream)
    with pytest.raises(ll.ConfigError, match="another epochs"):
        ll.Trainer(small_mlp(stream), epochs=2, batch_size=64, checkpoint=tmp_path / "ck").fit(stream, resume=True)
    with pytest.raises(ll.ConfigError, match="another strategy"):
        ll.Trainer(small_mlp(stream), ll.strategies.SI(), epochs=1, batch_size=64,
                   checkpoint=tmp_path / "ck").fit(stream, resume=True)
    with pytest.raises(ll.ConfigError, match="another model"):
        ll.Trainer(small_mlp(stream, hidden=(8,)), epochs=1, batch_size=64,
                   checkpoint=tmp_path / "ck").fit(stream, resume=True)
    with pytest.raises(ll.ConfigError, match="needs Trainer\\(checkpoint=PATH\\)"):
        ll.Trainer(small_mlp(stream)).fit(stream, resume=True)
    with pytest.raises(ll.ConfigError, match="`checkpoint` path"):
        ll.Trainer(small_mlp(stream), checkpoint_every=5)
    with pytest.raises(ll.ConfigError, match="checkpoint_every"):
        ll.Trainer(small_mlp(stream), checkpoint=tmp_path / "x", checkpoint_every=-1)


def test_default_criterion_gives_the_numbers_of_plain_cross_entropy(digits_stream):
    """`nn.CrossEntropyLoss()` (mean reduction) is what the loop computed with F.cross_entropy."""
    default = fit(digits_stream, ll.strategies.EWC(lam=100), epochs=1)
    plain = fit(digits_stream, ll.strategies.EWC(lam=100), epochs=1, criterion=F.cross_entropy)
    assert default.matrix == plain.matrix and default.losses == plain.losses


def test_a_custom_criterion_gets_the_masked_outputs_and_changes_the_fit(digits):
    stream = ll.data.split(digits, n_tasks=5, scenario="task", seed=0)
    seen = []

    weight = torch.linspace(0.5, 1.5, stream.n_outputs)

    def weighted(out, y):
        seen.append(out.detach())
        return F.cross_entropy(out, y, weight=weight)

    ours, base = fit(stream, criterion=weighted, epochs=1), fit(stream, epochs=1)
    assert ours.losses != base.losses and len(seen) == sum(-(-len(t.train) // 16) for t in stream)
    low = torch.finfo(seen[0].dtype).min
    assert all(((o == low).sum(1) == stream.n_outputs - 2).all() for o in seen)  # other tasks' heads masked


def test_an_optimizer_factory_gets_the_parameter_groups_and_matches_the_named_one(digits_stream):
    calls = []

    def adam(groups):
        calls.append(groups)
        return torch.optim.Adam(groups, lr=1e-3)

    ours, named = fit(digits_stream, epochs=1, optimizer=adam), fit(digits_stream, epochs=1, optimizer="adam")
    assert ours.matrix == named.matrix and ours.losses == named.losses
    assert len(calls) == 1 + len(digits_stream) and all(isinstance(g, dict) and g["params"] for g in calls[0])
    trainer = ll.Trainer(small_mlp(digits_stream), optimizer=adam)
    extra = torch.nn.Linear(2, 2)
    opt = trainer.optimizer_for(extra.parameters(), weight_decay=0.0)  # how strategies build their own (DANN)
    (group,) = calls[-1]
    assert group["weight_decay"] == 0.0 and group["params"] == list(extra.parameters()) and opt.param_groups == [group]
    assert trainer.optimizer_name.endswith("adam") and trainer.lr is None


@pytest.mark.parametrize("kw", [{"lr": 0.1}, {"momentum": 0.9}, {"weight_decay": 1e-4}])
def test_settings_of_the_named_optimizers_are_refused_with_a_factory(digits_stream, kw):
    with pytest.raises(ll.ConfigError, match=f"`{next(iter(kw))}` is for the named optimizers"):
        ll.Trainer(small_mlp(digits_stream), optimizer=lambda groups: torch.optim.SGD(groups, lr=0.1), **kw)


@pytest.mark.parametrize("make", [ll.strategies.Naive, lambda: ll.strategies.EWC(lam=100),
                                  lambda: ll.strategies.Replay(buffer_size=100)])
def test_stepping_with_fit_task_and_evaluate_gives_fits_matrix(digits_stream, make):
    ref = fit(digits_stream, make(), epochs=2)
    trainer = ll.Trainer(small_mlp(digits_stream), make(), epochs=2, batch_size=16, seed=0)
    rows, evaluated = [], []
    for task in digits_stream:
        rows.append(trainer.fit_task(task, digits_stream))
        evaluated.append(trainer.evaluate(digits_stream))
    assert rows == evaluated == ref.matrix
    result = trainer.result()
    assert result.losses == ref.losses and result.reference == ref.reference and result.samples_seen == ref.samples_seen


def test_fit_task_needs_its_stream_first_and_tasks_in_order(digits_stream):
    trainer = ll.Trainer(small_mlp(digits_stream), batch_size=64)
    with pytest.raises(ll.ConfigError, match="needs the task's `stream`"):
        trainer.fit_task(digits_stream[0])
    with pytest.raises(ll.ConfigError, match="task 0 is next"):
        trainer.fit_task(digits_stream[1], digits_stream)
    trainer.fit_task(digits_stream[0])
    assert len(trainer.fit_task(digits_stream[1])) == len(digits_stream)


class Counter(ll.training.Callback):
    def __init__(self):
        self.steps, self.tasks = [], []

    def on_step(self, trainer):
        self.steps.append(trainer.step)

    def on_task_end(self, trainer, task):
        self.tasks.append((task.id, len(trainer.progress.matrix)))


def test_callbacks_see_every_step_of_the_tasks_and_every_task_end(digits):
    stream = ll.data.split(digits, n_tasks=2, seed=0)
    counter = Counter()
    trainer = ll.Trainer(small_mlp(stream), ll.strategies.GDumb(buffer_size=40, epochs=2), batch_size=32,
                         callbacks=[counter])
    trainer.fit(stream)
    assert counter.steps == [] and counter.tasks == [(0, 1), (1, 2)]  # GDumb's retraining is not a task's own
    counter = Counter()
    ll.Trainer(small_mlp(stream), batch_size=32, epochs=2, callbacks=[counter]).fit(stream)
    n = sum(2 * -(-len(t.train) // 32) for t in stream)
    assert counter.steps == list(range(1, n + 1)) and counter.tasks == [(0, 1), (1, 2)]
