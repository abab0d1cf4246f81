"""PackNet (Mallya & Lazebnik 2018, "PackNet: Adding Multiple Tasks to a Single Network by Iterative
Pruning", CVPR).

Each weight of the layers below the head has an owner: free (0) or the task k + 1 that kept it.
For task k (Section 3 of the paper):

1. train the free weights; weights owned by earlier tasks take part in the forward pass but their
   gradients are zeroed (they are frozen);
2. prune: in every layer, of the weights that were free, the fraction `prune` with the smallest
   magnitude |w| is set to 0 and released for later tasks; the rest become task k's;
3. retrain task k's weights for `retrain_epochs` with the released ones held at 0.

Inference on task k uses the binary mask owner in {free, 1..k+1}: w * [owner <= k + 1] (free
weights are 0 once a task is done). Biases are trained on the first task only and then shared,
frozen, as in the paper's default ("nobias"); each task's output units (its head) are its own.
The model never grows: capacity is the fraction of weights still free.

Paper defaults: prune 0.75 per added task (0.5 for the first, ImageNet, network), 10 retraining
epochs after 20 training epochs at a tenth of the learning rate. Here `prune=0.75` and
`retrain_epochs=1` (the library's default protocol trains 1 epoch per task), at the run's lr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..checkpoint import strip_prefix
from ..errors import ConfigError
from .base import Strategy

if TYPE_CHECKING:
    from ..data import Stream, Task
    from ..training import Trainer


class PackNet(Strategy):
    """Iterative pruning: each task keeps a disjoint part of the weights, frozen once learned."""

    name = "packnet"
    summary = "iterative pruning: each task trains free weights, prunes, retrains, freezes (task-IL)"
    scenarios = frozenset({"task"})  # it needs the task id at test time

    def __init__(self, prune: float = 0.75, retrain_epochs: int = 1) -> None:
        if not 0.0 <= prune < 1.0:
            raise ConfigError(f"`prune` is the fraction of free weights to release, in [0, 1), got {prune}",
                              "packnet.prune")
        if not isinstance(retrain_epochs, int) or retrain_epochs < 0:
            raise ConfigError(f"`retrain_epochs` must be a whole number >= 0, got {retrain_epochs!r}",
                              "packnet.retrain_epochs")
        self.prune, self.retrain_epochs = prune, retrain_epochs
        self.owner: dict[str, Tensor] = {}  # weight name -> 0 (free) or the owning task id + 1
        self.trainable: dict[str, Tensor] = {}
        self.tasks = 0

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        model = trainer.model
        if trainer.weight_decay > 0:
            raise ConfigError("packnet freezes earlier tasks' weights by zeroing their gradients, which weight decay "
                              "would undo: use `weight_decay` 0", "weight_decay")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ConfigError("packnet cannot keep batch-norm statistics per task: use a model without batch norm "
                              "(a lifelong mlp or cnn as `model`)", "model")
        if len(stream) > 255:
            raise ConfigError(f"packnet stores owners as bytes: at most 255 tasks, this stream has {len(stream)}")
        head = getattr(model, "head", None)
        if not isinstance(head, nn.Module):
            raise ConfigError(f"packnet needs a model with a `head` (the task outputs), {type(model).__name__} has "
                              "none: use a lifelong mlp or cnn as `model`", "model")
        own = {id(p) for p in head.parameters()}
        body = [(n, p) for n, p in model.named_parameters() if id(p) not in own]
        self.weights = {n: p for n, p in body if p.dim() > 1}
        self.shared = [p for _, p in body if p.dim() <= 1]
        if not self.weights:
            raise ConfigError("packnet prunes the layers below the head and this model has none: add `hidden` layers",
                              "hidden")
        if self.owner and {n: o.shape for n, o in self.owner.items()} != {n: p.shape for n, p in self.weights.items()}:
            raise ConfigError("this PackNet state was saved for a model with other layers: restore it into that model")
        self.owner = {n: self.owner[n].to(p.device) if self.owner else torch.zeros_like(p, dtype=torch.uint8)
                      for n, p in self.weights.items()}
        self.trainable = {n: o == 0 for n, o in self.owner.items()}

    def before_task(self, task: Task) -> None:
        self.trainable = {n: o == 0 for n, o in self.owner.items()}
        for p in self.shared:
            p.requires_grad_(self.tasks == 0)

    def after_backward(self) -> None:
        for n, p in self.weights.items():
            if p.grad is not None:
                p.grad.mul_(self.trainable[n])

    def after_task(self, task: Task) -> None:
        self.tasks = task.id + 1
        self.prune_weights(owner=task.id + 1)
        if self.retrain_epochs:  # on the task's own data, whatever else `training_tasks` mixed in
            self.trainer.train(task.train, torch.full_like(task.train.y, task.id), self.retrain_epochs,
                               f"task {task.id + 1}/{len(self.stream)} retrain")

    @torch.no_grad()
    def prune_weights(self, owner: int) -> None:
        """Release the `prune` fraction of smallest free weights of each layer; the rest go to `owner`."""
        for n, p in self.weights.items():
            owners, free = self.owner[n], self.owner[n] == 0
            n_released = round(self.prune * int(free.sum()))
            released = torch.topk(p.abs().masked_fill(~free, torch.inf).flatten(), n_released, largest=False).indices
            owners[free] = owner
            drop = torch.zeros(p.numel(), dtype=torch.bool, device=p.device)
            drop[released] = True  # a mask in p's logical order (p may be stored channels-last: no flat view)
            drop = drop.view(p.shape)
            owners[drop], p[drop] = 0, 0.0
            self.trainable[n] = owners == owner

    @torch.no_grad()
    def predict(self, x: Tensor, t: Tensor) -> Tensor:
        """Each sample through the weights of its task and the tasks before it."""
        tasks = t.unique().tolist()
        if len(tasks) == 1:  # evaluation: one task per batch
            return self.forward_task(x, tasks[0])
        out = torch.empty((len(x), self.stream.n_outputs), device=x.device)
        for k in tasks:
            out[t == k] = self.forward_task(x[t == k], k)
        return out

    def forward_task(self, x: Tensor, k: int) -> Tensor:
        """The model with task k's mask on its weights: w * [owner <= k + 1]."""
        return functional_call(self.model, {n: p * (self.owner[n] <= k + 1) for n, p in self.weights.items()}, (x,))

    def masks(self) -> list[dict[str, Tensor]]:
        """The binary mask of the weights each task learned so far (task k: owner == k + 1)."""
        return [{n: o == k + 1 for n, o in self.owner.items()} for k in range(self.tasks)]

    def state_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, **{f"owner.{n}": o for n, o in self.owner.items()}}

    def memory_bytes(self) -> int:
        """The owners (a byte per weight) and the current task's trainable mask (another byte)."""
        return super().memory_bytes() + sum(m.numel() for m in self.trainable.values())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tasks = int(state.get("tasks", 0))
        self.owner = {k: v.to(torch.uint8) for k, v in strip_prefix(state, "owner.").items()}
