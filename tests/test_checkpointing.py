"""The state of a fit across kills: `Checkpointing` and the `PauseAt` kill point, on their own."""

import dataclasses

import pytest
import torch

import lifelong as ll
from lifelong import checkpointing
from lifelong.checkpoint import PAUSE_ENV
from lifelong.checkpointing import Checkpointing, PauseAt

from .conftest import small_mlp


class Held(Exception):
    pass


@pytest.fixture
def held(monkeypatch):
    """Where `hold` was called, raising Held instead of waiting to be killed."""
    where = []

    def hold(point):
        where.append(point)
        raise Held(point)

    monkeypatch.setattr(checkpointing, "hold", hold)
    return where


def test_pause_point_is_read_from_the_environment_once_for_its_own_fit(monkeypatch):
    monkeypatch.setenv(PAUSE_ENV, "ck:step:12")
    pause = PauseAt.from_env("ck")
    assert pause is not None and pause.step == 12 and pause.wants_steps
    assert PauseAt.from_env("other") is None and PauseAt.from_env("c") is None
    monkeypatch.setenv(PAUSE_ENV, "ck:task:1")
    pause = PauseAt.from_env("ck")
    assert pause is not None and not pause.wants_steps
    monkeypatch.delenv(PAUSE_ENV)
    assert PauseAt.from_env("ck") is None


def test_pause_holds_only_at_its_point(held, digits):
    stream = ll.data.split(digits, n_tasks=2, seed=0)
    pause = PauseAt("ck", "ck:task:1")
    pause.on_task_end(None, stream[0])
    pause.point("ck:write:1")
    assert held == []
    with pytest.raises(Held):
        pause.on_task_end(None, stream[1])
    assert held == ["ck:task:1"]


