"""The one continual training loop: `Trainer.fit(stream)`.

For each task: `strategy.before_task`, epochs of mini-batches (index slices of a seeded random
permutation of in-memory tensors) through the strategy's hooks, `strategy.after_task`, then
evaluation on every task of the stream into row i of the accuracy matrix. The reference row b (the
untrained model's accuracy, needed for FWT) is measured before the first task.

With a checkpoint, a fit saves its whole state (model, optimiser, strategy, random states, position
and results so far) at the start, after every task and every `checkpoint_every` steps, and
`fit(stream, resume=True)` continues an interrupted fit from the newest intact one: on the CPU, the
result is identical to that of an uninterrupted fit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from . import metrics
from .checkpoint import PAUSE_ENV, States, pause_point, rng_state, set_rng_state, split_state
from .checkpoint import save as save_checkpoint
from .data import Split, Stream, Task
from .errors import ConfigError, TrainingError
from .evaluation import accuracy_row
from .models.heads import grow_heads, output_layer
from .strategies import Naive, Strategy, overrides

OPTIMIZERS = ("sgd", "adam", "adam-fused")  # adam-fused: PyTorch's fused Adam kernel, equal up to rounding
DEFAULT_OPTIMIZER = ("adam", 1e-3)  # the optimiser and learning rate of a strategy that names none


def default_optimizer(strategy: Strategy, optimizer: str | None, lr: float | None) -> tuple[str, float]:
    """The optimiser and learning rate of a fit: those given, else the strategy's own (a part's
    `default_optimizer`, e.g. HAT's SGD lr 0.05), else DEFAULT_OPTIMIZER. A strategy's learning rate
    goes with its own optimiser only: another optimiser without a learning rate gets the library's."""
    own = next((c.default_optimizer for c in strategy.children() if getattr(c, "default_optimizer", None)),
               DEFAULT_OPTIMIZER)
    optimizer = optimizer or own[0]
    return optimizer, lr if lr is not None else (own[1] if optimizer == own[0] else DEFAULT_OPTIMIZER[1])


@dataclass
class Result:
    """What a `fit` produced: the accuracy matrix and everything measured along the way."""

    matrix: list[list[float]]
    reference: list[float]
    losses: list[list[float]]
    task_seconds: list[float]
    train_seconds: float
    eval_seconds: float
    samples_seen: int
    peak_rss_mb: float
    strategy_memory_bytes: int
    stream: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """ACC, BWT, FWT, forgetting, learning accuracy, time, throughput and memory."""
        return {
            **metrics.summary(self.matrix, self.reference),
            "train_seconds": self.train_seconds,
            "samples_per_second": self.samples_seen / self.train_seconds if self.train_seconds > 0 else 0.0,
            "peak_rss_mb": self.peak_rss_mb,
            "strategy_memory_bytes": self.strategy_memory_bytes,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "metrics": self.metrics}

    def plot(self, out_dir: str | Path, label: str = "") -> list[Path]:
        """Write the accuracy-matrix heat map and per-task accuracy curves as PNG files."""
        from .plots import plot_curves, plot_matrix

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"-{label}" if label else ""
        return [plot_matrix(self.matrix, out / f"matrix{stem}.png", label),
                plot_curves(self.matrix, out / f"curves{stem}.png", label)]


@dataclass
class Progress:
    """What a fit has measured so far: what a resumed fit continues from."""

    reference: list[float]
    eval_seconds: float
    matrix: list[list[float]] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)
    task_seconds: list[float] = field(default_factory=list)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024


def resolve_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but PyTorch sees no CUDA GPU here: use --device cpu")
    return dev


