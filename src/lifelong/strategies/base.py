"""The Strategy hook interface and Compose.

A continual-learning method is a small class that overrides only the hooks it needs; `Trainer`
calls only hooks that are overridden, so an unused hook costs nothing in the inner loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from .. import distributed
from ..checkpoint import strip_prefix
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..data import Split, Stream, Task
    from ..training import Trainer

TASK_BASED = frozenset({"task", "domain", "class"})  # "task-free" too: no task boundary is given to the learner


class Strategy:
    """Base class: every hook is a no-op. Subclasses set `name` (the CLI name) and override hooks.

    Hyper-parameters are the keyword arguments of `__init__`; the CLI offers each as
    `--<name>-<argument>` (renamed through `option_names`, e.g. {"lam": "lambda"}). `scenarios` are
    the streams the method supports ("task", "domain", "class" incremental, "task-free"): the Trainer
    refuses others (`check_scenario`).
    """

    name: ClassVar[str] = "strategy"
    summary: ClassVar[str] = ""
    option_names: ClassVar[dict[str, str]] = {}
    scenarios: ClassVar[frozenset[str]] = TASK_BASED
    # True: the strategy updates the weights from its own loss and discards the Trainer's gradient, so
    # Compose refuses partners whose loss or gradient terms would be dropped without a word
    own_update: ClassVar[bool] = False
    default_optimizer: ClassVar[tuple[str, float] | None] = None  # (name, lr) when the strategy needs its own
    # True: in a task-free stream the strategy can consolidate on a schedule instead of at task ends
    # (`Trainer.fit_online(consolidate_every=N)` calls `after_task` and `before_task` with windows of samples)
    scheduled: ClassVar[bool] = False

    trainer: Trainer
    stream: Stream

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        """Called once by `Trainer.start` (the start of a fit) before anything else."""
        self.trainer, self.stream = trainer, stream

    @property
    def model(self) -> nn.Module:
        return self.trainer.model

    def training_tasks(self, task: Task, stream: Stream) -> list[Task]:
        """The tasks whose training data is used while learning `task` (default: just `task`)."""
        return [task]

    def before_task(self, task: Task) -> None:
        """Before training on `task` (grow a head, add a column, set masks)."""

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Change a training batch (replay mixes memory samples in). The incoming rows stay first, in
        order (`trainer.batch_index` gives their places in `trainer.train_data`); others are appended."""
        return x, y, t

    def task_loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor,
                  criterion: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """The loss of the batch's outputs (masked as in `loss`), to which `loss` terms are added: the
        Trainer's `criterion(out, y)`. A method whose own loss replaces it overrides this (ER-ACE's
        asymmetric cross-entropy, iCaRL's binary cross-entropy); at most one part of a Compose may."""
        return criterion(out, y)

    def loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor | None:
        """An extra loss term added to the task loss (penalties, distillation). In task-incremental
        streams `out` is masked (other tasks' units hold the dtype's minimum); the unmasked logits of
        the same forward pass are `self.trainer.logits`."""
        return None

    def add_grad(self) -> None:
        """Right after `loss.backward()`: add the analytic gradient of a penalty to the parameters'
        `.grad` (EWC, SI, MAS, L2), cheaper than putting the penalty in the loss. It runs before every
        strategy's `after_backward`, so projections and masks see the whole gradient."""

    def after_backward(self) -> None:
        """After `loss.backward()` and `add_grad`, before the optimiser step (gradient projection, masks)."""

    def after_step(self) -> None:
        """After the optimiser step (path integrals, buffer updates)."""

    def after_task(self, task: Task) -> None:
        """After training on `task` (importance estimates, snapshots, exemplars)."""

    def predict(self, x: Tensor, t: Tensor) -> Tensor:
        """Logits for evaluation (default: the model's output)."""
        return self.model(x)

    def observe(self, x: Tensor, y: Tensor) -> None:
        """Task-free streams (`Trainer.fit_online`): a strategy that learns without gradient steps (NCM,
        SLDA) takes each incoming batch here, and the Trainer takes no optimiser step."""

    def state_dict(self) -> dict[str, Any]:
        """The strategy's state: tensors and JSON-serialisable values only."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def memory_bytes(self) -> int:
        """Bytes held by the strategy's state (buffers, Fisher, snapshots)."""
        return sum(v.numel() * v.element_size() for v in self.state_dict().values() if isinstance(v, Tensor))

    def options(self) -> dict[str, Any]:
        """The hyper-parameters this instance was built with (from `__init__`'s signature)."""
        return {p: getattr(self, p) for p in hyper_parameters(type(self))}

    def children(self) -> Iterator[Strategy]:
        yield self