def test_a_trainer_calls_checkpointing_every_n_steps_only(digits, tmp_path, monkeypatch):
    stream = ll.data.split(digits, n_tasks=2, seed=0)
    trainer = ll.Trainer(small_mlp(stream, hidden=(16,)), epochs=2, batch_size=64, checkpoint=tmp_path / "ck",
                         checkpoint_every=4)
    saved = []
    save = trainer.states.save
    monkeypatch.setattr(trainer.states, "save", lambda *a, **kw: saved.append(trainer.step) or save(*a, **kw))
    trainer.fit(stream)
    steps = [2 * -(-len(t.train) // 64) for t in stream]
    every = list(range(4, sum(steps) + 1, 4))
    assert saved == sorted([0, *every, steps[0], sum(steps)])  # the start, every 4 steps, each task's end
    assert not any(c.wants_steps for c in ll.Trainer(small_mlp(stream), checkpoint=tmp_path / "x").callbacks)


def test_restore_gives_back_the_progress_model_and_counters_of_the_last_state(digits, tmp_path):
    stream = ll.data.split(digits, n_tasks=2, seed=0)
    first = ll.Trainer(small_mlp(stream, hidden=(16,)), ll.strategies.EWC(), epochs=1, batch_size=64,
                       checkpoint=tmp_path / "ck")
    result = first.fit(stream)
    again = ll.Trainer(small_mlp(stream, seed=5, hidden=(16,)), ll.strategies.EWC(), epochs=1, batch_size=64)
    again.start(stream)
    keeper = Checkpointing(tmp_path / "ck")
    progress = keeper.restore(again)
    assert progress is not None and progress.matrix == result.matrix and progress.losses == result.losses
    assert again.step == first.step and again.samples_seen == first.samples_seen
    for a, b in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)
    assert keeper.pending is None and keeper.elapsed() == 0.0 and keeper.resume_task(again) is None


def test_bad_steps_are_refused_with_the_argument_named(tmp_path):
    for every in (-1, 1.5, True):
        with pytest.raises(ll.ConfigError, match="`checkpoint_every` must be a whole number") as caught:
            Checkpointing(tmp_path / "ck", every)
        assert caught.value.argument == "checkpoint_every"


def test_a_stream_stepped_with_fit_task_resumes_like_a_fit(held, digits, tmp_path, monkeypatch):
    """Killed inside task 1 of a stepped fit; `start(stream, resume=True)` then `fit_task` from the first
    task not learnt ends with `fit`'s matrix and losses."""
    stream = ll.data.split(digits, n_tasks=3, seed=0)

    def trainer(seed):
        return ll.Trainer(small_mlp(stream, seed=seed, hidden=(16,)), ll.strategies.SI(), epochs=2, batch_size=64,
                          checkpoint=tmp_path / "ck", checkpoint_every=3)

    ref = ll.Trainer(small_mlp(stream, hidden=(16,)), ll.strategies.SI(), epochs=2, batch_size=64).fit(stream)
    monkeypatch.setenv(PAUSE_ENV, "ck:step:22")  # task 0 takes 18 steps
    first = trainer(0)
    with pytest.raises(Held):
        for task in stream:
            first.fit_task(task, stream)
    monkeypatch.delenv(PAUSE_ENV)
    again = trainer(1)
    again.start(stream, resume=True)
    assert len(again.progress.matrix) == 1
    rows = [again.fit_task(task) for task in stream.tasks[len(again.progress.matrix):]]
    assert again.result().matrix == ref.matrix and rows == ref.matrix[1:] and again.result().losses == ref.losses


@pytest.mark.parametrize("other", ["classes", "data", "model"])
def test_the_states_of_another_stream_or_model_are_refused(digits, tmp_path, other):
    """A resume from states saved for tasks of other classes (same sizes), other data (one pixel) or a
    model with a frozen layer: each differs in what the setup records, and is refused naming it."""
    stream = ll.data.split(digits, n_tasks=2, seed=0)
    ll.Trainer(small_mlp(stream, hidden=(16,)), epochs=1, batch_size=64, checkpoint=tmp_path / "ck").fit(stream)
    model = small_mlp(stream, hidden=(16,))
    if other == "classes":
        order = stream.info["class_order"]
        stream = ll.data.split(digits, n_tasks=2, seed=0, class_order=[order[1], order[0], *order[2:]])
    elif other == "data":
        x = digits.train.x.clone()
        x[0, 0] += 1.0
        stream = ll.data.split(dataclasses.replace(digits, train=dataclasses.replace(digits.train, x=x)), 2, seed=0)
    else:
        next(model.parameters()).requires_grad_(False)
    with pytest.raises(ll.ConfigError, match=f"saved by a fit with another {other} .*`rm -r "):
        ll.Trainer(model, epochs=1, batch_size=64, checkpoint=tmp_path / "ck").fit(stream, resume=True)


def test_the_states_of_other_permutations_or_another_version_are_refused(digits, tmp_path, monkeypatch):
    """Permutations drawn from another seed (same classes, sizes and data tensors) and a state saved by
    another version of lifelong are refused, naming what differs."""
    def fit(stream, where, resume=False):
        model = small_mlp(stream, hidden=(16,))
        ll.Trainer(model, epochs=1, batch_size=64, checkpoint=tmp_path / where).fit(stream, resume=resume)

    fit(ll.data.permuted(digits, n_tasks=2, seed=0), "a")
    with pytest.raises(ll.ConfigError, match="saved by a fit with another stream_info "):
        fit(ll.data.permuted(digits, n_tasks=2, seed=1), "a", resume=True)
    monkeypatch.setattr(checkpointing, "__version__", "0.0.9")
    fit(ll.data.permuted(digits, n_tasks=2, seed=0), "b")
    monkeypatch.undo()
    with pytest.raises(ll.ConfigError, match=rf"another lifelong \(0.0.9 there, {ll.__version__} here\)"):
        fit(ll.data.permuted(digits, n_tasks=2, seed=0), "b", resume=True)
