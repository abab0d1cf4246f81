"""The agents' networks: an MLP trunk shared by every task and a linear head per task (or one head for all).

`Heads(x, task)` runs every head on the trunk's features and picks, per sample, the head of its task, so a
batch may mix tasks (replayed transitions of old tasks) and the per-sample gradient code of
`strategies.importance` sees each layer run exactly once. Heads of different sizes (a CartPole head of 2
actions beside an Acrobot head of 3) are padded with the dtype's minimum: a padded action has probability 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


class Heads(nn.Module):
    """MLP trunk (`hidden` sizes, `activation` after each) and one linear head per entry of `outs` (its size).
    forward(x, task, *more): `more` (an action, for a Q-network) is concatenated to x; `task` (B,) picks
    each sample's head (ignored with a single head)."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], outs: list[int], activation: str = "tanh") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(n_in, size), ACTIVATIONS[activation]()]
            n_in = size
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Linear(n_in, n) for n in outs)
        self.outs = list(outs)

    def forward(self, x: Tensor, task: Tensor, *more: Tensor) -> Tensor:
        z = self.trunk(torch.cat([x, *more], -1) if more else x)
        if len(self.heads) == 1:
            return self.heads[0](z)
        lead, width = z.shape[:-1], max(self.outs)  # any leading dims: (batch,) or (envs, steps)
        z = z.reshape(-1, z.shape[-1])
        low = torch.finfo(z.dtype).min
        each = torch.stack([nn.functional.pad(h(z), (0, width - n), value=low) for h, n in zip(self.heads, self.outs)])
        index = task.reshape(1, -1, 1).expand(1, z.shape[0], width)
        return each.gather(0, index).reshape(*lead, width)  # row b from head task[b]


@torch.no_grad()
def orthogonal(net: Heads, head_gain: float) -> Heads:
    """Orthogonal weights and zero biases, as Stable-Baselines3 initialises PPO (whose tuned hyper-parameters
    the defaults are): gain sqrt(2) for hidden layers, `head_gain` for the heads (0.01 policy, 1 value)."""
    for layer in net.trunk:
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=2**0.5)
            nn.init.zeros_(layer.bias)
    for head in net.heads:
        assert isinstance(head, nn.Linear)
        nn.init.orthogonal_(head.weight, gain=head_gain)
        nn.init.zeros_(head.bias)
    return net


class Bound(nn.Module):
    """`net` on the observations of one `task`, as a function of the observation alone (what
    `importance.grad_stats` calls); parameter names gain the prefix "net."."""

    def __init__(self, net: Heads, task: int) -> None:
        super().__init__()
        self.net, self.task = net, task

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x, torch.full((len(x),), self.task, dtype=torch.long, device=x.device))
