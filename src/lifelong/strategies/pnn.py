"""Progressive Neural Networks (Rusu et al. 2016, "Progressive Neural Networks", arXiv:1606.04671).

Every task gets a new column, a copy of the model's MLP architecture with fresh weights; the columns
of earlier tasks are frozen, so their outputs never change, and feed the new column through lateral
adapters, the paper's Eq. (2):

    h_i^(k) = relu( W_i^(k) h_{i-1}^(k) + U_i^(k) relu( V_i^(k) alpha_i^(k) [h_{i-1}^(1), ..., h_{i-1}^(k-1)] ) )

for layers i >= 2 (the output layer too): alpha is a learned scalar "initialised by a random small
value" (here U(0, 0.1)), V projects the concatenated earlier activations onto an n_i-dimensional
space and U maps that onto layer i (Eq. (1), the plain linear lateral U_i^(k:j), is the special case
without V). The parameter count grows with every task; the method has no hyper-parameters.

Only MLP columns are built (`--model mlp`); convolutional columns are not supported and refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import strip_prefix
from ..errors import ConfigError
from .base import Strategy

if TYPE_CHECKING:
    from ..data import Stream, Task
    from ..training import Trainer


class Adapter(nn.Module):
    """U relu(V alpha h^(<k)): the non-linear lateral connection into one layer of column k."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.rand(()) * 0.1)
        self.v = nn.Linear(in_features, out_features)
        self.u = nn.Linear(out_features, out_features, bias=False)

    def forward(self, earlier: Tensor) -> Tensor:
        return self.u(F.relu(self.v(self.alpha * earlier)))


class Column(nn.Module):
    """Layers of widths `sizes` (input, hidden...), then a head over the `n_units` of its task."""

    def __init__(self, sizes: list[int], n_units: int, index: int) -> None:
        super().__init__()
        widths = [*sizes, n_units]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.adapters = nn.ModuleList(Adapter(index * widths[i], widths[i + 1]) for i in range(1, len(widths) - 1)
                                      if index > 0)

    def forward(self, x: Tensor, earlier: list[list[Tensor]]) -> list[Tensor]:
        """[x, h_1, ..., h_L, logits] given the same list for every earlier column."""
        hs = [x]
        for i, layer in enumerate(self.layers):
            z = layer(hs[-1])
            if i > 0 and earlier:
                z = z + self.adapters[i - 1](torch.cat([col[i] for col in earlier], 1))
            hs.append(F.relu(z) if i < len(self.layers) - 1 else z)
        return hs


class Progressive(nn.Module):
    """The columns so far; column k's logits fill task k's output units (`Stream.n_outputs` in all).

    A state_dict with more columns loads into it: the missing columns are added first.
    """

    units: Tensor  # buffer: the output unit of each column's logit, column after column

    def __init__(self, sizes: list[int], n_outputs: int) -> None:
        super().__init__()
        self.sizes, self.n_outputs = sizes, n_outputs
        self.columns = nn.ModuleList()
        self.register_buffer("units", torch.zeros(0, dtype=torch.long))

    def add_column(self, units: list[int]) -> None:
        """Freeze every column so far and add a new one for a task that owns `units`."""
        self.requires_grad_(False)
        device = self.units.device
        self.columns.append(Column(self.sizes, len(units), len(self.columns)).to(device))
        self.units = torch.cat([self.units, torch.tensor(units, device=device)])

    def _load_from_state_dict(self, state: dict[str, Any], prefix: str, *args: Any) -> None:
        head = len(self.sizes) - 1  # index of a column's output layer
        while f"{prefix}columns.{len(self.columns)}.layers.{head}.weight" in state:
            width = state[f"{prefix}columns.{len(self.columns)}.layers.{head}.weight"].shape[0]
            start = len(self.units)  # the units of the columns so far
            self.add_column(state[prefix + "units"][start : start + width].tolist())
        super()._load_from_state_dict(state, prefix, *args)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        acts: list[list[Tensor]] = []
        for column in self.columns:
            acts.append(column(x, acts))
        logits = torch.cat([hs[-1] for hs in acts], 1)
        out = logits.new_full((len(x), self.n_outputs), torch.finfo(logits.dtype).min)  # no column, no output
        return out.index_copy(1, self.units, logits)


def mlp_sizes(model: nn.Module) -> list[int]:
    """[input, hidden...] widths of an `mlp` Net; ConfigError for any other model."""
    features, head = getattr(model, "features", None), getattr(model, "head", None)
    parts = list(features) if isinstance(features, nn.Sequential) else [None]
    if head is None or not all(isinstance(m, (nn.Flatten, nn.Linear, nn.ReLU)) for m in parts):
        raise ConfigError(f"pnn builds MLP columns and {type(model).__name__} is not an mlp (convolutional "
                          "columns are not supported): use a lifelong mlp as `model`", "model")
    linears = [m for m in parts if isinstance(m, nn.Linear)]
    return [linears[0].in_features if linears else head.in_features, *(m.out_features for m in linears)]


class PNN(Strategy):
    """Progressive Neural Networks: a frozen column per task, laterally connected through adapters.

    The Trainer's model only gives the column architecture (an `mlp`: its widths); `attach` swaps in
    the progressive network, so `trainer.model` is the network that learns and `state_dict` holds
    every column. Needs task ids (one column per task).
    """

    name = "pnn"
    summary = "progressive networks: a new frozen-after-use column per task with lateral adapters (task-IL)"
    scenarios = frozenset({"task"})  # it needs the task id at test time

    def __init__(self) -> None:
        self.net: Progressive | None = None

    def attach(self, trainer: Trainer, stream: Stream) -> None:
        super().attach(trainer, stream)
        if self.net is None:  # (a restored network is kept)
            self.net = Progressive(mlp_sizes(trainer.model), stream.n_outputs)
            self.net.add_column(stream[0].units)
        trainer.model = self.net.to(trainer.device)

    def before_task(self, task: Task) -> None:
        assert self.net is not None
        if len(self.net.columns) == task.id:
            self.net.add_column(task.units)

    def state_dict(self) -> dict[str, Any]:
        if self.net is None:
            return {}
        return {"sizes": self.net.sizes, "n_outputs": self.net.n_outputs,
                **{f"net.{k}": v for k, v in self.net.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore every column (into the network `attach` installed, if it ran, else a new one)."""
        if not state:
            return
        if self.net is None:
            self.net = Progressive(list(state["sizes"]), int(state["n_outputs"]))
        self.net.load_state_dict(strip_prefix(state, "net."))
