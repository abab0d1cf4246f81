"""The served learner: one model and online strategy (`Trainer.learn`) that take the write-ahead log's
batches in sequence order, in one worker thread, so that what it learns never depends on timing.

Its whole state (model, strategy, optimiser, random states, counters, and the sequence number of the last
batch applied) is saved every `checkpoint_every` samples as a numbered state in `DIR/states`
(`checkpoint.States`: safetensors + sealed JSON, atomic, the two newest kept). A start loads the newest
intact state and replays the log after it: after a kill at any moment the learner reaches the very state
an uninterrupted one would have (on the CPU, bit for bit). Predictions come from a copy of the model (and
strategy) that the worker publishes after each batch, under a lock, so a prediction never sees a
half-updated model. `replay` learns a whole log again offline.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import random
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checkpoint import States, rng_state, set_rng_state, split_state, strip_prefix
from ..checkpoint import save as save_checkpoint
from ..checkpointing import load_optimizer_state, optimizer_state
from ..data import served
from ..errors import ConfigError, LifelongError, TrainingError
from ..experiment.continual import make_strategy
from ..models import build
from ..strategies import check_scenario, overrides
from ..training import Trainer
from .config import ServeConfig
from .log import Batch, Log

STATES = "states"  # the learner's saved states, under its folder
EXPORT = "model"  # the model and strategy written at a clean stop (`checkpoint.save`: DIR/model.safetensors/.json)


def check_strategy(config: ServeConfig) -> None:
    """Refuse, with the one line naming those that can, a strategy that needs task boundaries (before the
    input shape is known, so that a mistake is said at the start)."""
    check_scenario(make_strategy(config.strategy, config.strategy_options, config.shared()), "task-free")


def make_trainer(config: ServeConfig) -> Trainer:
    """A started Trainer of `config` (its shape known): the model initialised from the seed, the strategy
    attached to a task-free stream without data of its own (`data.served`). NumPy's and Python's random
    states are seeded too, so that a saved state is the same whichever process learnt it."""
    assert config.inputs is not None and config.classes is not None
    shape = tuple(config.inputs)
    np.random.seed(config.seed % 2**32)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    model = build(config.model, shape, config.classes, tuple(config.hidden))
    strategy = make_strategy(config.strategy, config.strategy_options, config.shared())
    trainer = Trainer(model, strategy, batch_size=config.batch_size, lr=config.lr, optimizer=config.optimizer,
                      momentum=config.momentum, weight_decay=config.weight_decay, seed=config.seed, reference=False)
    trainer.start(served(shape, config.classes))
    return trainer


class Gate:
    """A readers-writer lock: predictions read the published copy together; the worker's publishing waits
    for them to finish and holds new ones back until it is done."""

    def __init__(self) -> None:
        self.cond, self.readers, self.writing, self.waiting = threading.Condition(), 0, False, 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self.cond:
            self.cond.wait_for(lambda: not self.writing and not self.waiting)
            self.readers += 1
        try:
            yield
        finally:
            with self.cond:
                self.readers -= 1
                self.cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self.cond:
            self.waiting += 1
            self.cond.wait_for(lambda: not self.writing and self.readers == 0)
            self.waiting -= 1
            self.writing = True
        try:
            yield
        finally:
            with self.cond:
                self.writing = False
                self.cond.notify_all()


class Learner:
    """The learner of the state folder `folder` (its log, states and options); `config` may not know its
    input shape yet (`reshape` gives it once the first batch has). With `serving`, a published copy answers
    `predict`; `checkpoint_every` = 0 saves a state only at `stop`."""

    def __init__(self, folder: Path, config: ServeConfig, checkpoint_every: int = 1000, serving: bool = True,
                 holdout: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.folder, self.config, self.every, self.serving = folder, config, checkpoint_every, serving
        self.states = States(folder / STATES, "serve")
        self.trainer: Trainer | None = None
        self.shadow: Trainer | None = None  # the published copy predictions read
        self.seq = 0  # the last batch applied
        self.saved = (0, 0)  # (seq, samples) of the newest state saved or loaded
        self.counts = torch.zeros(0, dtype=torch.long)  # samples learnt per class
        self.loss = float("nan")  # of the last step
        self.version = 0  # of the published copy
        self.published_seq = 0  # the last batch the published copy has learnt
        self.gate = Gate()
        self.applied = threading.Condition()  # notified after each batch applied (`wait`)
        self.wake = threading.Event()  # set when a batch is logged or the shape becomes known
        self.stopping = threading.Event()
        self.failure: str | None = None
        self.holdout = holdout
        self.accuracy: tuple[tuple[int, int], float | None] = ((-1, -1), None)  # ((version, seq), accuracy) last
        self.on_batch: Callable[[int, float], None] = lambda rows, seconds: None  # the service's metrics

    # -- the worker ---------------------------------------------------------------------------------------

    def run(self) -> None:
        """The worker: build once the shape is known, then apply the log's batches in order as they come,
        until `stop`; saves a state on the way out. An error stops learning and is kept in `failure`."""
        try:
            log = Log(self.folder)
            try:
                while not self.stopping.is_set():
                    self.wake.clear()
                    if self.trainer is None and self.config.shaped:
                        self.start()
                    batches = self.log_after(log) if self.trainer is not None else []
                    for batch in batches:
                        if self.stopping.is_set():
                            break
                        self.apply(batch)
                    if not batches:
                        self.wake.wait(0.5)
                if self.trainer is not None and self.seq > self.saved[0]:
                    self.save()
                if self.trainer is not None:
                    self.export()
            finally:
                log.close()
        except Exception as err:  # noqa: BLE001 - kept for /health and /status, and said on stderr
            self.failure = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            if isinstance(err, LifelongError):
                print(f"lifelong: error: {err}", file=sys.stderr, flush=True)
            else:
                traceback.print_exc()
        finally:
            with self.applied:
                self.applied.notify_all()

    def log_after(self, log: Log, limit: int = 16) -> list[Batch]:
        assert self.config.inputs is not None
        return log.read(self.seq, tuple(self.config.inputs), limit)

    def start(self) -> None:
        """Build the model and strategy (and the published copy, first: building draws from the seed), then
        load the newest intact state saved, if any."""
        shadow = make_trainer(self.config) if self.serving else None
        self.trainer = make_trainer(self.config)
        self.counts = torch.zeros(self.trainer.stream.n_outputs, dtype=torch.long)
        chain = self.states.latest()
        if chain:
            self.load(*chain[-1][1:])
        if shadow is not None:
            shadow.model.eval()
            self.publish(shadow)
            self.shadow = shadow  # predictions begin once it holds the state loaded

    def apply(self, batch: Batch) -> None:
        """Learn one logged batch, in steps of `batch_size` samples; then publish the copy (before `seq`
        says the batch is learnt, so that whoever waited for it predicts with it), and save a state if
        `checkpoint_every` samples have passed since the last. A non-finite loss or parameter raises a
        TrainingError before anything is published or saved: the learner stops at the last good batch."""
        trainer = self.trainer
        assert trainer is not None
        t0 = time.perf_counter()
        x, y = torch.from_numpy(batch.x.copy()), torch.from_numpy(batch.y.copy())
        for i in range(0, len(y), self.config.batch_size):
            loss = float(trainer.learn(x[i:i + self.config.batch_size], y[i:i + self.config.batch_size]))
            if not math.isfinite(loss):
                raise TrainingError(f"batch {batch.seq} made the loss non-finite ({loss}): learning stopped after "
                                    f"batch {self.seq}; see docs/serve.md, 'A batch that breaks the learner'")
        for name, p in trainer.model.named_parameters():
            if not torch.isfinite(p).all():
                raise TrainingError(f"batch {batch.seq} made parameter {name} non-finite: learning stopped after "
                                    f"batch {self.seq}; see docs/serve.md, 'A batch that breaks the learner'")
        self.publish(seq=batch.seq)
        self.loss = loss
        self.counts += torch.bincount(y, minlength=len(self.counts))
        self.seq = batch.seq
        if self.every and trainer.samples_seen - self.saved[1] >= self.every:
            self.save()
        self.on_batch(len(y), time.perf_counter() - t0)
        with self.applied:
            self.applied.notify_all()

    def wait(self, seq: int, timeout: float) -> bool:
        """Wait until batch `seq` is applied (or learning failed or stopped); whether it was."""
        with self.applied:
            self.applied.wait_for(lambda: self.seq >= seq or self.failure is not None or self.stopping.is_set(),
                                  timeout)
        return self.seq >= seq

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def reshape(self, config: ServeConfig) -> None:
        """The options with the input shape and classes now known (the first batch's): the worker builds."""
        self.config = config
        self.wake.set()

    # -- state --------------------------------------------------------------------------------------------

    def snapshot(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The learner's whole state: model, strategy, optimiser, random states, counters and position."""
        trainer = self.trainer
        assert trainer is not None and trainer.optimizer is not None
        model, _ = split_state(trainer.model.state_dict(), "model.")
        strategy, strategy_values = split_state(trainer.strategy.state_dict(), "strategy.")
        optimizer, optimizer_values = optimizer_state(trainer.optimizer)
        rng, rng_values = rng_state(trainer.generator)
        return {**model, **strategy, **optimizer, **rng, "serve.counts": self.counts}, {
            "config": dataclasses.asdict(self.config), "seq": self.seq, "samples_seen": trainer.samples_seen,
            "step": trainer.step, "loss": self.loss, "strategy_values": strategy_values,
            "optimizer": optimizer_values, "rng": rng_values, "threads": torch.get_num_threads()}

    def save(self) -> None:
        tensors, values = self.snapshot()
        self.states.save(tensors, values)
        self.saved = (self.seq, values["samples_seen"])

    def load(self, tensors: dict[str, Tensor], values: dict[str, Any]) -> None:
        trainer = self.trainer
        assert trainer is not None
        if values.get("config") != dataclasses.asdict(self.config):
            raise ConfigError(f"the states in {self.states.folder} were saved by a learner with other options than "
                              f"{self.folder / 'serve.json'}: move that folder away to start the learner afresh")
        trainer.model.load_state_dict(strip_prefix(tensors, "model."))
        trainer.strategy.load_state_dict({**strip_prefix(tensors, "strategy."), **values["strategy_values"]})
        trainer.optimizer = trainer.make_optimizer()
        load_optimizer_state(trainer.optimizer, tensors, values["optimizer"])
        set_rng_state(trainer.generator, tensors, values["rng"])
        trainer.samples_seen, trainer.step = values["samples_seen"], values["step"]
        self.counts, self.seq, self.loss = tensors["serve.counts"], values["seq"], values["loss"]
        self.saved = (self.seq, trainer.samples_seen)
        threads = torch.get_num_threads()
        if values.get("threads", threads) != threads:
            warnings.warn(f"the state in {self.states.folder} was saved on {values['threads']} CPU threads, this "
                          f"learner runs on {threads}: its sums may round differently from here on", stacklevel=2)

    def export(self) -> None:
        """The model and strategy as a `checkpoint.save` pair (DIR/model.safetensors and .json)."""
        assert self.trainer is not None
        save_checkpoint(self.folder / EXPORT, self.trainer.model, self.trainer.strategy,
                        {"seq": self.seq, "samples_seen": self.trainer.samples_seen, "config": dataclasses.asdict(
                            self.config)})

    # -- predictions --------------------------------------------------------------------------------------

    def publish(self, shadow: Trainer | None = None, seq: int | None = None) -> None:
        """Copy the model (and the strategy, where it predicts), which has learnt batch `seq` (by default
        `self.seq`), into the copy predictions read (`shadow`, by default the one they read now)."""
        shadow = shadow or self.shadow
        if shadow is None:
            return
        assert self.trainer is not None
        strategy = self.trainer.strategy
        state = {k: v.clone() if isinstance(v, Tensor) else copy.deepcopy(v)
                 for k, v in strategy.state_dict().items()} if overrides(strategy, "predict") else None
        with self.gate.write():
            shadow.model.load_state_dict(self.trainer.model.state_dict())
            if state is not None:
                shadow.strategy.load_state_dict(state)
            self.version += 1
            self.published_seq = self.seq if seq is None else seq

    def predict(self, x: np.ndarray) -> tuple[list[int], list[list[float]], int]:
        """Labels and class probabilities of `x` (float32 rows) from the published copy, and the last batch
        that copy has learnt."""
        if self.shadow is None:
            raise LifelongError("the learner is not built yet: it waits for its first batch")
        xs = torch.from_numpy(x)
        with self.gate.read(), torch.no_grad():
            logits = self.shadow.predict(xs, torch.zeros(len(xs), dtype=torch.long))
            seq = self.published_seq
        probs = torch.softmax(logits.float(), 1)
        return probs.argmax(1).tolist(), probs.tolist(), seq

    def anytime_accuracy(self) -> float | None:
        """Accuracy of the published copy on the held-out samples of the classes learnt so far (None without
        a held-out set, or before any of its classes is learnt); measured once per published copy."""
        version = (self.version, self.seq)  # the counts of a batch are added once it is published
        if self.holdout is None or self.shadow is None or self.accuracy[0] == version:
            return self.accuracy[1]
        x, y = self.holdout
        seen = self.counts.numpy() > 0
        keep = (y < len(seen)) & seen[np.minimum(y, len(seen) - 1)]
        value = None
        if keep.any():
            labels = self.predict(x[keep])[0]
            value = float(np.mean(np.asarray(labels) == y[keep]))
        self.accuracy = (version, value)
        return value

    def classes_seen(self) -> list[int]:
        return torch.nonzero(self.counts).flatten().tolist()


def replay(folder: Path, config: ServeConfig, on_batch: Callable[[Learner], None] = lambda learner: None) -> Learner:
    """Learn the whole log of `folder` again, offline and in order, with the options `config` (those stored,
    or others with the same input shape and classes); `on_batch` is called after each batch. Nothing is
    written to `folder`."""
    learner = Learner(folder, config, checkpoint_every=0, serving=False)
    learner.trainer = make_trainer(config)
    learner.counts = torch.zeros(learner.trainer.stream.n_outputs, dtype=torch.long)
    log = Log(folder, read_only=True)
    try:
        while batches := learner.log_after(log, 64):
            for batch in batches:
                learner.apply(batch)
                on_batch(learner)
    finally:
        log.close()
    return learner
