"""Continual-learning strategies for the RL agents: extra loss terms and hooks around the agent's update, as
`lifelong.strategies` are for classifiers, and reusing their maths where it fits.

The penalties (L2, EWC, online EWC, MAS) are `strategies.penalty.QuadraticPenalty` on the agent's actor
(Continual World regularises the actor, not the critic): after each task the importance Ω and anchor θ*
are folded in (per-task terms merged exactly for EWC), and each update adds the penalty's exact gradient
2 λ Ω (θ − θ*) (`add_grad`), i.e. the loss gains λ · Σ_i Ω_i (θ_i − θ*_i)^2, Continual World's form (no 1/2).
Ω is: L2, 1; EWC, the Fisher of the policy's own action distribution on the last states of the task
(`Agent.policy_fisher`: categorical for PPO, the Gaussian's closed form for SAC); MAS, the mean absolute
gradient of the squared norm of the actor's output on those states (`importance.grad_stats`).
`replay` keeps SAC's replay buffer across tasks, written by reservoir sampling (old tasks' transitions stay
in it); `multihead` gives the actor and critics a head per task. A name of `lifelong.strategies` that has
no RL version here is refused in one line.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import torch
from tensordict import TensorDict
from torch import Tensor, nn
from torchrl.data import LazyTensorStorage, ReplayBuffer

from ..checkpoint import strip_prefix
from ..configs import non_negative, whole_numbers
from ..errors import ConfigError
from ..registry import Registry
from ..strategies.agem import project
from ..strategies.importance import grad_stats
from ..strategies.packnet import PackNet as ImagePackNet
from ..strategies.penalty import QuadraticPenalty
from .agents import SAC, Agent, buffer_state, load_buffer
from .nets import Bound

RL_STRATEGIES = Registry("RL strategy")


class RLStrategy:
    """Base class: every hook is a no-op. `algos`: the algorithms it works with; `keeps_buffer`: the
    off-policy buffer is kept across tasks; `multihead`: the agent gets a head per task."""

    name: ClassVar[str] = "rl-strategy"
    algos: ClassVar[frozenset[str]] = frozenset({"ppo", "sac"})
    keeps_buffer: ClassVar[bool] = False
    multihead: ClassVar[bool] = False
    agent: Agent

    def attach(self, agent: Agent) -> None:
        """Called once the agent is built, before the first task."""
        self.agent = agent

    def agent_options(self) -> dict[str, Any]:
        """Hyper-parameters this strategy sets on the agent (the replay buffer's size)."""
        return {}

    def before_task(self, task: int) -> None:
        """Before learning `task`."""

    def loss(self, batch: TensorDict) -> Tensor | None:
        """An extra loss term on a training batch (added to the algorithm's loss terms)."""
        return None

    def add_grad(self) -> None:
        """After backward: add an analytic penalty gradient."""

    def after_backward(self) -> None:
        """After `add_grad`, before the optimiser step (projections, masks)."""

    def after_step(self) -> None:
        """After the optimiser step."""

    def after_task(self, task: int) -> None:
        """After learning `task` (importance, anchors)."""

    @contextlib.contextmanager
    def evaluating(self, task: int) -> Iterator[None]:
        """Around the evaluation of `task` (PackNet: that task's weights only)."""
        yield

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def options(self) -> dict[str, Any]:
        """The hyper-parameters this instance was built with (from `__init__`'s signature)."""
        return {p: getattr(self, p) for p in _arguments(type(self))}


@RL_STRATEGIES.register("naive", "fine-tuning: learn each task in turn, nothing kept (SAC's buffer emptied)")
class Naive(RLStrategy):
    name = "naive"


@RL_STRATEGIES.register("multihead", "a head per task for the actor and the critics (task id given)")
class MultiHead(RLStrategy):
    name = "multihead"
    multihead = True


@RL_STRATEGIES.register("replay", "reservoir replay: SAC's buffer kept across tasks, written by reservoir "
                        "sampling (off-policy only)")
class Replay(RLStrategy):
    """Reservoir replay (Rolnick et al. 2019; Vitter 1985, Algorithm R: the n-th transition replaces a random
    slot with probability size / n), as Continual World's "perfect memory" baseline. size: the buffer's capacity
    in transitions (default 1,000,000: every transition of short sequences is kept; smaller, a uniform
    reservoir sample of all tasks' transitions)."""

    name = "replay"
    algos = frozenset({"sac"})
    keeps_buffer = True

    def __init__(self, size: int = 1_000_000) -> None:
        whole_numbers({"size": size}, owner="replay")
        self.size = size

    def agent_options(self) -> dict[str, Any]:
        return {"buffer_size": self.size}


class ActorPenalty(QuadraticPenalty):
    """The library's quadratic penalty on one network, with scale λ (no Trainer: its host is the network)."""

    name = "actor-penalty"

    def __init__(self, net: nn.Module, lam: float) -> None:
        super().__init__("explicit")
        self.lam = lam
        device = next(net.parameters()).device
        self.trainer = SimpleNamespace(model=net, device=device)  # type: ignore[assignment]  # what it reads

    @property
    def scale(self) -> float:
        return self.lam


class Penalty(RLStrategy):
    """A quadratic pull of the actor to its weights after earlier tasks; subclasses give Ω (`importance`)."""

    keep_old_anchors: ClassVar[bool] = False

    def __init__(self, lam: float) -> None:
        non_negative({"lam": lam}, self.name)
        self.lam = lam
        self.decay = 1.0

    def attach(self, agent: Agent) -> None:
        super().attach(agent)
        self.penalty = ActorPenalty(agent.actor, self.lam)

    def importance(self, task: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def add_grad(self) -> None:
        self.penalty.add_grad()

    def after_task(self, task: int) -> None:
        self.penalty.consolidate(self.importance(task), self.penalty.parameters_now(), self.keep_old_anchors,
                                 self.decay)

    def state_dict(self) -> dict[str, Any]:
        return self.penalty.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.penalty.load_state_dict(state)


@RL_STRATEGIES.register("l2", "L2 pull of the actor to its weights after the last task")
class L2(Penalty):
    """L2 to the previous tasks' actor weights, the uniform-importance baseline of Kirkpatrick et al. 2017 (eq. 3
    with F = 1): L_t + λ/2 Σ_i (θ_i − θ*_i)². lam: λ (default 1; Continual World sweeps 1e-2..1e5 for its own
    scale)."""

    name = "l2"

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__(lam)
        self.decay = 0.0

    def importance(self, task: int) -> dict[str, Tensor]:
        return {n: torch.ones_like(p) for n, p in self.agent.actor.named_parameters()}


@RL_STRATEGIES.register("ewc", "EWC on the actor: Fisher of the policy's action distribution on the task's states")
class EWC(Penalty):
    """EWC (Kirkpatrick et al. 2017, eq. 3) as Continual World applies it to the actor: L_t + λ/2 Σ_i F_i
    (θ_i − θ*_i)², F the diagonal Fisher of the policy's action distribution on the finished task's states.
    lam: λ (default 100)."""

    name = "ewc"
    keep_old_anchors = True

    def __init__(self, lam: float = 100.0) -> None:
        super().__init__(lam)

    def importance(self, task: int) -> dict[str, Tensor]:
        return self.agent.policy_fisher(self.agent.states(), task)


@RL_STRATEGIES.register("online-ewc", "online EWC on the actor: one running Fisher with decay gamma, one anchor")
class OnlineEWC(EWC):
    """Online EWC (Schwarz et al. 2018, eq. 8): one penalty around the latest weights with the running
    Fisher F ← γ F + F_t. lam: λ (default 100); gamma: the running Fisher's decay (default 1)."""

    name = "online-ewc"
    keep_old_anchors = False

    def __init__(self, lam: float = 100.0, gamma: float = 1.0) -> None:
        super().__init__(lam)
        if not 0 <= gamma <= 1:
            raise ConfigError(f"`gamma` of online-ewc must be in [0, 1], got {gamma!r}", "online-ewc.gamma")
        self.gamma = self.decay = gamma


@RL_STRATEGIES.register("mas", "MAS on the actor: sensitivity of its output's squared norm on the task's states")
class MAS(Penalty):
    """Memory Aware Synapses (Aljundi et al. 2018, eqs. 2-4): Ω_i = mean over the task's states of
    |∂‖f(x)‖²₂/∂θ_i|, f the actor's output (the task's head), and the penalty λ Σ_i Ω_i (θ_i − θ*_i)².
    lam: λ (default 1)."""

    name = "mas"

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__(lam)

    def importance(self, task: int) -> dict[str, Tensor]:
        actor, states = self.agent.actor, self.agent.states()
        width = actor.outs[task if len(actor.outs) > 1 else 0]
        zeros = torch.zeros(len(states), dtype=torch.long)
        sums = grad_stats(Bound(actor, task), states, zeros, zeros,
                          lambda out, y, t: out[:, :width].pow(2).sum(1), "abs")
        return {n: v / len(states) for n, v in strip_prefix(sums, "net.").items()}


@RL_STRATEGIES.register("agem", "A-GEM on stored transitions: the update may not raise the SAC loss on old tasks' "
                        "(off-policy only)")
class AGEM(RLStrategy):
    """A-GEM (Chaudhry et al. 2019, eq. 11) as Continual World runs it with SAC: after each task `per_task` of
    its transitions are stored; each update's gradient g (actor, critics, temperature) is projected,
    g ← g − min(g·g_ref, 0)/|g_ref|² g_ref (`strategies.agem.project`), with g_ref the gradient of the SAC loss
    on `batch_size` stored transitions. per_task: transitions kept per task (default 10,000); batch_size:
    the reference batch (default 256)."""

    name = "agem"
    algos = frozenset({"sac"})

    def __init__(self, per_task: int = 10_000, batch_size: int = 256) -> None:
        whole_numbers({"per_task": per_task, "batch_size": batch_size}, owner="agem")
        self.per_task, self.batch_size = per_task, batch_size

    def attach(self, agent: Agent) -> None:
        super().attach(agent)
        self.memory = ReplayBuffer(storage=LazyTensorStorage(self.per_task * len(agent.seq.tasks)),
                                   batch_size=self.batch_size)
        self.rng = torch.Generator().manual_seed(agent.seed)

    def reference_gradient(self, params: list[nn.Parameter]) -> list[Tensor]:
        """The gradient of the SAC loss on a batch of stored transitions."""
        terms = self.agent.loss_module(self.memory.sample())
        loss = terms["loss_actor"] + terms["loss_qvalue"] + terms["loss_alpha"]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]

    def after_backward(self) -> None:
        if not len(self.memory):
            return
        params = [p for p in self.agent.loss_module.parameters() if p.requires_grad]
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        for p, g in zip(params, project(grads, self.reference_gradient(params))):
            p.grad = g

    def after_task(self, task: int) -> None:
        assert isinstance(self.agent, SAC), "agem is off-policy only (`algos`)"
        buffer = self.agent.buffer
        rows = torch.randperm(len(buffer), generator=self.rng)[: self.per_task]
        self.memory.extend(buffer.storage.get(rows))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state()} | buffer_state(self.memory, "memory.")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.set_state(state["rng"])
        load_buffer(self.memory, state, "memory.")


