"""The state of a fit across kills, kept out of the training loop's body.

`Checkpointing` saves a fit's whole state (model, optimiser, strategy, random states, position and
results so far) to `PATH.resume/` (`checkpoint.States`) at its start, after every task and every
`every` optimiser steps, plus the latest task's model and strategy to `PATH.safetensors/.json`, and
puts an interrupted fit back where its newest intact state left it. The Trainer calls it, and any
other `Callback`, at two points: after an optimiser step and at the end of a task. `PauseAt` is the
kill point of the resume tests, read once from the environment (`checkpoint.PAUSE_ENV`).

Under data-parallel training (`distributed`) every rank holds the same state: rank 0 alone writes it,
and every rank restores from the same files. Each rank reads the newest state before any rank may
write (a barrier in `restore`), so none ever sees a state that rank 0 is writing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from . import __version__, distributed
from .checkpoint import PAUSE_ENV, States, rng_state, set_rng_state, split_state, strip_prefix
from .checkpoint import save as save_checkpoint
from .errors import ConfigError
from .files import json_digest

STATE_KEYS = ("setup", "progress", "rng", "samples_seen", "step", "strategy_values")  # of every saved state

if TYPE_CHECKING:
    from .data import Stream, Task
    from .training import Trainer

Saved = tuple[int, dict[str, Tensor], dict[str, Any]]  # a state's number, tensors and values


class Callback:
    """Something the Trainer calls during a fit; override the hooks you need."""

    @property
    def wants_steps(self) -> bool:
        """Whether `on_step` is to be called (the Trainer asks once per task, not at every step)."""
        return type(self).on_step is not Callback.on_step

    def on_step(self, trainer: Trainer) -> None:
        """After each optimiser step of a task's training (`trainer.step` counts them over the fit)."""

    def on_task_end(self, trainer: Trainer, task: Task) -> None:
        """After `task` is learnt and its row of the accuracy matrix recorded (`trainer.progress`)."""


@dataclass
class Progress:
    """What a fit has measured so far: what a resumed fit continues from."""

    reference: list[float]
    eval_seconds: float
    matrix: list[list[float]] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)
    task_seconds: list[float] = field(default_factory=list)


@dataclass
class Position:
    """Where a task's training is: its epoch, the epoch's order of samples and running loss sum (updated
    in place), the fit's step count when the epoch began, the task's epoch losses so far and the time
    it started (earlier than now by what a resumed task had already taken)."""

    epoch: int
    perm: Tensor
    total: Tensor
    first_step: int
    losses: list[float]
    started: float


def hold(where: str) -> None:
    """Say on stderr that the fit holds at `where`, then wait to be killed. The line goes out in one write, so
    that ranks holding at once (all writing to one pipe, unbuffered) cannot interleave their lines."""
    sys.stderr.write(f"lifelong: paused at {where}\n")
    sys.stderr.flush()
    while True:
        time.sleep(60)


class PauseAt(Callback):
    """The kill-and-resume tests' hook: hold (`hold`) at one point of the fit checkpointed as `fit`:
    `<fit>:step:<n>` (after optimiser step n), `<fit>:write:<n>` (state n's tensors are written, its
    JSON is not yet; `point` is the States' `on_write`) or `<fit>:task:<k>` (task k is learnt and saved)."""

    def __init__(self, fit: str, where: str) -> None:
        self.fit, self.where = fit, where
        name, _, step = where.rpartition(":step:")
        self.step = int(step) if name == fit and step.isdigit() else 0

    @classmethod
    def from_env(cls, fit: str) -> PauseAt | None:
        """The point named by the environment variable LIFELONG_PAUSE_AT, if it is one of `fit`'s."""
        where = os.environ.get(PAUSE_ENV, "")
        return cls(fit, where) if where.startswith(f"{fit}:") else None

    @property
    def wants_steps(self) -> bool:
        return self.step > 0

    def point(self, where: str) -> None:
        if where == self.where:
            hold(where)

    def on_step(self, trainer: Trainer) -> None:
        if trainer.step == self.step:
            hold(self.where)

    def on_task_end(self, trainer: Trainer, task: Task) -> None:
        self.point(f"{self.fit}:task:{task.id}")


