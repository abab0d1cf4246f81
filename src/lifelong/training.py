"""The one continual training loop: `Trainer.fit(stream)`, or `fit_task(task, stream)` task by task.

For each task: `strategy.before_task`, epochs of mini-batches (index slices of a seeded random
permutation of in-memory tensors) through the strategy's hooks, `strategy.after_task`, then
evaluation on every task of the stream into row i of the accuracy matrix. The reference row b (the
untrained model's accuracy, needed for FWT) is measured before the first task. Saving and resuming
a fit's state is `checkpointing.Checkpointing`'s, a `Callback` as the user's own may be.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from . import distributed
from .checkpoint import States
from .configs import whole_numbers
from .checkpointing import Callback, Checkpointing, Position, Progress
from .data import OnlineStream, Split, Stream, Task, window
from .data.stream import training_split
from .errors import ConfigError, TrainingError
from .evaluation import Result, accuracy_row, peak_rss_mb
from .models.heads import grow_heads, output_layer
from .strategies import Naive, Strategy, check_scenario, overrides

OPTIMIZERS = ("sgd", "adam", "adam-fused")  # adam-fused: PyTorch's fused Adam kernel, equal up to rounding
DEFAULT_OPTIMIZER = ("adam", 1e-3)  # the optimiser and learning rate of a strategy that names none
OptimizerFactory = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]  # parameter groups -> optimiser
Criterion = Callable[[Tensor, Tensor], Tensor]  # (outputs, labels) -> the mean loss
HOOKS = ("batch", "task_loss", "loss", "add_grad", "after_backward", "after_step")  # called only if overridden


def resolve_optimizer(strategy: Strategy, optimizer: str | OptimizerFactory | None, lr: float | None,
                      momentum: float = 0.0, weight_decay: float = 0.0) -> tuple[str, float | None, OptimizerFactory]:
    """The name, learning rate and factory of a fit's optimiser. A factory (named by its qualified name)
    sets its own rate, momentum and weight decay. A name, or none: the one given, else the strategy's own
    (a part's `default_optimizer`, e.g. HAT's SGD lr 0.05), else DEFAULT_OPTIMIZER; a strategy's rate
    goes with its own optimiser only. "adam-fused" is Adam with PyTorch's fused kernel (one kernel for
    the whole update: faster on small models, equal up to rounding). `momentum` and `weight_decay` must be
    finite and >= 0."""
    for what, number in (("momentum", momentum), ("weight_decay", weight_decay)):
        if not (number >= 0 and math.isfinite(number)):
            raise ConfigError(f"`{what}` must be a finite number >= 0, got {number!r}", what)
    if callable(optimizer):
        for what, given in (("lr", lr is not None), ("momentum", momentum != 0), ("weight_decay", weight_decay != 0)):
            if given:
                raise ConfigError(f"`{what}` is for the named optimizers: set it in your `optimizer` factory", what)
        return getattr(optimizer, "__qualname__", type(optimizer).__name__), None, optimizer
    own = next((c.default_optimizer for c in strategy.children() if c.default_optimizer), DEFAULT_OPTIMIZER)
    name = optimizer or own[0]
    lr = lr if lr is not None else (own[1] if name == own[0] else DEFAULT_OPTIMIZER[1])
    if name not in OPTIMIZERS:
        raise ConfigError(f"`optimizer` must be one of {', '.join(OPTIMIZERS)} or a function from parameter groups "
                          f"to a torch.optim.Optimizer, got {name!r}", "optimizer")
    if not (lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"`lr` must be a positive number, got {lr!r}", "lr")
    if name == "sgd":
        return name, lr, functools.partial(torch.optim.SGD, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return name, lr, functools.partial(torch.optim.Adam, lr=lr, weight_decay=weight_decay,
                                       fused=True if name == "adam-fused" else None)


def resolve_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device that can train here (cpu, cuda, cuda:N, mps), else a ConfigError."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):  # "tpu", "", a number
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"`device` {device!r} is not one that trains: use cpu, cuda (cuda:N for the N-th GPU) or "
                          "mps", "device")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("`device` is cuda but PyTorch sees no CUDA GPU here: use cpu", "device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"`device` is {device} but PyTorch sees {torch.cuda.device_count()} CUDA GPU(s) here "
                          "(cuda:0 is the first)", "device")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("`device` is mps but PyTorch sees no Apple GPU here: use cpu", "device")
    return dev


class Trainer:
    """Trains `model` on a stream of tasks with a strategy (default: naive fine-tuning).

    `fit(stream)` learns every task in order. To drive the stream yourself, call `fit_task(task, stream)`
    for each task in order (the first call with a stream starts a fit of it, as `start`; later calls may
    leave `stream` out) and `evaluate(stream)` as you like: `fit_task`'s rows and `result()` equal `fit`'s.
    `criterion` is the loss of a batch's outputs and labels (default `nn.CrossEntropyLoss()`), to which
    strategies add their terms. `optimizer` is one of OPTIMIZERS (with `lr`, `momentum`, `weight_decay`;
    left out: the strategy's own, else Adam lr 1e-3) or a factory from parameter groups (dicts with
    "params" and maybe "lr" or "weight_decay") to a `torch.optim.Optimizer` (`resolve_optimizer`). It is
    built afresh at the start of every task (after `before_task`, which may add parameters), so no
    optimiser state such as Adam's moments leaks from one task to the next.
    With the same seed, the same model initialisation and the CPU, two fits give identical results.
    With `checkpoint=PATH`, the model and strategy state are saved to PATH.safetensors/.json after
    every task, and the fit's whole state to `PATH.resume/` at its start, after every task and, with
    `checkpoint_every=N`, every N optimiser steps, for `fit(stream, resume=True)` (`Checkpointing`).
    Strategies that train again inside `after_task` (GDumb, PackNet) are not checkpointed during that
    retraining. `callbacks` (`Callback`s) are called after every optimiser step and at every task's end.
    `reference=False` skips the test pass before training (the reference row b, then NaN, and so FWT)
    where only the accuracies after training matter, such as few-shot transfer fits.
    """

    def __init__(
        self,
        model: nn.Module,
        strategy: Strategy | None = None,
        *,
        criterion: Criterion | None = None,
        epochs: int = 1,
        batch_size: int = 128,
        lr: float | None = None,
        optimizer: str | OptimizerFactory | None = None,
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
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.strategy = strategy if strategy is not None else Naive()
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        whole_numbers({"epochs": epochs, "batch_size": batch_size, "eval_batch_size": eval_batch_size})
        self.optimizer_name, self.lr, self.optimizer_factory = resolve_optimizer(
            self.strategy, optimizer, lr, momentum, weight_decay)
        if checkpoint_every and checkpoint is None:
            raise ConfigError("`checkpoint_every` needs a `checkpoint` path to save the states to", "checkpoint_every")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.epochs, self.batch_size, self.eval_batch_size = epochs, batch_size, eval_batch_size
        self.momentum, self.weight_decay = momentum, weight_decay
        self.seed, self.progress_bar, self.label, self.reference = seed, progress, label, reference
        self.checkpointing = Checkpointing(checkpoint, checkpoint_every) if checkpoint is not None else None
        pause = self.checkpointing.pause if self.checkpointing else None
        self.callbacks = [c for c in (self.checkpointing, *callbacks, pause) if c is not None]
        self.optimizer: torch.optim.Optimizer | None = None
        self.head_decay: list[tuple[Tensor, float]] = []  # set by `make_optimizer`
        self.bar = tqdm(disable=True)  # a task's progress bar while `fit_task` runs
        self.given: Stream | None = None  # the stream of the fit under way, as given (`start`)
        # while training: the split being learnt, the indices in it of the current batch's rows and, in
        # a task's own training, the position in its epochs (for `Checkpointing`)
        self.train_data: Split | None = None
        self.train_task_ids = torch.zeros(0, dtype=torch.long)
        self.batch_index = self.global_index = torch.zeros(0, dtype=torch.long)
        self.local_batch: tuple[Tensor, Tensor, Tensor] | None = None
        self.position: Position | None = None

    @property
    def states(self) -> States | None:
        """The fit's saved states (`checkpoint.States`), or None without a checkpoint."""
        return self.checkpointing.states if self.checkpointing else None

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
        """A fresh optimiser from this trainer's factory over `params` (tensors or parameter groups);
        `weight_decay` is that of groups that set none (default: the optimiser's own)."""
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        if weight_decay is not None:
            groups = [{"weight_decay": weight_decay, **g} for g in groups]
        return self.optimizer_factory(groups)

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

    def start(self, stream: Stream, resume: bool = False, scheduled: bool = False) -> None:
        """Begin a fit of `stream`: check that the strategy supports its scenario (`scheduled`: a task-free
        stream whose strategy consolidates on a schedule, `fit_online`), seed, attach the
        strategy, then measure the reference row, or, with `resume=True` (and a `checkpoint`), load
        the newest intact state an interrupted fit of the same setup saved (a damaged newest state is
        passed over with a warning). Without `resume`, the states of an earlier fit are deleted."""
        if resume and self.checkpointing is None:
            raise ConfigError("resume=True needs Trainer(checkpoint=PATH): the states to resume from are kept there")
        check_scenario(self.strategy, stream.scenario, scheduled)
        distributed.broadcast([*self.model.parameters(), *self.model.buffers()])  # one start on every rank
        torch.manual_seed(self.seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.given, self.stream = stream, self._on_device(stream)
        self.strategy.attach(self, self.stream)
        grow_heads(self.model, stream[0].units)  # a growing head has the first task's units for the reference row
        self.make_optimizer()  # the first optimiser imports torch._dynamo (~1 s): keep that out of the timings
        self.samples_seen, self.step = 0, 0
        restored = self.checkpointing.restore(self) if resume and self.checkpointing else None
        if restored is not None:
            self.progress = restored
            return
        t0 = time.perf_counter()
        row = self.evaluate(self.stream) if self.reference else [math.nan] * len(stream)
        self.progress = Progress(row, time.perf_counter() - t0)
        if self.checkpointing is not None:
            self.checkpointing.start(self)

    def fit(self, stream: Stream, resume: bool = False) -> Result:
        """Learn the tasks of `stream` in order (`start`, then `fit_task` for each task not yet learnt);
        returns the accuracy matrix and measurements. A task-free stream (`data.online`) is learnt by
        `fit_online` with its defaults."""
        if isinstance(stream, OnlineStream):
            return self.fit_online(stream)
        self.start(stream, resume)
        for task in self.stream.tasks[len(self.progress.matrix):]:
            self.fit_task(task)
        return self.result()

    def fit_task(self, task: Task, stream: Stream | None = None) -> list[float]:
        """Learn `task`, the next task of `stream` (needed on a stream's first call, which `start`s a fit
        of it), then evaluate on every task of the stream: returns that row of the accuracy matrix."""
        if stream is not None and stream is not self.given:
            self.start(stream)
        if self.given is None:
            raise ConfigError("`fit_task` needs the task's `stream` on its first call: fit_task(task, stream)",
                              "stream")
        progress, tasks = self.progress, self.stream.tasks
        following = tasks[len(progress.matrix)] if len(progress.matrix) < len(tasks) else None
        if following is None or task.id != following.id:
            raise ConfigError(f"`task` {task.id} is not the stream's next task: learn them in order ("
                              f"{f'task {following.id} is next' if following else 'all are learnt'})", "task")
        task = following  # the stream's own, on the training device
        start = self._task_start = time.perf_counter() - (self.checkpointing.elapsed() if self.checkpointing else 0.0)
        self.model.train()
        self.bar = tqdm(total=0, disable=not self.progress_bar, file=sys.stderr, unit="batch",
                        dynamic_ncols=True, leave=False)
        try:
            self.strategy.before_task(task)
            data = self.strategy.training_tasks(task, self.stream)
            grow_heads(self.model, [u for t in (task, *data) for u in t.units])
            what = f"task {task.id + 1}/{len(self.stream)}"
            progress.losses.append(self.train(*training_split(data), self.epochs, what, main=True) if data else [])
            self.strategy.after_task(task)
        finally:
            self.bar.close()
        self._check_parameters(task)
        progress.task_seconds.append(time.perf_counter() - start)
        t1 = time.perf_counter()
        progress.matrix.append(self.evaluate(self.stream))
        progress.eval_seconds += time.perf_counter() - t1
        for callback in self.callbacks:
            callback.on_task_end(self, task)
        return progress.matrix[-1]

    def fit_online(self, stream: OnlineStream, eval_every: int = 1000, eval_samples: int = 1000,
                   consolidate_every: int = 0) -> Result:
        """Learn a task-free online stream (`data.online`): its training samples once, in its order, in
        batches of `batch_size` (10 is usual), one optimiser for the whole stream, no task boundary or task
        id given to the strategy. A strategy that learns without gradient steps (NCM, SLDA: it overrides
        `observe`) takes each batch there instead.

        Measured along the way, for the evaluation only: every `eval_every` samples and at each hidden
        boundary (after the batch that reaches the mark: a batch may straddle a boundary), the accuracy on
        a fixed held-out set (up to `eval_samples` test samples of each task, drawn with the seed) per task,
        and the anytime accuracy, on those of its samples whose task and class have been met so far; at each
        hidden boundary, the whole test row of the accuracy matrix. The result's `online` holds that curve
        (`metrics.online_summary`; AAA averages the points of the regular grid). The parts of the strategy
        that consolidate at task ends (EWC, SI, ...: `scheduled`) do so every `consolidate_every` samples (0:
        never; such a strategy is then refused), on the samples met since the last consolidation (other
        parts are not told). An online fit is not checkpointed mid-stream: a resumed run learns it again
        from the start."""
        whole_numbers({"eval_every": eval_every, "eval_samples": eval_samples})
        whole_numbers({"consolidate_every": consolidate_every}, least=0)
        if 0 < consolidate_every < self.batch_size:
            raise ConfigError(f"`consolidate_every` ({consolidate_every}) must be at least `batch_size` "
                              f"({self.batch_size}): a window holds whole batches", "consolidate_every")
        self.start(stream, scheduled=consolidate_every > 0)
        grow_heads(self.model, [u for t in stream for u in t.units])  # no boundary tells a growing head to grow
        stream = self.stream  # type: ignore[assignment]  # on the training device
        assert isinstance(stream, OnlineStream)
        train, origin = stream.training_data()
        order, n = stream.order.to(train.y.device), len(stream.order)
        probe = _Probe(self, stream, eval_samples)
        regular, ends = list(range(eval_every, n + 1, eval_every)), list(stream.ends)
        progress, t_start = self.progress, time.perf_counter()
        self._task_start = t_start
        scheduled = [s for s in self.strategy.children() if s.scheduled] if consolidate_every else []
        windows = list(range(consolidate_every, n, consolidate_every)) if scheduled else []
        for part in scheduled:
            part.before_task(window(train, order, 0, 0, 0))
        since = [0, 0]  # the current consolidation window's start and number

        def tick(trainer: Trainer) -> None:
            met = min(trainer.step * trainer.batch_size, n)
            probe.meet(order[probe.met:met], train.y, origin)
            if windows and met >= windows[0]:  # windows hold whole batches: one is over
                for part in scheduled:
                    part.after_task(window(train, order, since[0], met, since[1]))
                since[:] = [met, since[1] + 1]
                for part in scheduled:
                    part.before_task(window(train, order, met, met, since[1]))
                windows.pop(0)
            on_grid, at_end = bool(regular) and met >= regular[0], bool(ends) and met >= ends[0]
            if not (on_grid or at_end):
                return
            t0 = time.perf_counter()
            probe.measure(met, on_grid)  # once, however many marks this batch reached
            while regular and met >= regular[0]:
                regular.pop(0)
            if at_end:
                row = self.evaluate(stream)
                progress.task_seconds.append(t0 - t_start - progress.eval_seconds - sum(progress.task_seconds))
                while ends and met >= ends[0]:  # (a batch can end several tiny segments)
                    progress.matrix.append(row)
                    ends.pop(0)
            progress.eval_seconds += time.perf_counter() - t0

        self.model.train()
        self.bar = tqdm(total=math.ceil(n / self.batch_size), disable=not self.progress_bar, file=sys.stderr,
                        unit="batch", dynamic_ncols=True, leave=False)
        try:
            if overrides(self.strategy, "observe"):
                for idx in order.split(self.batch_size):
                    self.step += 1
                    x, y = train.batch(idx)
                    self.strategy.observe(x.to(self.device), y.to(self.device))
                    tick(self)
                    self.bar.update(1)
                progress.losses.append([])
            else:
                self.optimizer = self.make_optimizer()
                hooks = {h: overrides(self.strategy, h) for h in HOOKS}
                cursor = {"perm": order, "total": torch.zeros((), device=self.device), "batch": 0, "n_batches": 0}
                self.train_data, self.train_task_ids = train, torch.zeros_like(train.y)
                try:
                    loss = self._epoch(train, self.train_task_ids, hooks, "the stream", 0, [], [tick], cursor)
                finally:
                    self.train_data = self.position = self.local_batch = None
                progress.losses.append([loss])
        finally:
            self.bar.close()
        self.samples_seen = n
        self._check_parameters(stream.tasks[-1])
        result = self.result()
        result.online = {**probe.curve(), "ends": stream.ends, "eval_every": eval_every,
                         "consolidate_every": consolidate_every if scheduled else 0}
        return result

    def learn(self, x: Tensor, y: Tensor) -> Tensor:
        """One step on a batch that arrives from outside, as a served learner meets them (`lifelong serve`):
        after `start` of a task-free stream (`data.served`), each call is one optimiser step through the
        strategy's hooks, as `fit_online` takes for each of its batches (or the strategy's `observe`, for
        one that learns without gradients). One optimiser for all the calls. Returns the batch's loss."""
        if self.given is None:
            raise ConfigError("`learn` needs a started learner: call `start(stream)` with a task-free stream first",
                              "stream")
        if self.optimizer is None:
            self.optimizer = self.make_optimizer()
        x, y = x.to(self.device), y.to(self.device)
        self.batch_index = self.global_index = torch.arange(len(y), device=y.device)
        self.model.train()
        try:
            if overrides(self.strategy, "observe"):
                self.strategy.observe(x, y)
                loss = torch.zeros((), device=self.device)
            else:
                hooks = {h: overrides(self.strategy, h) for h in HOOKS}
                loss = self._step(x, y, torch.zeros_like(y), hooks, [])
        finally:
            self.local_batch = None
        self.step += 1
        self.samples_seen += len(y)
        return loss.detach()

    def result(self) -> Result:
        """What the fit under way has measured so far (all of it once every task is learnt)."""
        p, s = self.progress, self.stream
        return Result(matrix=p.matrix, reference=p.reference, losses=p.losses, task_seconds=p.task_seconds,
                      train_seconds=sum(p.task_seconds), eval_seconds=p.eval_seconds, samples_seen=self.samples_seen,
                      peak_rss_mb=peak_rss_mb(), strategy_memory_bytes=self.strategy.memory_bytes(),
                      stream={"name": s.name, "scenario": s.scenario, "n_tasks": len(s), "n_outputs": s.n_outputs,
                              "info": s.info})

    def train(self, data: Split, task_ids: Tensor, epochs: int, what: str = "", main: bool = False) -> list[float]:
        """Train on `data` (each sample tagged with its task id) for `epochs` with a fresh optimiser,
        through the strategy's hooks; returns the mean loss of each epoch. `fit_task` calls this once per
        task (`main`: counting steps for the callbacks, and continuing a resumed task); strategies that
        retrain (PackNet after pruning, GDumb on its memory) call it too."""
        self.optimizer = self.make_optimizer()
        self.train_data, self.train_task_ids = data, task_ids
        hooks = {h: overrides(self.strategy, h) for h in HOOKS}
        self.bar.total = (self.bar.total or 0) + math.ceil(len(data) / self.batch_size) * epochs
        resumed = self.checkpointing.resume_task(self) if main and self.checkpointing else None
        out, first, cursor = resumed or ([], 0, None)
        on_step = [c.on_step for c in self.callbacks if c.wants_steps] if main else []
        try:
            for epoch in range(first, epochs):
                self.bar.set_description(f"{self.label} {what} epoch {epoch + 1}/{epochs}".strip())
                out.append(self._epoch(data, task_ids, hooks, what, epoch, out if main else None, on_step,
                                       cursor if epoch == first else None))
                self.samples_seen += len(data)
        finally:
            self.train_data = self.position = self.local_batch = None
        return out

    def global_batch(self) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs, labels and task ids of the whole batch of the current step, as the data gave it (before
        the strategy's `batch` hook): under data-parallel training every rank trains on its share of it
        (`batch_index`), and a strategy whose state learns from the data (a replay memory) updates it from
        this, so that every rank makes the same update. In one process: the batch itself."""
        assert self.local_batch is not None, "global_batch() is for training steps"
        if not distributed.active() or self.train_data is None:  # one process, or a batch given to `learn`
            return self.local_batch
        x, y = self.train_data.batch(self.global_index)
        t = self.train_task_ids[self.global_index]
        return x.to(self.device), y.to(self.device), t.to(self.device)

    def _epoch(self, train: Split, t_all: Tensor, hooks: dict[str, bool], what: str, epoch: int,
               losses: list[float] | None, on_step: Sequence[Callable[[Trainer], None]],
               cursor: dict[str, Any] | None) -> float:
        """One pass over `train` in random order (from `cursor` on, in a resumed epoch); returns the
        mean training loss. `losses`: the task's epoch losses so far, in a task's own training (whose
        steps are counted, each followed by the `on_step` callbacks), else None."""
        opt, bs, bar, main = self.optimizer, self.batch_size, self.bar, losses is not None
        assert opt is not None
        n = len(train)
        if cursor is None:
            perm = torch.randperm(n, generator=self.generator).to(train.y.device)
            total, first, n_batches = torch.zeros((), device=self.device), 0, 0
        else:
            perm, total = cursor["perm"].to(train.y.device), cursor["total"].to(self.device)
            first, n_batches = cursor["batch"], cursor["n_batches"]
        if losses is not None:
            self.position = Position(epoch, perm, total, self.step - n_batches, losses, self._task_start)
        report = not bar.disable
        sharded = distributed.active()  # each rank trains on its share of every batch (`distributed`)
        params = [p for g in opt.param_groups for p in g["params"]] if sharded else []
        chunks = [perm[i : i + bs] for i in range(first, n, bs)]
        local = [distributed.shard(c) for c in chunks] if sharded else chunks
        t0 = time.perf_counter()
        for self.global_index, idx, (x, y) in zip(chunks, local, train.batches(local)):
            self.batch_index = idx
            t = t_all[idx]
            if x.device != self.device:
                x, y, t = x.to(self.device), y.to(self.device), t.to(self.device)
            loss = self._step(x, y, t, hooks, params)
            total += loss.detach()
            n_batches += 1
            if main:
                self.step += 1
                for callback in on_step:
                    callback(self)
            if report:
                bar.update(1)
                if n_batches % 50 == 0:
                    rate = n_batches * bs / (time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{loss.item():.3f}", samples_s=f"{rate:.0f}")
        if sharded:  # the mean of the ranks' mean losses
            distributed.all_reduce_sum([total])
            total /= distributed.world_size()
        mean = float(total) / max(n_batches, 1)
        if not math.isfinite(mean):
            raise TrainingError(f"the training loss became non-finite ({what}, epoch {epoch + 1}): the learning "
                                "rate or the strategy's penalty weight is too large for this model; lower `lr` or "
                                "the penalty")
        return mean

    def _step(self, x: Tensor, y: Tensor, t: Tensor, hooks: dict[str, bool], params: list[nn.Parameter]) -> Tensor:
        """One optimiser step on the batch (x, y, t) through the strategy's hooks (`hooks`: which are
        overridden); `params`: the parameters whose gradients are averaged over the ranks (none in one
        process). Returns the batch's loss."""
        model, opt, strategy, criterion = self.model, self.optimizer, self.strategy, self.criterion
        assert opt is not None
        self.local_batch = (x, y, t)
        if hooks["batch"]:
            x, y, t = strategy.batch(x, y, t)
        if len(y):  # under sharding a rank's share of a last small batch may be empty
            self.logits = model(x)  # unmasked, for strategies that need other heads' outputs (LwF)
            out = self.stream.mask(self.logits, t)
            loss = strategy.task_loss(out, x, y, t, criterion) if hooks["task_loss"] else criterion(out, y)
            if hooks["loss"]:
                extra = strategy.loss(out, x, y, t)
                if extra is not None:
                    loss = loss + extra
            opt.zero_grad(set_to_none=True)
            loss.backward()
        else:
            opt.zero_grad(set_to_none=True)
            loss = torch.zeros((), device=self.device)
        if params:
            distributed.average_gradients(params, len(y))
        if hooks["add_grad"]:
            strategy.add_grad()
        if hooks["after_backward"]:
            strategy.after_backward()
        if self.head_decay:
            self._decay_reached_rows()
        opt.step()
        if hooks["after_step"]:
            strategy.after_step()
        return loss

    def _check_parameters(self, task: Task) -> None:
        """A diverged model is never evaluated or reported."""
        for name, p in self.model.named_parameters():
            if not torch.isfinite(p).all():
                raise TrainingError(f"parameter {name} became non-finite while learning task {task.id}: lower `lr` "
                                    "or the strategy's penalty weight")

    def _on_device(self, stream: Stream) -> Stream:
        """A copy of the stream whose in-memory tensors live on the training device."""
        if self.device.type == "cpu":
            return stream

        dev = self.device
        tasks = [dataclasses.replace(t, train=t.train.to(dev), test=t.test.to(dev),
                                     valid=t.valid.to(dev) if t.valid is not None else None) for t in stream]
        return dataclasses.replace(stream, tasks=tasks)


class _Probe:
    """The fixed held-out set of an online fit (`eval_samples` test samples of each task at most, drawn
    with the trainer's seed), which (task, class) pairs the stream has met so far, and the curve measured
    on them: per-task accuracy and anytime accuracy (over the held-out samples of met pairs)."""

    def __init__(self, trainer: Trainer, stream: Stream, eval_samples: int) -> None:
        g = torch.Generator().manual_seed(trainer.seed)
        self.trainer, self.stream, self.met = trainer, stream, 0
        self.held = [t.test.subset(torch.randperm(len(t.test), generator=g)[:eval_samples].sort().values
                                   .to(t.test.y.device)) for t in stream]
        self.seen = torch.zeros(len(stream), stream.n_outputs, dtype=torch.bool)
        self.samples: list[int] = []
        self.regular: list[bool] = []
        self.anytime: list[float] = []
        self.tasks: list[list[float]] = []

    def meet(self, idx: Tensor, labels: Tensor, origin: Tensor) -> None:
        """Mark the (task, class) pairs of the training samples `idx` (met since the last call) as seen."""
        if len(idx):
            self.seen[origin[idx].cpu(), labels[idx].cpu()] = True
            self.met += len(idx)

    @torch.no_grad()
    def measure(self, met: int, regular: bool) -> None:
        """Measure the curve's point after `met` samples; `regular`: a point of the `eval_every` grid."""
        trainer = self.trainer
        was_training = trainer.model.training
        trainer.model.eval()
        right, total, per_task = 0, 0, []
        try:
            for task, held in zip(self.stream, self.held):
                hits, ys = [], []
                for x, y in held.batches(torch.arange(len(held), device=held.y.device).split(trainer.eval_batch_size)):
                    x, y = x.to(trainer.device), y.to(trainer.device)
                    hits.append(trainer.predict(x, torch.zeros_like(y)).argmax(1) == y)  # no task id
                    ys.append(y)
                hit, y = torch.cat(hits).cpu(), torch.cat(ys).cpu()
                per_task.append(float(hit.float().mean()))
                known = self.seen[task.id][y]
                right, total = right + int(hit[known].sum()), total + int(known.sum())
        finally:
            trainer.model.train(was_training)
        self.samples.append(met)
        self.regular.append(regular)
        self.tasks.append(per_task)
        self.anytime.append(right / total if total else 0.0)

    def curve(self) -> dict[str, Any]:
        return {"samples": self.samples, "regular": self.regular, "anytime": self.anytime, "tasks": self.tasks}