@RL_STRATEGIES.register("packnet", "PackNet on the actor: each task keeps a pruned share of the trunk's weights, "
                        "frozen afterwards; a head per task")
class PackNet(RLStrategy):
    """PackNet (Mallya & Lazebnik 2018) on the actor, as Continual World runs it. Each trunk weight is free (0)
    or owned by the task k + 1 that kept it: task k trains the free weights (earlier tasks' ones take part,
    frozen: their gradients are zeroed, and the optimiser, new at each task, never moves them), then the
    fraction `prune` of its free weights of smallest magnitude is set to 0 and released, the rest become
    task k's, and the task is learnt again for `retrain` x its steps with those alone (a new optimiser, SAC's
    buffer kept). Evaluating task j uses the weights owned by tasks 0..j only. The trunk's biases are
    learnt on the first task and then frozen; each task has its own head. prune: in [0, 1) (default 0.75,
    as `lifelong.strategies.PackNet`); retrain: fraction of the task's steps (default 0.25)."""

    name = "packnet"
    multihead = True

    def __init__(self, prune: float = 0.75, retrain: float = 0.25) -> None:
        if isinstance(prune, bool) or not isinstance(prune, (int, float)) or not 0 <= prune < 1:
            raise ConfigError(f"`prune` of packnet is the fraction of free weights released, in [0, 1), got "
                              f"{prune!r}", "packnet.prune")
        non_negative({"retrain": retrain}, "packnet")
        self.prune, self.retrain = prune, retrain
        self.tasks = 0  # tasks finished (pruned)
        self.retraining = False

    def attach(self, agent: Agent) -> None:
        super().attach(agent)
        trunk = agent.actor.trunk
        self.weights = {f"trunk.{n}": p for n, p in trunk.named_parameters() if p.dim() > 1}
        self.biases = [p for p in trunk.parameters() if p.dim() <= 1]
        if not self.weights:
            raise ConfigError("packnet prunes the actor's hidden layers and it has none: give the agent `hidden` "
                              "layers", "packnet")
        self.owner = {n: torch.zeros_like(p, dtype=torch.uint8) for n, p in self.weights.items()}
        self.trainable: dict[str, Tensor] = {}  # written by the library's pruning step (`after_task`), unused here

    def after_backward(self) -> None:
        for n, p in self.weights.items():
            if p.grad is not None:  # the free weights; while retraining, the task's own
                p.grad.mul_(self.owner[n] == (self.tasks + 1 if self.retraining else 0))
        if self.tasks:
            for p in self.biases:
                if p.grad is not None:
                    p.grad.zero_()

    def after_task(self, task: int) -> None:
        # the library's pruning step, which reads and writes `weights`, `owner`, `prune` and `trainable`: of each
        # layer's free weights the `prune` fraction of smallest magnitude is set to 0 and released, the rest kept
        ImagePackNet.prune_weights(self, self.tasks + 1)  # type: ignore[arg-type]
        steps = round(self.retrain * self.agent.task_steps)
        if steps:
            self.retraining = True
            try:
                self.agent.begin_task(task, keep_buffer=True)
                self.agent.train_task(task, steps, lambda done: None)
            finally:
                self.retraining = False
        self.tasks += 1

    @contextlib.contextmanager
    def evaluating(self, task: int) -> Iterator[None]:
        """A finished task j is evaluated with the weights of tasks 0..j (w · [1 <= owner <= j + 1])."""
        if task >= self.tasks:
            yield
            return
        kept = {n: p.detach().clone() for n, p in self.weights.items()}
        with torch.no_grad():
            for n, p in self.weights.items():
                p.mul_((self.owner[n] >= 1) & (self.owner[n] <= task + 1))
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in self.weights.items():
                    p.copy_(kept[n])

    def state_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, **{f"owner.{n}": o for n, o in self.owner.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tasks = int(state["tasks"])
        self.owner = {n: o.to(torch.uint8) for n, o in strip_prefix(state, "owner.").items()}


def _arguments(cls: type) -> list[str]:
    """The keyword arguments of a strategy class's `__init__`."""
    return list(inspect.signature(cls).parameters)


def make_strategies(spec: str, algo: str, options: dict[str, dict[str, Any]] | None = None) -> list[RLStrategy]:
    """The strategies of `spec` ("ewc", "ewc+multihead"), with their `options` ({name: {argument: value}});
    ConfigError for a name with no RL version or one the algorithm cannot use."""
    out = []
    for name in spec.split("+"):
        if name not in RL_STRATEGIES:
            from ..strategies import STRATEGIES

            if name in STRATEGIES:
                raise ConfigError(f"strategy {name!r} does not support reinforcement learning: choose from "
                                  f"{', '.join(RL_STRATEGIES.names())}", "strategy")
        cls = RL_STRATEGIES.get(name).factory
        if algo not in cls.algos:
            raise ConfigError(f"strategy {name!r} needs {' or '.join(sorted(cls.algos))}, not {algo}: "
                              f"{'an on-policy learner trains on its fresh rollouts only' if algo == 'ppo' else ''}"
                              .rstrip(": "), "strategy")
        given = (options or {}).get(name, {})
        for key in given:
            if key not in _arguments(cls):
                raise ConfigError(f"strategy {name!r} has no option `{key}`", "strategy_options")
        out.append(cls(**given))
    return out