class Trainer:
    """Trains `model` on a stream of tasks with a strategy (default: naive fine-tuning).

    The optimiser is built afresh at the start of every task (after `before_task`, which may add
    parameters), so no optimiser state such as Adam's moments leaks from one task to the next.
    `optimizer` and `lr` left out: the strategy's own, else Adam lr 1e-3 (`default_optimizer`).
    With the same seed, the same model initialisation and the CPU, two fits give identical results.
    With `checkpoint=PATH`, the model and strategy state are saved to PATH.safetensors/.json after
    every task (the latest task only; see `lifelong.checkpoint`), and the fit's whole state to
    `PATH.resume/` (`checkpoint.States`) at its start, after every task and, with `checkpoint_every=N`,
    every N optimiser steps of a task's training, for `fit(stream, resume=True)`. Strategies that
    train again inside `after_task` (GDumb, PackNet) are not checkpointed during that retraining.
    `reference=False` skips the test pass before training (the reference row b, then NaN, and so FWT)
    where only the accuracies after training matter, such as few-shot transfer fits.
    """

    def __init__(
        self,
        model: nn.Module,
        strategy: Strategy | None = None,
        *,
        epochs: int = 1,
        batch_size: int = 128,
        lr: float | None = None,
        optimizer: str | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        seed: int = 0,
        device: str | torch.device = "cpu",
        eval_batch_size: int = 1024,
        progress: bool = False,
        label: str = "",
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 0,
        reference: bool = True,
    ) -> None:
        self.strategy = strategy if strategy is not None else Naive()
        optimizer, lr = default_optimizer(self.strategy, optimizer, lr)
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        for what, value in (("epochs", epochs), ("batch size", batch_size), ("eval batch size", eval_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{what} must be a whole number >= 1, got {value!r}")
        if not (lr > 0 and math.isfinite(lr)):
            raise ConfigError(f"the learning rate must be a positive number, got {lr!r}")
        if momentum < 0 or weight_decay < 0:
            raise ConfigError("momentum and weight decay must be >= 0")
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be a whole number of steps >= 0, got {checkpoint_every!r}")
        if checkpoint_every and checkpoint is None:
            raise ConfigError("checkpointing every N steps needs somewhere to write: give a checkpoint path (--out)")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.epochs, self.batch_size, self.eval_batch_size = epochs, batch_size, eval_batch_size
        self.lr, self.optimizer_name, self.momentum, self.weight_decay = lr, optimizer, momentum, weight_decay
        self.seed, self.progress, self.label = seed, progress, label
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every, self.reference = checkpoint_every, reference
        self.states = States(f"{checkpoint}.resume", self.checkpoint.name) if self.checkpoint is not None else None
        self.optimizer: torch.optim.Optimizer | None = None
        self.head_decay: list[tuple[Tensor, float]] = []  # set by `make_optimizer`
        # while training: the split being learnt and the indices in it of the current batch's rows
        self.train_data: Split | None = None
        self.batch_index = torch.zeros(0, dtype=torch.long)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """What the optimiser trains: every parameter that requires a gradient, at `lr`. Subclasses
        override this for per-group settings, e.g. layer-wise learning rates (`transfer.FineTuner`)."""
        return [{"params": [p for p in self.model.parameters() if p.requires_grad]}]

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser over `parameter_groups`, with the output layer's parameters in groups of their
        own without weight decay: `_decay_reached_rows` decays them row by row (`head_decay`)."""
        groups = [g for g in self.parameter_groups() if g["params"]]
        head = output_layer(self.model)
        self.head_decay = []
        if head is not None:
            ids, split = {id(p) for p in head.parameters()}, []
            for g in groups:
                decay, mine = g.get("weight_decay", self.weight_decay), [p for p in g["params"] if id(p) in ids]
                if decay > 0 and mine:
                    self.head_decay += [(p, decay) for p in mine]
                    split.append({**g, "params": mine, "weight_decay": 0.0})
                    g = {**g, "params": [p for p in g["params"] if id(p) not in ids]}
                split.append(g)
            groups = [g for g in split if g["params"]]
        return self.optimizer_for(groups)

    def _decay_reached_rows(self) -> None:
        """L2 weight decay (grad += decay · θ, as SGD and Adam add it) on the output layer's rows that this
        step's loss reaches (a non-zero gradient in the row's weights or bias). A masked unit (another
        task's head under task-IL, an inactive unit of a growing head) is left as it is, as an optimiser
        leaves a separate head that took no gradient."""
        grads = [p.grad.reshape(len(p), -1) for p, _ in self.head_decay if p.grad is not None]
        if not grads:
            return
        reached = torch.cat(grads, 1).ne(0).any(1)
        for p, decay in self.head_decay:
            if p.grad is not None:
                p.grad.add_(p.detach() * reached.view(-1, *[1] * (p.dim() - 1)), alpha=decay)

    def optimizer_for(self, params: Any, weight_decay: float | None = None) -> torch.optim.Optimizer:
        """A fresh optimiser of this trainer's kind and settings over `params` (tensors or groups);
        `weight_decay` overrides the trainer's. "adam-fused" is Adam with PyTorch's fused kernel
        (one kernel for the whole update: faster on small models, equal up to rounding)."""
        decay = self.weight_decay if weight_decay is None else weight_decay
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=decay)
        return torch.optim.Adam(params, lr=self.lr, weight_decay=decay,
                                fused=True if self.optimizer_name == "adam-fused" else None)

    def predict(self, x: Tensor, t: Tensor) -> Tensor:
        """Logits for evaluation: the strategy's own `predict` where it has one, else the model's."""
        return self.strategy.predict(x, t) if overrides(self.strategy, "predict") else self.model(x)

    def evaluate(self, stream: Stream) -> list[float]:
        """Test accuracy on every task of `stream` with the model in eval mode."""
        was_training = self.model.training
        self.model.eval()
        try:
            return accuracy_row(self.predict, stream, self.device, self.eval_batch_size)
        finally:
            self.model.train(was_training)

    def fit(self, stream: Stream, resume: bool = False) -> Result:
        """Learn the tasks of `stream` in order; returns the accuracy matrix and measurements.

        `resume=True` (with a `checkpoint`) continues from the newest intact state an interrupted fit
        of the same setup saved; a damaged newest state is passed over with a warning. Without it, the
        states of an earlier fit are deleted first."""
        if resume and self.states is None:
            raise ConfigError("resume=True needs Trainer(checkpoint=PATH): the states to resume from are kept there")
        torch.manual_seed(self.seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.stream = stream = self._on_device(stream)
        self.strategy.attach(self, stream)
        grow_heads(self.model, stream[0].units)  # a growing head has the first task's units for the reference row
        self.make_optimizer()  # the first optimiser imports torch._dynamo (~1 s): keep that out of the timings
        self.samples_seen, self.step = 0, 0
        self._pending: tuple[int, dict[str, Tensor], dict[str, Any]] | None = None
        fit_name, _, step = os.environ.get(PAUSE_ENV, "").rpartition(":step:")  # test hook: hold at that step
        self._pause_step = int(step) if self.checkpoint and fit_name == self.checkpoint.name and step.isdigit() else 0

        restored = self._restore() if resume else None
        if restored is None:
            t0 = time.perf_counter()
            row = self.evaluate(stream) if self.reference else [math.nan] * len(stream)
            self.so_far = Progress(row, time.perf_counter() - t0)
            if self.states is not None:
                self.states.clear()
                self._base = self.states.save(*self._snapshot())
        progress = self.so_far = restored or self.so_far
        self.bar = tqdm(total=0, disable=not self.progress, file=sys.stderr, unit="batch", dynamic_ncols=True,
                        leave=False)
        try:
            for task in stream.tasks[len(progress.matrix):]:
                elapsed = self._pending[2]["position"]["elapsed"] if self._pending else 0.0
                start = self._task_start = time.perf_counter() - elapsed
                self.model.train()
                self.strategy.before_task(task)
                data = self.strategy.training_tasks(task, stream)
                grow_heads(self.model, [u for t in (task, *data) for u in t.units])
                what = f"task {task.id + 1}/{len(stream)}"
                progress.losses.append(self.train(*_concat(data), self.epochs, what, main=True) if data else [])
                self.strategy.after_task(task)
                self._check_parameters(task)
                progress.task_seconds.append(time.perf_counter() - start)
                t1 = time.perf_counter()
                progress.matrix.append(self.evaluate(stream))
                progress.eval_seconds += time.perf_counter() - t1
                if self.checkpoint is not None and self.states is not None:
                    save_checkpoint(self.checkpoint, self.model, self.strategy, {
                        "task": task.id, "seed": self.seed, "matrix": progress.matrix, "reference": progress.reference})
                    self._base = self.states.save(*self._snapshot())
                    pause_point(f"{self.checkpoint.name}:task:{task.id}")
        finally:
            self.bar.close()
        return Result(
            matrix=progress.matrix,
            reference=progress.reference,
            losses=progress.losses,
            task_seconds=progress.task_seconds,
            train_seconds=sum(progress.task_seconds),
            eval_seconds=progress.eval_seconds,
            samples_seen=self.samples_seen,
            peak_rss_mb=peak_rss_mb(),
            strategy_memory_bytes=self.strategy.memory_bytes(),
            stream={"name": stream.name, "scenario": stream.scenario, "n_tasks": len(stream),
                    "n_outputs": stream.n_outputs, "info": stream.info},
        )

    def train(self, data: Split, task_ids: Tensor, epochs: int, what: str = "", main: bool = False) -> list[float]:
        """Train on `data` (each sample tagged with its task id) for `epochs` with a fresh optimiser,
        through the strategy's hooks; returns the mean loss of each epoch. `fit` calls this once per
        task (`main`: saving states every `checkpoint_every` steps, and continuing a resumed task);
        strategies that retrain (PackNet after pruning, GDumb on its memory) call it too."""
        self.optimizer = self.make_optimizer()
        self.train_data = data
        hooks = {h: overrides(self.strategy, h) for h in ("batch", "loss", "add_grad", "after_backward", "after_step")}
        self.bar.total += math.ceil(len(data) / self.batch_size) * epochs
        out, first, cursor = self._resume_task() if main and self._pending else ([], 0, None)
        if main:
            self._epoch_losses = out
        try:
            for epoch in range(first, epochs):
                self.bar.set_description(f"{self.label} {what} epoch {epoch + 1}/{epochs}".strip())
                out.append(self._epoch(data, task_ids, hooks, what, epoch, main, cursor if epoch == first else None))
                self.samples_seen += len(data)
        finally:
            self.train_data = None
        return out

    def _epoch(self, train: Split, t_all: Tensor, hooks: dict[str, bool], what: str, epoch: int, main: bool = False,
               cursor: dict[str, Any] | None = None) -> float:
        """One pass over `train` in random order (from `cursor` on, in a resumed epoch); returns the
        mean training loss."""
        model, opt, strategy, stream = self.model, self.optimizer, self.strategy, self.stream
        bs, bar = self.batch_size, self.bar
        assert opt is not None
        n = len(train)
        if cursor is None:
            perm = torch.randperm(n, generator=self.generator).to(train.y.device)
            total, first, n_batches = torch.zeros((), device=self.device), 0, 0
        else:
            perm, total = cursor["perm"].to(train.y.device), cursor["total"].to(self.device)
            first, n_batches = cursor["batch"], cursor["n_batches"]
        every = self.checkpoint_every if main else 0
        fit_name, pause = self.checkpoint.name if self.checkpoint else "", self._pause_step if main else 0
        report = not bar.disable
        t0 = time.perf_counter()
        for i in range(first, n, bs):
            idx = self.batch_index = perm[i : i + bs]
            x, y = train.batch(idx)
            t = t_all[idx]
            if x.device != self.device:
                x, y, t = x.to(self.device), y.to(self.device), t.to(self.device)
            if hooks["batch"]:
                x, y, t = strategy.batch(x, y, t)
            self.logits = model(x)  # unmasked, for strategies that need other heads' outputs (LwF)
            out = stream.mask(self.logits, t)
            loss = F.cross_entropy(out, y)
            if hooks["loss"]:
                extra = strategy.loss(out, x, y, t)
                if extra is not None:
                    loss = loss + extra
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if hooks["add_grad"]:
                strategy.add_grad()
            if hooks["after_backward"]:
                strategy.after_backward()
            if self.head_decay:
                self._decay_reached_rows()
            opt.step()
            if hooks["after_step"]:
                strategy.after_step()
            total += loss.detach()
            n_batches += 1
            if main:
                self.step += 1
                if every and self.step % every == 0:
                    self._save_step(epoch, i + bs, perm, total, n_batches)
                if self.step == pause:
                    pause_point(f"{fit_name}:step:{pause}")
            if report:
                bar.update(1)
                if n_batches % 50 == 0:
                    rate = n_batches * bs / (time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{loss.item():.3f}", samples_s=f"{rate:.0f}")
        mean = float(total) / max(n_batches, 1)
        if not math.isfinite(mean):
            raise TrainingError(
                f"the training loss became non-finite ({what}, epoch {epoch + 1}): the learning rate or the "
                "strategy's penalty weight is too large for this model; lower --lr or the penalty"
            )
        return mean

    def _setup(self) -> dict[str, Any]:
        """What a saved state must agree on with the fit that resumes from it (as JSON reads it back)."""
        s = self.stream
        return json.loads(json.dumps({
            "seed": self.seed, "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
            "optimizer": self.optimizer_name, "momentum": self.momentum, "weight_decay": self.weight_decay,
            "strategy": [c.name for c in self.strategy.children()], "options": self.strategy.options(),
            "stream": [s.name, s.scenario, len(s), s.n_outputs, [len(t.train) for t in s]],
        }, default=str))

    def _snapshot(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The model, strategy and random states, the counters and the results so far."""
        strategy_tensors, strategy_values = split_state(self.strategy.state_dict(), "strategy.")
        rng_tensors, rng_values = rng_state(self.generator)
        tensors = {**{f"model.{k}": v for k, v in self.model.state_dict().items()}, **strategy_tensors, **rng_tensors}
        return tensors, {"setup": self._setup(), "progress": dataclasses.asdict(self.so_far), "rng": rng_values,
                         "samples_seen": self.samples_seen, "step": self.step, "strategy_values": strategy_values}

    def _save_step(self, epoch: int, batch: int, perm: Tensor, total: Tensor, n_batches: int) -> None:
        """Save the state inside a task: the snapshot plus the optimiser and the position in the epoch."""
        assert self.states is not None and self.optimizer is not None
        tensors, values = self._snapshot()
        tensors |= {"epoch.perm": perm, "epoch.total": total}
        optimizer: dict[str, Any] = {}
        for i, state in self.optimizer.state_dict()["state"].items():
            opt_tensors, optimizer[str(i)] = split_state(state, f"optimizer.{i}.")
            tensors |= opt_tensors
        values |= {"optimizer": optimizer, "position": {
            "epoch": epoch, "batch": batch, "n_batches": n_batches, "epoch_losses": list(self._epoch_losses),
            "elapsed": time.perf_counter() - self._task_start}}
        self.states.save(tensors, values, base=self._base)

    def _load(self, tensors: dict[str, Tensor], values: dict[str, Any]) -> None:
        """Load a saved state's model, strategy, random states and counters."""
        assert self.states is not None
        try:
            self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        except RuntimeError as err:
            raise ConfigError(f"the states in {self.states.folder} were saved for another model "
                              f"({str(err).splitlines()[0]}): resume with the same model, or start over") from None
        state = {k[9:]: v.to(self.device) for k, v in tensors.items() if k.startswith("strategy.")}
        self.strategy.load_state_dict({**state, **values["strategy_values"]})
        set_rng_state(self.generator, tensors, values["rng"])
        self.samples_seen, self.step = values["samples_seen"], values["step"]

    def _restore(self) -> Progress | None:
        """Load the newest intact state (None if none was saved). A state saved inside a task is loaded
        in two parts: its base (the state at the task's start) here, so that `fit` sets the task up
        again exactly as it did, and the rest (`_pending`) by `train`, once the optimiser exists."""
        assert self.states is not None
        chain = self.states.latest()
        if not chain:
            return None
        n, tensors, values = chain[0]
        saved, ours = values["setup"], self._setup()
        for key, value in ours.items():
            if saved.get(key) != value:
                raise ConfigError(f"the states in {self.states.folder} were saved by a fit with another {key} "
                                  f"({saved.get(key)} there, {value} here): resume with the same setup, or start over")
        self._load(tensors, values)
        self._base, self._pending = n, chain[1] if len(chain) > 1 else None
        return Progress(**values["progress"])

    def _resume_task(self) -> tuple[list[float], int, dict[str, Any]]:
        """Load the pending state inside a task: returns the task's epoch losses so far, the epoch it
        was in and the position in that epoch."""
        assert self._pending is not None and self.optimizer is not None
        _, tensors, values = self._pending
        self._pending = None
        self._load(tensors, values)
        optimizer: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in values["optimizer"].items()}
        for key, v in tensors.items():
            if key.startswith("optimizer."):
                i, name = key[len("optimizer."):].split(".", 1)
                optimizer[int(i)][name] = v
        state = self.optimizer.state_dict()
        state["state"] = optimizer
        self.optimizer.load_state_dict(state)
        pos = values["position"]
        cursor = {"perm": tensors["epoch.perm"], "total": tensors["epoch.total"], "batch": pos["batch"],
                  "n_batches": pos["n_batches"]}
        return list(pos["epoch_losses"]), pos["epoch"], cursor

    def _check_parameters(self, task: Task) -> None:
        """A diverged model is never evaluated or reported."""
        for name, p in self.model.named_parameters():
            if not torch.isfinite(p).all():
                raise TrainingError(
                    f"parameter {name} became non-finite while learning task {task.id}: lower --lr or the "
                    "strategy's penalty weight"
                )

    def _on_device(self, stream: Stream) -> Stream:
        """A copy of the stream whose in-memory tensors live on the training device."""
        if self.device.type == "cpu":
            return stream

        def move(split: Split | None) -> Split | None:
            return split.to(self.device) if split is not None else None

        tasks = [dataclasses.replace(t, train=move(t.train), test=move(t.test), valid=move(t.valid)) for t in stream]
        return dataclasses.replace(stream, tasks=tasks)


def _concat(tasks: list[Task]) -> tuple[Split, Tensor]:
    """The training splits of `tasks` as one split, with each sample's task id."""
    if len(tasks) == 1:
        train = tasks[0].train
        return train, torch.full_like(train.y, tasks[0].id)
    train = Split.cat([t.train for t in tasks])
    return train, torch.cat([torch.full_like(t.train.y, t.id) for t in tasks])
