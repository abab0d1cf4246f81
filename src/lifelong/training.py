"""The one continual training loop: `Trainer.fit(stream)`.

For each task: `strategy.before_task`, epochs of mini-batches (index slices of a seeded random
permutation of in-memory tensors) through the strategy's hooks, `strategy.after_task`, then
evaluation on every task of the stream into row i of the accuracy matrix. The reference row b (the
untrained model's accuracy, needed for FWT) is measured before the first task.
"""

from __future__ import annotations

import dataclasses
import math
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
from .checkpoint import save as save_checkpoint
from .data import Split, Stream, Task
from .errors import ConfigError, TrainingError
from .evaluation import accuracy_row
from .models.heads import grow_heads
from .strategies import Naive, Strategy, overrides

OPTIMIZERS = ("sgd", "adam")


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
        from .report import plot_curves, plot_matrix

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"-{label}" if label else ""
        return [plot_matrix(self.matrix, out / f"matrix{stem}.png", label),
                plot_curves(self.matrix, out / f"curves{stem}.png", label)]


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
    With the same seed, the same model initialisation and the CPU, two fits give identical results.
    With `checkpoint=PATH`, the model and strategy state are saved to PATH.safetensors/.json after
    every task (the latest task only; see `lifelong.checkpoint`).
    """

    def __init__(
        self,
        model: nn.Module,
        strategy: Strategy | None = None,
        *,
        epochs: int = 1,
        batch_size: int = 128,
        lr: float = 1e-3,
        optimizer: str = "adam",
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        seed: int = 0,
        device: str | torch.device = "cpu",
        eval_batch_size: int = 1024,
        progress: bool = False,
        label: str = "",
        checkpoint: str | Path | None = None,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        for what, value in (("epochs", epochs), ("batch size", batch_size), ("eval batch size", eval_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{what} must be a whole number >= 1, got {value!r}")
        if not (lr > 0 and math.isfinite(lr)):
            raise ConfigError(f"the learning rate must be a positive number, got {lr!r}")
        if momentum < 0 or weight_decay < 0:
            raise ConfigError("momentum and weight decay must be >= 0")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.strategy = strategy if strategy is not None else Naive()
        self.epochs, self.batch_size, self.eval_batch_size = epochs, batch_size, eval_batch_size
        self.lr, self.optimizer_name, self.momentum, self.weight_decay = lr, optimizer, momentum, weight_decay
        self.seed, self.progress, self.label = seed, progress, label
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.optimizer: torch.optim.Optimizer | None = None

    def make_optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.optimizer_name == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

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

    def fit(self, stream: Stream) -> Result:
        """Learn the tasks of `stream` in order; returns the accuracy matrix and measurements."""
        torch.manual_seed(self.seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.stream = stream = self._on_device(stream)
        self.strategy.attach(self, stream)
        grow_heads(self.model, stream[0].units)  # a growing head has the first task's units for the reference row
        self.make_optimizer()  # the first optimiser imports torch._dynamo (~1 s): keep that out of the timings
        self.samples_seen = 0

        t0 = time.perf_counter()
        reference = self.evaluate(stream)
        eval_seconds = time.perf_counter() - t0
        matrix, losses, task_seconds = [], [], []
        self.bar = tqdm(total=0, disable=not self.progress, file=sys.stderr, unit="batch", dynamic_ncols=True,
                        leave=False)
        try:
            for task in stream:
                start = time.perf_counter()
                self.model.train()
                self.strategy.before_task(task)
                data = self.strategy.training_tasks(task, stream)
                grow_heads(self.model, [u for t in (task, *data) for u in t.units])
                losses.append(self.train(*_concat(data), self.epochs, f"task {task.id + 1}/{len(stream)}") if data else [])
                self.strategy.after_task(task)
                self._check_parameters(task)
                task_seconds.append(time.perf_counter() - start)
                t1 = time.perf_counter()
                matrix.append(self.evaluate(stream))
                eval_seconds += time.perf_counter() - t1
                if self.checkpoint is not None:
                    save_checkpoint(self.checkpoint, self.model, self.strategy,
                                    {"task": task.id, "seed": self.seed, "matrix": matrix, "reference": reference})
        finally:
            self.bar.close()
        return Result(
            matrix=matrix,
            reference=reference,
            losses=losses,
            task_seconds=task_seconds,
            train_seconds=sum(task_seconds),
            eval_seconds=eval_seconds,
            samples_seen=self.samples_seen,
            peak_rss_mb=peak_rss_mb(),
            strategy_memory_bytes=self.strategy.memory_bytes(),
            stream={"name": stream.name, "scenario": stream.scenario, "n_tasks": len(stream),
                    "n_outputs": stream.n_outputs, "info": stream.info},
        )

    def train(self, data: Split, task_ids: Tensor, epochs: int, what: str = "") -> list[float]:
        """Train on `data` (each sample tagged with its task id) for `epochs` with a fresh optimiser,
        through the strategy's hooks; returns the mean loss of each epoch. `fit` calls this once per
        task; strategies that retrain (PackNet after pruning, GDumb on its memory) call it too."""
        self.optimizer = self.make_optimizer()
        hooks = {h: overrides(self.strategy, h) for h in ("batch", "loss", "add_grad", "after_backward", "after_step")}
        self.bar.total += math.ceil(len(data) / self.batch_size) * epochs
        out = []
        for epoch in range(epochs):
            self.bar.set_description(f"{self.label} {what} epoch {epoch + 1}/{epochs}".strip())
            out.append(self._epoch(data, task_ids, hooks, what, epoch))
            self.samples_seen += len(data)
        return out

    def _epoch(self, train: Split, t_all: Tensor, hooks: dict[str, bool], what: str, epoch: int) -> float:
        """One pass over `train` in random order; returns the mean training loss."""
        model, opt, strategy, stream = self.model, self.optimizer, self.strategy, self.stream
        bs, bar = self.batch_size, self.bar
        assert opt is not None
        n = len(train)
        perm = torch.randperm(n, generator=self.generator).to(train.y.device)
        total = torch.zeros((), device=self.device)
        report = not bar.disable
        t0, n_batches = time.perf_counter(), 0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
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
            opt.step()
            if hooks["after_step"]:
                strategy.after_step()
            total += loss.detach()
            n_batches += 1
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