def data_digest(stream: Stream) -> str:
    """A SHA-256 (16 hex digits) of the data of every task: labels, and inputs as stored (a tensor shared
    by several tasks, as in a permuted stream, is read once; inputs kept on disk, such as an image
    folder's, count by their kind and shape, not their files' contents)."""
    h, seen = hashlib.sha256(), set()
    for task in stream:
        for split in (task.train, task.test, task.valid):
            for part in (split.x, split.y) if split is not None else ():
                if not isinstance(part, Tensor):
                    h.update(f"{type(part).__name__}{tuple(part.shape)}".encode())
                elif id(part) not in seen:
                    seen.add(id(part))
                    flat = part.detach().cpu().contiguous().reshape(-1)
                    h.update(f"{part.dtype}{tuple(part.shape)}".encode())
                    h.update(flat.view(torch.uint8).numpy().data)
                else:
                    h.update(b"seen")
    return h.hexdigest()[:16]


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimiser's per-parameter state (Adam's moments, SGD's momentum): its tensors, as
    `optimizer.<i>.<name>`, and its other values by parameter index `str(i)`."""
    tensors: dict[str, Tensor] = {}
    values: dict[str, Any] = {}
    for i, state in optimizer.state_dict()["state"].items():
        opt_tensors, values[str(i)] = split_state(state, f"optimizer.{i}.")
        tensors |= opt_tensors
    return tensors, values


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], values: dict[str, Any]) -> None:
    """Restore into `optimizer` (over the same parameters) what `optimizer_state` returned; `tensors` may hold
    others (those without the `optimizer.` prefix are ignored)."""
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in values.items()}
    for key, v in strip_prefix(tensors, "optimizer.").items():
        i, name = key.split(".", 1)
        state[int(i)][name] = v
    whole = optimizer.state_dict()
    whole["state"] = state
    optimizer.load_state_dict(whole)


def model_digest(model: nn.Module) -> str:
    """A digest (16 hex digits) of `model`'s architecture: its state's names, shapes and types, and which
    parameters are trained (a frozen backbone's are not)."""
    return json_digest([[[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()],
                        [k for k, p in model.named_parameters() if not p.requires_grad]])[:16]


class Checkpointing(Callback):
    """Saves and restores a fit's state (see the module's docstring) for `fit(stream, resume=True)`: on
    the CPU, a resumed fit's result is identical to that of an uninterrupted one. A state saved inside a
    task is restored in two parts: its base (the state at the task's start) by `restore`, so that the
    Trainer sets the task up again exactly as it did, the rest by `resume_task` once the task's
    optimiser exists."""

    def __init__(self, path: str | Path, every: int = 0) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ConfigError(f"`checkpoint_every` must be a whole number of steps >= 0, got {every!r}",
                              "checkpoint_every")
        self.path, self.every = Path(path), every
        self.pause = PauseAt.from_env(self.path.name)
        self.states = States(f"{path}.resume", self.path.name, self.pause.point if self.pause else None)
        self.base: int | None = None  # the number of the state saved at the current task's start
        self.pending: Saved | None = None  # a state inside a task, for `resume_task`
        self.fit: tuple[Stream, dict[str, Any]] | None = None  # the stream of the fit under way and its setup

    @property
    def wants_steps(self) -> bool:
        return self.every > 0

    def start(self, trainer: Trainer) -> None:
        """A fresh fit: delete an earlier fit's states and save the state at the start."""
        self.pending = None
        if distributed.is_main():
            self.states.clear()
            self.base = self.states.save(*self.snapshot(trainer))

    def on_step(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0:
            assert trainer.position is not None
            total = trainer.position.total  # this rank's running loss sum: rank 0 saves every rank's
            totals = distributed.all_gather_rows(total.reshape(1)) if distributed.active() else total
            if distributed.is_main():
                self.save_step(trainer, totals)

    def on_task_end(self, trainer: Trainer, task: Task) -> None:
        if not distributed.is_main():
            return
        progress = trainer.progress
        save_checkpoint(self.path, trainer.model, trainer.strategy, {
            "task": task.id, "seed": trainer.seed, "matrix": progress.matrix, "reference": progress.reference})
        self.base = self.states.save(*self.snapshot(trainer))

    def setup(self, trainer: Trainer) -> dict[str, Any]:
        """What a saved state must agree on with the fit that resumes from it (as JSON reads it back): the
        Trainer's settings, the strategy and its options, the stream (its tasks' classes, the class order,
        permutations or angles drawn from the seed in `Stream.info`, the data: `data_digest`), the model's
        architecture and the lifelong version. Computed once per fit of a stream."""
        s = trainer.given
        assert s is not None
        if self.fit is None or self.fit[0] is not s:
            self.fit = s, json.loads(json.dumps({
                "lifelong": __version__, "seed": trainer.seed, "epochs": trainer.epochs,
                "batch_size": trainer.batch_size, "lr": trainer.lr, "optimizer": trainer.optimizer_name,
                "momentum": trainer.momentum, "weight_decay": trainer.weight_decay,
                "strategy": [c.name for c in trainer.strategy.children()], "options": trainer.strategy.options(),
                "stream": [s.name, s.scenario, len(s), s.n_outputs, [len(t.train) for t in s]],
                "classes": [t.classes for t in s], "units": [t.units for t in s],
                "stream_info": json_digest(s.info)[:16], "data": data_digest(s), "model": model_digest(trainer.model),
            }, default=str))
        return self.fit[1]

    def snapshot(self, trainer: Trainer) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The model, strategy and random states, the counters and the results so far."""
        strategy_tensors, strategy_values = split_state(trainer.strategy.state_dict(), "strategy.")
        rng_tensors, rng_values = rng_state(trainer.generator)
        model_tensors, _ = split_state(trainer.model.state_dict(), "model.")
        return {**model_tensors, **strategy_tensors, **rng_tensors}, {
            "setup": self.setup(trainer), "progress": dataclasses.asdict(trainer.progress), "rng": rng_values,
            "samples_seen": trainer.samples_seen, "step": trainer.step, "strategy_values": strategy_values}

    def save_step(self, trainer: Trainer, total: Tensor) -> None:
        """Save the state inside a task: the snapshot plus the optimiser and the position in the epoch, with
        `total` the epoch's running loss sum (one per rank under data-parallel training)."""
        assert trainer.optimizer is not None and trainer.position is not None
        pos = trainer.position
        tensors, values = self.snapshot(trainer)
        tensors |= {"epoch.perm": pos.perm, "epoch.total": total}
        opt_tensors, optimizer = optimizer_state(trainer.optimizer)
        tensors |= opt_tensors
        n_batches = trainer.step - pos.first_step
        values |= {"optimizer": optimizer, "position": {
            "epoch": pos.epoch, "batch": n_batches * trainer.batch_size, "n_batches": n_batches,
            "epoch_losses": list(pos.losses), "elapsed": time.perf_counter() - pos.started}}
        self.states.save(tensors, values, base=self.base)

    def _load(self, trainer: Trainer, tensors: dict[str, Tensor], values: dict[str, Any]) -> None:
        """Load a saved state's model, strategy, random states and counters into `trainer`."""
        try:
            trainer.model.load_state_dict(strip_prefix(tensors, "model."))
        except RuntimeError as err:
            raise ConfigError(f"the states in {self.states.folder} were saved for another model "
                              f"({str(err).splitlines()[0]}): resume with the same model, or start over") from None
        state = {k: v.to(trainer.device) for k, v in strip_prefix(tensors, "strategy.").items()}
        trainer.strategy.load_state_dict({**state, **values["strategy_values"]})
        set_rng_state(trainer.generator, tensors, values["rng"])
        trainer.samples_seen, trainer.step = values["samples_seen"], values["step"]

    def restore(self, trainer: Trainer) -> Progress | None:
        """Load the newest intact state's base into `trainer`; its progress, or None if none was saved.
        Every rank reads the same state (rank 0 writes none until all have read it)."""
        chain = self.states.latest()
        distributed.barrier()
        if not chain:
            return None
        ours, folder = self.setup(trainer), self.states.folder
        redo = f"redo this fit from its start by deleting that folder (`rm -r {shlex.quote(str(folder))}`)"
        for i, (m, _, saved) in enumerate(chain):  # the base, and the state inside a task saved on it
            keys = STATE_KEYS + (("optimizer", "position") if i else ())
            if missing := [k for k in keys if k not in saved]:
                raise ConfigError(f"state {m} in {folder} has no {missing[0]!r}: {redo}")
            for key, value in ours.items():
                if saved["setup"].get(key) != value:
                    raise ConfigError(f"the states in {folder} were saved by a fit with another {key} "
                                      f"({saved['setup'].get(key)} there, {value} here): resume with the same setup, "
                                      f"or {redo}")
        n, tensors, values = chain[0]
        self._load(trainer, tensors, values)
        self.base, self.pending = n, chain[1] if len(chain) > 1 else None
        return Progress(**values["progress"])

    def elapsed(self) -> float:
        """The seconds a resumed task had taken before it was interrupted (0 for a task started afresh)."""
        return self.pending[2]["position"]["elapsed"] if self.pending else 0.0

    def resume_task(self, trainer: Trainer) -> tuple[list[float], int, dict[str, Any]] | None:
        """Load the pending state inside a task (None if there is none): returns the task's epoch losses
        so far, the epoch it was in and the position in that epoch."""
        if self.pending is None:
            return None
        assert trainer.optimizer is not None
        _, tensors, values = self.pending
        self.pending = None
        self._load(trainer, tensors, values)
        load_optimizer_state(trainer.optimizer, tensors, values["optimizer"])
        pos, total = values["position"], tensors["epoch.total"]
        if total.dim() == 1:  # each rank's running loss sum: this rank's, or their mean under another world size
            total = total[distributed.rank()] if len(total) == distributed.world_size() else total.mean()
        cursor = {"perm": tensors["epoch.perm"], "total": total, "batch": pos["batch"], "n_batches": pos["n_batches"]}
        return list(pos["epoch_losses"]), pos["epoch"], cursor
