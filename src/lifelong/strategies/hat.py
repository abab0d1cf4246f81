"""Hard Attention to the Task (Serra, Suris, Miron & Karatzoglou 2018, "Overcoming Catastrophic
Forgetting with Hard Attention to the Task", ICML), Section 2's equations.

Every Linear/Conv layer l below the head gets, per task t, an embedding e_l^t and an almost binary
gate on its units (channels), multiplied into the layer's output:

    a_l^t = sigmoid(s e_l^t)                                              (2.1, attention mask)
    a_l^{<=t} = max(a_l^t, a_l^{<=t-1})          after task t              (2.2, cumulative attention)
    g'_{l,ij} = [1 - min(a_{l,i}^{<t}, a_{l-1,j}^{<t})] g_{l,ij}           (2.2, gradient conditioning)
    s = 1/s_max + (s_max - 1/s_max) (b - 1) / (B - 1),  batch b of B    (2.3, annealing; s_max at test)
    q'_{l,i} = s_max [cosh(s e_{l,i}^t) + 1] / (s [cosh(e_{l,i}^t) + 1]) q_{l,i}   (2.4, compensation)
    L' = L + c sum_l,i a_{l,i}^t (1 - a_{l,i}^{<t}) / sum_l,i (1 - a_{l,i}^{<t})     (2.5, regulariser)

so the weights into and out of units that earlier tasks use stay as they were. As in the authors'
code, s e is clipped to [-50, 50] inside cosh and the embeddings to [-6, 6] after each step;
embeddings start N(0, 1) (like torch.nn.Embedding). Hyper-parameters, paper defaults: s_max = 400,
c = 0.75. The paper trains with plain SGD, lr 0.05 (the authors' code, joansj/hat
src/approaches/hat.py: `torch.optim.SGD(lr=0.05)`), and so does HAT here when the Trainer is given no
optimiser (`default_optimizer`). The compensation (2.4) and the conditioning (2.2) scale gradients,
which an adaptive optimiser such as Adam divides out again (its step is about lr whatever the
gradient's scale): a one-line warning says so when one is given. A gate on a layer's output before
the ReLU (or max pooling) equals one after it, since gates are positive. Models: `mlp` and `cnn`
(a `features` stack of Linear/Conv/parameter-free layers and a `head`; each task's head is its own
output units).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..configs import non_negative
from ..errors import ConfigError
from .base import Strategy

if TYPE_CHECKING:
    from ..data import Stream, Task
    from ..training import Trainer

GATED = (nn.Linear, nn.Conv1d, nn.Conv2d)


class Gated(nn.Module):
    """`net` with a gate on every unit (channel) of its Linear/Conv layers below the head.

    `task` (an int, or a tensor of per-sample task ids) and `s` select the gates of a forward pass.
    """

    def __init__(self, net: nn.Module, n_tasks: int) -> None:
        super().__init__()
        features, head = getattr(net, "features", None), getattr(net, "head", None)
        if not isinstance(features, nn.Sequential) or not isinstance(head, nn.Module):
            raise ConfigError(f"hat needs a model made of a `features` stack and a `head`; {type(net).__name__} is "
                              "not: use a lifelong mlp or cnn as `model`", "model")
        for m in features:
            if (not isinstance(m, GATED) and any(True for _ in m.parameters())) or any(True for _ in m.buffers()):
                raise ConfigError(f"hat can only gate Linear and Conv layers, not {type(m).__name__}: use a "
                                  "lifelong mlp or cnn as `model`", "model")
        self.net, self.layers = net, [m for m in features if isinstance(m, GATED)]
        if not self.layers:
            raise ConfigError("hat gates the layers below the head and this model has none: add `hidden` layers",
                              "hidden")
        widths = [m.out_features if isinstance(m, nn.Linear) else m.out_channels for m in self.layers]
        self.bounds = [(sum(widths[:i]), sum(widths[: i + 1])) for i in range(len(widths))]
        self.embedding = nn.Parameter(torch.randn(n_tasks, sum(widths)))
        self.task: int | Tensor = 0
        self.s = 1.0

    def gates(self, task: int | Tensor, s: float) -> Tensor:
        """a = sigmoid(s e^task): (units,) for one task, (N, units) for per-sample task ids."""
        return torch.sigmoid(s * self.embedding[task])

    def forward(self, x: Tensor) -> Tensor:
        a = self.gates(self.task, self.s)
        a = a.expand(len(x), -1) if a.dim() == 1 else a
        layer, features, head = 0, self.net.features, self.net.head
        assert isinstance(features, nn.Sequential) and isinstance(head, nn.Module)  # as __init__ checked
        for m in features:
            x = m(x)
            if isinstance(m, GATED):
                lo, hi = self.bounds[layer]
                x = x * a[:, lo:hi].reshape(len(x), hi - lo, *([1] * (x.dim() - 2)))
                layer += 1
        return head(x)

    def conditioning(self, mask: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Gradient conditioning: for each gated weight and bias, the factor 1 - min(post, pre)."""
        out, pre = [], None
        for m, (lo, hi) in zip(self.layers, self.bounds):
            post = mask[lo:hi]
            ones = [1] * (m.weight.dim() - 2)
            w = post.view(-1, 1, *ones).expand_as(m.weight)
            if pre is not None:  # a Linear after a flattened Conv sees each channel's gate once per position
                w = torch.minimum(w, pre.repeat_interleave(m.weight.shape[1] // len(pre)).view(1, -1, *ones))
            out.append((m.weight, 1 - w))
            if m.bias is not None:
                out.append((m.bias, 1 - post))
            pre = post
        return out


class HAT(Strategy):
    """Hard attention to the task: learned, almost binary unit masks per task (see the module doc)."""

    name = "hat"
    summary = "hard attention to the task: per-task unit gates, used units frozen (task-IL)"
    scenarios = frozenset({"task"})  # it needs the task id at test time
    default_optimizer = ("sgd", 0.05)  # the paper's (and authors' code's) optimiser and learning rate

    def __init__(self, s_max: float = 400.0, c: float = 0.75) -> None:
        if not s_max >= 1 or not math.isfinite(s_max):
            raise ConfigError(f"`s_max` must be a number >= 1, got {s_max}", "hat.s_max")
        non_negative({"c": c}, "hat")
        self.s_max, self.c = s_max, c
        self.gated: Gated | None = None
        self.mask: Tensor | None = None  # a^{<t}: cumulative gates of the tasks learned so far
        self.restored: Tensor | None = None
        self.factors: list[tuple[Tensor, Tensor]] = []
        self.tasks = 0
        self.step = 0  # batches of the current task so far (the annealing of s follows it)

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        if trainer.weight_decay > 0:
            raise ConfigError("hat keeps earlier tasks' units by conditioning their gradients, which weight decay "
                              "would undo: use `weight_decay` 0", "weight_decay")
        if trainer.optimizer_name != "sgd":
            warnings.warn(f"hat's gradient compensation and conditioning assume SGD (the paper's, lr 0.05); "
                          f"{trainer.optimizer_name} rescales gradients and undoes them: leave `optimizer` out or "
                          "use sgd", stacklevel=2)
        if self.gated is None:
            self.gated = Gated(trainer.model, len(stream))
        trainer.model = self.gated = self.gated.to(trainer.device)
        if self.restored is not None:
            if self.restored.shape != self.gated.embedding.shape:
                raise ConfigError(f"this HAT state holds gates of shape {tuple(self.restored.shape)} "
                                  f"({len(self.restored)} tasks); this model and stream need "
                                  f"{tuple(self.gated.embedding.shape)}: restore it into the same setup")
            with torch.no_grad():
                self.gated.embedding.copy_(self.restored)
        if self.mask is None:
            self.mask = torch.zeros(self.gated.embedding.shape[1])
        self.mask = self.mask.to(trainer.device)

    def before_task(self, task: Task) -> None:
        assert self.gated is not None and self.mask is not None
        self.task, self.step = task.id, 0
        self.n_batches = math.ceil(len(task.train) / self.trainer.batch_size)
        self.factors = self.gated.conditioning(self.mask) if self.tasks else []
        self.free = 1 - self.mask
        self.n_free = self.free.sum().clamp_min(1.0)

    def batch(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        assert self.gated is not None
        b = self.step % self.n_batches
        progress = b / (self.n_batches - 1) if self.n_batches > 1 else 1.0
        self.gated.task, self.gated.s = self.task, 1 / self.s_max + (self.s_max - 1 / self.s_max) * progress
        self.step += 1
        return x, y, t

    def regulariser(self) -> Tensor:
        """The attention regulariser at the current s: sum a^t (1 - a^{<t}) / sum (1 - a^{<t})."""
        assert self.gated is not None
        a = self.gated.gates(self.task, self.gated.s)
        return (a * self.free).sum() / self.n_free

    def loss(self, out: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        return self.c * self.regulariser()

    def after_backward(self) -> None:
        assert self.gated is not None
        for p, factor in self.factors:
            if p.grad is not None:
                p.grad.mul_(factor)
        e, s = self.gated.embedding, self.gated.s
        if e.grad is not None:
            with torch.no_grad():
                e.grad.mul_(self.s_max / s * (torch.cosh((s * e).clamp(-50, 50)) + 1) / (torch.cosh(e) + 1))

    def after_step(self) -> None:
        assert self.gated is not None
        with torch.no_grad():
            self.gated.embedding.clamp_(-6, 6)

    def after_task(self, task: Task) -> None:
        assert self.gated is not None and self.mask is not None
        with torch.no_grad():
            self.mask = torch.maximum(self.mask, self.gated.gates(task.id, self.s_max))
        self.tasks = task.id + 1

    def predict(self, x: Tensor, t: Tensor) -> Tensor:
        assert self.gated is not None
        self.gated.task, self.gated.s = t, self.s_max
        return self.gated(x)

    def state_dict(self) -> dict[str, Any]:
        if self.gated is None or self.mask is None:
            return {}
        return {"embedding": self.gated.embedding.detach(), "mask": self.mask, "tasks": self.tasks, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.restored, self.mask, self.tasks = state["embedding"], state["mask"], int(state["tasks"])
            self.step = int(state.get("step", 0))
            if self.gated is not None:
                self.attach(self.trainer, self.stream)

    def memory_bytes(self) -> int:
        """The embeddings and cumulative gates, plus the gradient factors cached for the current task."""
        return super().memory_bytes() + sum(f.numel() * f.element_size() for _, f in self.factors)