@torch.no_grad()
def gathered_outputs(forward: Callable[[Tensor], Tensor], split: Split, device: torch.device,
                     batch_size: int) -> Tensor:
    """`forward` of every input of `split`, in order, in batches of `batch_size` moved to `device` (no
    gradient; the caller sets eval mode). Under data-parallel training each rank computes its share of
    the rows and the shares are gathered, so every rank holds the same whole at 1/N of the cost."""
    rows = distributed.shard(torch.arange(len(split), device=split.y.device))
    parts = [forward(split.batch(idx)[0].to(device)) for idx in rows.split(batch_size)]  # (an empty share: 1)
    return distributed.all_gather_rows(torch.cat(parts))


def hyper_parameters(cls: type[Strategy]) -> dict[str, inspect.Parameter]:
    """The keyword arguments of a strategy class's `__init__` (its hyper-parameters)."""
    if cls.__init__ is object.__init__:
        return {}
    params = inspect.signature(cls.__init__).parameters
    return {k: p for k, p in params.items() if k != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL}


def overrides(strategy: Strategy, hook: str) -> bool:
    """Whether any part of `strategy` implements `hook` itself."""
    return any(getattr(type(s), hook) is not getattr(Strategy, hook) for s in strategy.children())


def supported_scenarios(strategy: Strategy) -> frozenset[str]:
    """The scenarios every part of `strategy` supports."""
    return frozenset.intersection(*(type(s).scenarios for s in strategy.children()))


class Compose(Strategy):
    """Several strategies as one: hooks run in the given order, extra losses are summed, batches
    pass through each `batch` hook in turn, and the last strategy that defines `predict` (or
    `training_tasks`) decides it; at most one may replace the `task_loss`. It supports the scenarios
    all its parts support. Example: `Compose(EWC(lam=100), Replay(buffer_size=500))`."""

    name = "compose"

    def __init__(self, *strategies: Strategy) -> None:
        if not strategies:
            raise ValueError("Compose needs at least one strategy")
        self.parts = list(strategies)
        own = [s.name for s in self.children() if overrides(s, "task_loss")]
        if len(own) > 1:
            raise ConfigError(f"{own[0]} and {own[1]} each replace the task loss (`task_loss`), which only one "
                              "strategy of a Compose may do: compose at most one of them", "strategies")

    def children(self) -> Iterator[Strategy]:
        for part in self.parts:
            yield from part.children()

    def _with(self, hook: str) -> list[Strategy]:
        return [s for s in self.parts if overrides(s, hook)]

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        own = next((s for s in self.children() if s.own_update), None)
        lost = [s.name for s in self.children() if s is not own
                and any(overrides(s, hook) for hook in ("loss", "add_grad", "after_backward"))]
        if own is not None and lost:
            raise ConfigError(f"{own.name} updates the weights from its own loss, so {lost[0]}'s loss or gradient "
                              f"terms would be ignored: run {own.name} alone or with strategies that only change "
                              "batches or predictions")
        super().attach(trainer, stream)
        for s in self.parts:
            s.attach(trainer, stream)

    def training_tasks(self, task: Task, stream: Stream) -> list[Task]:
        chosen = self._with("training_tasks")
        return chosen[-1].training_tasks(task, stream) if chosen else [task]

    def before_task(self, task: Task) -> None:
        for s in self._with("before_task"):
            s.before_task(task)

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        for s in self._with("batch"):
            x, y, t = s.batch(x, y, t)
        return x, y, t

    def task_loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor,
                  criterion: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        chosen = self._with("task_loss")
        return chosen[0].task_loss(out, x, y, t, criterion) if chosen else criterion(out, y)

    def loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor | None:
        terms = [v for s in self._with("loss") if (v := s.loss(out, x, y, t)) is not None]
        return torch.stack(terms).sum() if terms else None

    def add_grad(self) -> None:
        for s in self._with("add_grad"):
            s.add_grad()

    def after_backward(self) -> None:
        for s in self._with("after_backward"):
            s.after_backward()

    def after_step(self) -> None:
        for s in self._with("after_step"):
            s.after_step()

    def after_task(self, task: Task) -> None:
        for s in self._with("after_task"):
            s.after_task(task)

    def predict(self, x: Tensor, t: Tensor) -> Tensor:
        chosen = self._with("predict")
        return chosen[-1].predict(x, t) if chosen else self.model(x)

    def observe(self, x: Tensor, y: Tensor) -> None:
        for s in self._with("observe"):
            s.observe(x, y)

    def state_dict(self) -> dict[str, Any]:
        return {f"{i}.{k}": v for i, s in enumerate(self.parts) for k, v in s.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, s in enumerate(self.parts):
            s.load_state_dict(strip_prefix(state, f"{i}."))

    def memory_bytes(self) -> int:
        return sum(s.memory_bytes() for s in self.parts)

    def options(self) -> dict[str, Any]:
        return {s.name: s.options() for s in self.parts}
