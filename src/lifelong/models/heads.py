"""Output heads whose units come into use as the stream brings them: growing and multi-head.

The Trainer's contract is that a model returns one logit per output unit of the stream
(`Stream.n_outputs`) and that a task-incremental stream hides other tasks' units (`Stream.mask`).

- Multi-head (task-IL): a linear head under a task-incremental stream already *is* one head per
  task. Task k owns the rows `task.units` of the weight matrix, the mask gives other tasks' logits
  the dtype's minimum, so they take exactly zero gradient: training task k never changes another
  task's head. A separate per-task module would compute the same thing in more pieces. Weight decay
  alike: the Trainer decays only the rows of `output_layer` that a step's loss reaches (as an
  optimiser skips a separate head without a gradient), so another task's rows are not shrunk.
- Transfer heads on frozen features (`transfer.features`): a Linear, `CL2N` then a Linear (the L2N
  probe, SimpleShot), or a small MLP; `head_spec` / `build_head` describe and rebuild them, so that a
  model carrying one can be saved and loaded (`models.save`).
- Growing (class-IL, `GrowingHead`): a linear head whose units are off until a task brings them.
  `Trainer.fit` calls `grow_heads(model, units)` for the units of the tasks it trains on; an inactive
  unit outputs the dtype's minimum, so it is never predicted, takes no gradient (its weights stay
  at their initial values until its classes arrive) and the softmax runs over the classes seen so
  far. Under task-IL it is the multi-head above whose heads switch on task by task.

The weights of every unit are allocated up front (the stream says how many units there are), so
the parameter set never changes shape: strategies that keep per-parameter state (EWC, SI, ...),
optimisers and checkpoints work unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .mlp import mlp
from .net import Net, set_classifier

HEADS = {"linear": "one linear layer over all output units (default)",
         "growing": "units switched on as their task arrives (class-IL: the classifier grows with the classes)"}


class GrowingHead(nn.Linear):
    """A linear head whose units are active (give logits) only once `grow` was called with them."""

    active: Tensor  # (out_features,) bool buffer: the units switched on

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("active", torch.zeros(out_features, dtype=torch.bool))

    def grow(self, units: Sequence[int]) -> None:
        """Switch `units` on (those already on stay on)."""
        if any(not 0 <= u < self.out_features for u in units):
            raise ConfigError(f"output units {list(units)} do not fit a head of {self.out_features} units: "
                              "build the model with the stream's n_outputs")
        self.active[list(units)] = True

    def forward(self, f: Tensor) -> Tensor:
        return super().forward(f).masked_fill(~self.active, torch.finfo(f.dtype).min)


def grow_heads(model: nn.Module, units: Sequence[int]) -> None:
    """Switch `units` on in every GrowingHead inside `model` (the Trainer calls this per task)."""
    for module in model.modules():
        if isinstance(module, GrowingHead):
            module.grow(units)


def output_layer(model: nn.Module) -> nn.Linear | None:
    """The linear layer whose rows are the model's output units (its `get_classifier()`), if any."""
    get = getattr(model, "get_classifier", None)
    layer = get() if callable(get) else None
    return layer if isinstance(layer, nn.Linear) else None


def with_head(model: nn.Module, head: str) -> nn.Module:
    """`model` with a head of the kind `head` (see HEADS) in place of its linear classifier
    (`get_classifier()`); the weights are kept, so both kinds start from the same initialisation."""
    if head not in HEADS:
        raise ConfigError(f"unknown `head` {head!r}: choose one of {', '.join(HEADS)}", "head")
    if head == "linear":
        return model
    old = output_layer(model)
    if old is None:
        raise ConfigError(f"a growing head replaces a linear classifier; {type(model).__name__} has none: "
                          "use `head='linear'`", "head")
    new = GrowingHead(old.in_features, old.out_features, old.bias is not None).to(old.weight.device, old.weight.dtype)
    new.load_state_dict(old.state_dict(), strict=False)
    set_classifier(model, new)
    return model


class CL2N(nn.Module):
    """z = (f - centre) / ||f - centre||_2 (SimpleShot's CL2N; L2N without a centre)."""

    centre: Tensor | None  # buffer

    def __init__(self, centre: Tensor | None) -> None:
        super().__init__()
        self.register_buffer("centre", centre.detach().clone() if centre is not None else None)

    def forward(self, f: Tensor) -> Tensor:
        return F.normalize(f if self.centre is None else f - self.centre, dim=1)


def head_spec(head: nn.Module) -> dict[str, Any]:
    """What `build_head` needs to rebuild `head`: {"kind": "linear" | "l2n" | "cl2n" | "mlp", ...}."""
    if type(head) is nn.Linear:
        return {"kind": "linear", "bias": head.bias is not None}
    if isinstance(head, nn.Sequential) and len(head) == 2 and isinstance(head[0], CL2N) \
            and type(head[1]) is nn.Linear:
        return {"kind": "l2n" if head[0].centre is None else "cl2n"}
    if type(head) is Net and isinstance(head.features, nn.Sequential) \
            and all(type(m) in (nn.Flatten, nn.Linear, nn.ReLU) for m in head.features):
        return {"kind": "mlp", "hidden": [m.out_features for m in head.features if isinstance(m, nn.Linear)]}
    raise ConfigError(f"cannot describe a head of type {type(head).__name__} for saving: save models whose head "
                      "is a Linear, an L2N/CL2N probe or an MLP (or save the tensors with lifelong.checkpoint)")


def build_head(spec: dict[str, Any], in_features: int, num_classes: int) -> nn.Module:
    """A fresh head of `spec` (from `head_spec`) on `in_features` inputs, its weights to be loaded."""
    kind = spec.get("kind")
    if kind == "linear":
        return nn.Linear(in_features, num_classes, bias=bool(spec.get("bias", True)))
    if kind in ("l2n", "cl2n"):
        return nn.Sequential(CL2N(torch.zeros(in_features) if kind == "cl2n" else None),
                             nn.Linear(in_features, num_classes))
    if kind == "mlp":
        return mlp(in_features, num_classes, [int(h) for h in spec["hidden"]])
    raise ConfigError(f"unknown head kind {kind!r} (expected linear, l2n, cl2n or mlp)")
