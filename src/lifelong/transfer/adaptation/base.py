"""The shared machinery of the deep domain-adaptation methods: a Strategy for the one training loop.

Unsupervised domain adaptation trains on labelled source samples and unlabelled target inputs; the
target labels are used only to measure accuracy. `Trainer.fit` runs the source data through its usual
loop; at every step the strategy's `batch` hook appends a target batch of the same size (drawn
uniformly, with replacement, from its own generator seeded by the Trainer's seed) whose labels the
cross-entropy ignores, so source and target go through the network in ONE forward pass, as in the
Transfer-Learning-Library: a BatchNorm layer normalises both domains with the statistics of the pooled
batch, not each domain with its own. The features of both halves are read off the input of the
model's classifier (`get_classifier()`, timm's contract) during that pass, or, with `layer`, off the
output of the submodule of that name (flattened; SKADA's `layer_name`, e.g. "features.2" of an mlp,
"layer3" of a ResNet), and the method's `term(source features, target features, weight)` is added to
the cross-entropy.

With `progressive`, the weight grows as λ_p = λ · (2 / (1 + exp(−10 p)) − 1), p the fraction of
training done (Ganin et al. 2016, γ = 10), which silences the noisy early-training term. The
position in that schedule (the step count) and the target generator are part of the strategy's state,
so a fit resumed from a checkpoint continues the schedule instead of restarting it at zero.

Under data-parallel training (`lifelong.distributed`) the target rows are drawn for the whole global
batch, identically on every rank, and each rank appends its share (`distributed.shard`), so the ranks
together see what one process sees. A term that is a mean over the rows (DANN's, `shardable`) is computed
by each rank on its rows and the gradients' average makes the whole; a statistic of the whole batch (MMD,
CORAL, JMMD) is computed by every rank on the whole batch's features (`pooled`: the other ranks' rows
gathered as constants, its own with their gradient), scaled so that the ranks' averaged gradients are its
gradient. A last batch with fewer rows than ranks skips such a term (a rank without rows cannot gather).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ... import distributed
from ...errors import ConfigError
from ...strategies import Strategy

IGNORE = -100  # F.cross_entropy's ignore_index: the label of the appended target rows

if TYPE_CHECKING:
    from ...data import Stream, Task
    from ...training import Trainer


def progressive_weight(p: float, gamma: float = 10.0) -> float:
    """Ganin et al.'s schedule 2 / (1 + exp(−γ p)) − 1: 0 at p = 0, towards 1 as p -> 1."""
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class Adaptation(Strategy):
    """Base class: holds the unlabelled target inputs (`set_target`); subclasses implement `term`. `layer`:
    the dotted name of the module whose output is aligned (None: the classifier's input)."""

    option_names = {"lam": "lambda"}
    shardable = False  # the term is a mean over the batch's rows (each rank computes its share), not a statistic

    def __init__(self, lam: float = 1.0, progressive: bool = False, layer: str | None = None) -> None:
        if not (lam >= 0 and math.isfinite(lam)):
            raise ConfigError(f"{self.name}'s weight `lam` must be a number >= 0, got {lam!r}", f"{self.name}.lam")
        self.lam, self.progressive, self.layer = lam, progressive, layer
        self.target: Tensor | None = None
        self.steps, self.total_steps, self.n_source, self.n_global = 0, 1, 0, 0
        self._features: Tensor | None = None
        self._hook: torch.utils.hooks.RemovableHandle | None = None

    def set_target(self, x: Tensor) -> None:
        """The unlabelled target inputs the method aligns the source with (at least 2 samples)."""
        if len(x) < 2:
            raise ConfigError(f"{self.name} needs at least 2 unlabelled target samples, got {len(x)}")
        self.target = x

    def term(self, fs: Tensor, ft: Tensor, weight: float) -> Tensor:
        """The method's loss term from source and target features (rows: samples) and the weight λ_p."""
        raise NotImplementedError

    def weight(self) -> float:
        """λ, or λ_p under the progressive schedule."""
        return self.lam * progressive_weight(self.steps / self.total_steps) if self.progressive else self.lam

    def options(self) -> dict[str, Any]:
        """The hyper-parameters; `layer` only when one is named (a default run's record is as before)."""
        return {k: v for k, v in super().options().items() if k != "layer" or v is not None}

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        if self.target is None:
            raise ConfigError(f"{self.name} has no target data: call set_target(x) with unlabelled target inputs")
        if tuple(self.target.shape[1:]) != tuple(stream.input_shape):
            raise ConfigError(f"target inputs have shape {tuple(self.target.shape[1:])}, the source "
                              f"{tuple(stream.input_shape)}: both domains must share an input shape")
        self._hook = self._hook_features(trainer.model)
        self.target = self.target.to(trainer.device)
        self.generator = torch.Generator().manual_seed(trainer.seed)

    def _hook_features(self, model: nn.Module) -> torch.utils.hooks.RemovableHandle:
        """A hook that keeps the aligned features of each forward pass in `_features`: the classifier's
        input, or the output of the module `layer`."""
        if self.layer is None:
            get = getattr(model, "get_classifier", None)
            if not callable(get):
                raise ConfigError(f"{self.name} aligns the input of the model's classifier and "
                                  f"{type(model).__name__} has no get_classifier() (timm's contract): name a "
                                  "module with `layer`", f"{self.name}.layer")
            return get().register_forward_pre_hook(self._keep_input)
        try:
            module = model.get_submodule(self.layer)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n]
            raise ConfigError(f"`layer` {self.layer!r} is not a module of {type(model).__name__}: choose one of "
                              f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''}",
                              f"{self.name}.layer") from None
        return module.register_forward_hook(self._keep_output)

    def _keep_input(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self._features = args[0]

    def _keep_output(self, module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        if not isinstance(output, Tensor):
            raise ConfigError(f"`layer` {self.layer!r} outputs a {type(output).__name__}, not a tensor: name a "
                              "module whose output is one", f"{self.name}.layer")
        self._features = output.flatten(1)

    def feature_width(self) -> int:
        """The width of the aligned features, from one forward pass of two target inputs in eval mode (no
        gradient, no batch-norm update, no random number drawn)."""
        assert self.target is not None
        model, training = self.model, self.model.training
        model.eval()
        try:
            with torch.no_grad():
                model(self.target[:2])
        finally:
            model.train(training)
        assert self._features is not None
        width = self._features.shape[1]
        self._features = None
        return width

    def before_task(self, task: Task) -> None:
        self.steps = 0
        self.total_steps = self.trainer.epochs * math.ceil(len(task.train) / self.trainer.batch_size)

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The source batch, then as many target inputs labelled IGNORE (no part of the cross-entropy); under
        data-parallel training, this rank's share of the target rows drawn for the whole global batch."""
        assert self.target is not None
        self.n_source = len(x)
        self.n_global = len(self.trainer.global_index) if distributed.active() else len(x)
        idx = distributed.shard(torch.randint(len(self.target), (self.n_global,), generator=self.generator))
        idx = idx.to(self.target.device)
        return torch.cat([x, self.target[idx]]), torch.cat([y, torch.full_like(y, IGNORE)]), torch.cat([t, t])

    def loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor | None:
        f, n = self._features, self.n_source
        assert f is not None
        if self.n_global < 2:  # covariances and discriminator batches need two samples
            return None
        if not distributed.active() or self.shardable:
            return self.term(f[:n], f[n:], self.weight())
        if self.n_global < distributed.world_size():  # some rank has no rows to join `pooled` with
            return None
        # the Trainer weighs this rank's gradient by its rows, n of n_global: scaled back, the sum is the term's
        return self.term(*self.pooled(f), self.weight()) * (self.n_global / n)

    def pooled(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The source rows and the target rows of `z` (rows of this step's forward pass: [source; target]);
        under data-parallel training, of the whole global batch: the other ranks' rows gathered (constants),
        this rank's own keeping their gradient."""
        n = self.n_source
        if not distributed.active():
            return z[:n], z[n:]
        sizes = [len(c) for c in torch.arange(self.n_global).tensor_split(distributed.world_size())]
        blocks = list(distributed.all_gather_rows(z.detach()).split([2 * s for s in sizes]))
        blocks[distributed.rank()] = z
        return (torch.cat([b[:s] for b, s in zip(blocks, sizes)]),
                torch.cat([b[s:] for b, s in zip(blocks, sizes)]))

    def after_step(self) -> None:
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        """The schedule's position and the target generator's state (so a resumed fit draws on)."""
        rng = self.generator.get_state() if hasattr(self, "generator") else None
        return {"steps": self.steps, **({"target_rng": rng} if rng is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        if "target_rng" in state and hasattr(self, "generator"):
            self.generator.set_state(state["target_rng"].cpu())

    def after_task(self, task: Task) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
