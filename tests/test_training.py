import pytest
import torch

import lifelong as ll
from lifelong.strategies import Strategy

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
