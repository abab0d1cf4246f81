"""PPO (discrete actions) and SAC (continuous actions) on torchrl's loss modules, in a short loop of our own.

torchrl gives the losses (`ClipPPOLoss`, `SACLoss`: a TensorDict of loss terms), the advantage estimator
(`GAE`), the target-network update (`SoftUpdate`) and the replay buffer (`ReplayBuffer` over a
`LazyTensorStorage`); this module steps the Gymnasium environments, sums the loss terms and the strategies'
extra terms (`RLStrategy.loss`), takes the gradient step with the strategies' hooks in between (`add_grad`,
`after_backward`, `after_step`), and keeps the state a strategy reads: the actor (`actor`, a `nets.Heads`),
the policy's Fisher on visited states (`policy_fisher`), the replay buffer (`buffer`, written in reservoir
order: `remember`).

Hyper-parameters default to rl-baselines3-zoo's tuned values for CartPole-v1 (PPO: 8 environments x 32
steps, 20 epochs, GAE λ 0.8, γ 0.98, lr 1e-3 and clip 0.2 annealed linearly to 0 over each task; SB3's
orthogonal initialisation) and
Pendulum-v1 (SAC: lr 1e-3, two 256-unit ReLU layers, batch 256, τ 0.005, γ 0.99, 100 random steps first).
The optimiser's state is reset at each task (as Continual World does).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential
from torch import Tensor, nn
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss, SACLoss, SoftUpdate, ValueEstimators
from torchrl.objectives.value import GAE

from ..checkpoint import strip_prefix
from ..errors import TrainingError
from ..strategies.importance import fisher_sums, grad_stats
from .envs import Sequence
from .nets import Bound, Heads, orthogonal

if TYPE_CHECKING:
    from .strategies import RLStrategy

if "RL_LOGGING_LEVEL" not in os.environ:  # torchrl's INFO lines ("Initialized LazyTensorStorage") are noise here
    logging.getLogger("torchrl").setLevel(logging.WARNING)

PPO_DEFAULTS: dict[str, Any] = {"n_envs": 8, "n_steps": 32, "batch_size": 256, "epochs": 20, "gamma": 0.98,
                                "gae_lambda": 0.8, "lr": 1e-3, "clip": 0.2, "entropy": 0.0, "vf_coef": 0.5,
                                "max_grad_norm": 0.5, "hidden": (64, 64)}
SAC_DEFAULTS: dict[str, Any] = {"lr": 1e-3, "batch_size": 256, "gamma": 0.99, "tau": 0.005, "learning_starts": 100,
                                "buffer_size": 1_000_000, "hidden": (256, 256)}
FISHER_STATES = 2048  # the last states of a task kept for its Fisher (`visited`)


def buffer_state(buffer: ReplayBuffer, prefix: str) -> dict[str, Tensor]:
    """The transitions `buffer` holds, as tensors named `prefix` + their flattened keys."""
    if not len(buffer):
        return {}
    kept = buffer.storage.get(torch.arange(len(buffer))).flatten_keys(".")
    return {f"{prefix}{k}": v for k, v in kept.items()}


def load_buffer(buffer: ReplayBuffer, state: dict[str, Any], prefix: str) -> None:
    """Empty `buffer` and write back the transitions `buffer_state` gave, in their order."""
    buffer.empty()
    kept = strip_prefix(state, prefix)
    if kept:
        buffer.extend(TensorDict(kept, [len(next(iter(kept.values())))]).unflatten_keys("."))


def env_seed(seed: int, task: int, copy: int, evaluation: bool = False) -> int:
    """The seed of a task's `copy`-th environment (training) or `copy`-th evaluation episode."""
    return (1_000_003 if evaluation else 0) + seed * 10_007 + task * 101 + copy


class Agent:
    """What the continual loop and the strategies need of an agent. `heads`: 1 (shared) or one per task."""

    algo: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]
    actor: Heads
    loss_module: nn.Module

    def __init__(self, seq: Sequence, heads: int, seed: int, strategies: list[RLStrategy], **options: Any) -> None:
        self.seq, self.seed, self.strategies = seq, seed, strategies
        self.hp = {**self.defaults, **options}
        self.obs_size = seq.observation_size()
        self.heads = heads
        self.visited = torch.zeros(FISHER_STATES, self.obs_size)
        self.n_visited = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.env_steps = 0
        self.task_steps = 0  # the steps of the task learnt last (`train_task`)
        torch.manual_seed(seed)

    def head_sizes(self, each: list[int]) -> list[int]:
        return each[: self.heads] if self.heads > 1 else each[:1]

    def task_ids(self, task: int, n: int) -> Tensor:
        return torch.full((n,), task, dtype=torch.long)

    def begin_task(self, task: int, keep_buffer: bool = False) -> None:
        """A new optimiser (its moments reset) and an empty record of visited states; an off-policy agent
        empties its replay buffer unless `keep_buffer`."""
        self.optimizer = torch.optim.Adam(self.loss_module.parameters(), lr=self.hp["lr"])
        self.n_visited = 0

    def visit(self, obs: Tensor) -> None:
        """Keep the newest FISHER_STATES observations of the task (a ring)."""
        rows = obs[-len(self.visited):]
        self.visited[(self.n_visited + torch.arange(len(rows))) % len(self.visited)] = rows
        self.n_visited += len(rows)

    def states(self) -> Tensor:
        return self.visited[: min(self.n_visited, len(self.visited))]

    def update(self, loss: Tensor, batch: TensorDict) -> None:
        """One gradient step on `loss` plus the strategies' terms, with their gradient hooks."""
        for strategy in self.strategies:
            extra = strategy.loss(batch)
            if extra is not None:
                loss = loss + extra
        if not torch.isfinite(loss):
            raise TrainingError(f"the {self.algo} loss became {loss.item()}: lower the learning rate or the "
                                "strategy's weight")
        assert self.optimizer is not None, "begin_task comes first"
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for strategy in self.strategies:
            strategy.add_grad()
        for strategy in self.strategies:
            strategy.after_backward()
        if self.hp.get("max_grad_norm"):
            nn.utils.clip_grad_norm_(self.loss_module.parameters(), self.hp["max_grad_norm"])
        self.optimizer.step()
        for strategy in self.strategies:
            strategy.after_step()

    @torch.no_grad()
    def act(self, obs: Tensor, task: int) -> Tensor:
        """The deterministic action (evaluation): the most likely one, or the squashed mean."""
        raise NotImplementedError

    def train_task(self, task: int, steps: int, progress: Callable[[int], None]) -> None:
        """Learn `task` for `steps` environment steps, calling `progress(steps so far)` after each update."""
        raise NotImplementedError

    def policy_fisher(self, states: Tensor, task: int) -> dict[str, Tensor]:
        """The diagonal Fisher information of the policy's action distribution, averaged over `states` (the
        expectation over the policy's own actions, not over actions taken), per parameter of `actor`."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """What carries over from one task to the next (tensors, and JSON values): the networks, targets and
        temperature (the loss module's state), the environment steps so far. The optimiser is new at each
        task and each task's environments are seeded afresh, so neither is kept."""
        return {**{f"loss.{k}": v for k, v in self.loss_module.state_dict().items()}, "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_module.load_state_dict(strip_prefix(state, "loss."))
        self.env_steps = int(state["env_steps"])


class PPO(Agent):
    """PPO-clip (Schulman et al. 2017) with GAE, for discrete actions."""

    algo = "ppo"
    defaults = PPO_DEFAULTS

    def __init__(self, seq: Sequence, heads: int, seed: int, strategies: list[RLStrategy], **options: Any) -> None:
        super().__init__(seq, heads, seed, strategies, **options)
        hp, hidden = self.hp, tuple(self.hp["hidden"])
        self.actor = orthogonal(Heads(self.obs_size, hidden, self.head_sizes(seq.action_sizes())), 0.01)
        self.critic = orthogonal(Heads(self.obs_size, hidden, [1] * self.heads), 1.0)
        self.policy = ProbabilisticActor(TensorDictModule(self.actor, ["observation", "task"], ["logits"]),
                                         in_keys=["logits"], distribution_class=torch.distributions.Categorical,
                                         return_log_prob=True)
        value = ValueOperator(self.critic, in_keys=["observation", "task"])
        self.gae = GAE(gamma=hp["gamma"], lmbda=hp["gae_lambda"], value_network=value, average_gae=False)
        self.loss_module = self.ppo = ClipPPOLoss(self.policy, value, clip_epsilon=hp["clip"],
                                                  entropy_bonus=hp["entropy"] > 0, entropy_coeff=hp["entropy"] or None,
                                                  critic_coeff=hp["vf_coef"], loss_critic_type="l2",
                                                  normalize_advantage=True)

    @torch.no_grad()
    def act(self, obs: Tensor, task: int) -> Tensor:
        return self.actor(obs, self.task_ids(task, len(obs))).argmax(-1)

    def train_task(self, task: int, steps: int, progress: Callable[[int], None]) -> None:
        hp, opt = self.hp, self.optimizer
        assert opt is not None, "begin_task comes first"
        n_envs, n_steps = hp["n_envs"], hp["n_steps"]
        envs = [self.seq.make(task, env_seed(self.seed, task, k)) for k in range(n_envs)]
        obs = torch.as_tensor(np.stack([env.reset()[0] for env in envs]))
        tasks = self.task_ids(task, n_envs)
        done_steps = 0
        while done_steps < steps:
            frac = 1 - done_steps / steps  # linear annealing to 0 over the task
            opt.param_groups[0]["lr"] = hp["lr"] * frac
            self.ppo.clip_epsilon.fill_(hp["clip"] * frac)
            rollout, obs = self._collect(envs, obs, tasks, n_steps)
            done_steps += n_envs * n_steps
            self.env_steps += n_envs * n_steps
            with torch.no_grad():
                self.gae(rollout)
            flat = rollout.reshape(-1)
            for _ in range(hp["epochs"]):
                for idx in torch.randperm(len(flat)).split(hp["batch_size"]):
                    batch = flat[idx]
                    terms = self.loss_module(batch)
                    self.update(sum(v for k, v in terms.items() if k.startswith("loss_")), batch)
            progress(min(done_steps, steps))
        for env in envs:
            env.close()

    @torch.no_grad()
    def _collect(self, envs: list[Any], obs: Tensor, tasks: Tensor, n_steps: int) -> tuple[TensorDict, Tensor]:
        """`n_steps` steps of every environment as a TensorDict of shape (n_envs, n_steps), and the next
        observations; an episode that ends is reset, its true last observation kept under ("next", ...)."""
        steps = []
        for _ in range(n_steps):
            td = self.policy(TensorDict({"observation": obs, "task": tasks}, [len(envs)]))
            self.visit(obs)
            nxt, rewards, terms, dones = [], [], [], []
            for env, action in zip(envs, td["action"].tolist()):
                o, r, terminated, truncated, _ = env.step(action)
                nxt.append(o)
                rewards.append(r)
                terms.append(terminated)
                dones.append(terminated or truncated)
            td["next"] = TensorDict({
                "observation": torch.as_tensor(np.stack(nxt)), "task": tasks,
                "reward": torch.tensor(rewards, dtype=torch.float32).unsqueeze(-1),
                "terminated": torch.tensor(terms).unsqueeze(-1), "done": torch.tensor(dones).unsqueeze(-1)},
                [len(envs)])
            obs = torch.as_tensor(np.stack([env.reset()[0] if d else o for env, o, d in zip(envs, nxt, dones)]))
            steps.append(td)
        return torch.stack(steps, 1), obs

    def policy_fisher(self, states: Tensor, task: int) -> dict[str, Tensor]:
        """Categorical policy: sum_a π(a|s) (∂ log π(a|s)/∂θ)^2, exactly (`importance.fisher_sums`, expected)."""
        bound = Bound(self.actor, task)
        zeros = torch.zeros(len(states), dtype=torch.long)
        sums = fisher_sums(bound, states, zeros, zeros, lambda logits, t: logits, kind="expected")
        return {k: v / len(states) for k, v in strip_prefix(sums, "net.").items()}


class SAC(Agent):
    """Soft actor-critic (Haarnoja et al. 2018, with the learnt temperature), for continuous actions."""

    algo = "sac"
    defaults = SAC_DEFAULTS

    def __init__(self, seq: Sequence, heads: int, seed: int, strategies: list[RLStrategy], **options: Any) -> None:
        super().__init__(seq, heads, seed, strategies, **options)
        hp, hidden = self.hp, tuple(self.hp["hidden"])
        dim = seq.action_sizes()[0]
        self.low, self.high = seq.action_bounds()
        self.actor = Heads(self.obs_size, hidden, [2 * dim] * self.heads, "relu")
        self.extract = NormalParamExtractor()
        self.policy = ProbabilisticActor(
            TensorDictSequential(TensorDictModule(self.actor, ["observation", "task"], ["params"]),
                                 TensorDictModule(self.extract, ["params"], ["loc", "scale"])),
            in_keys=["loc", "scale"], distribution_class=TanhNormal,
            distribution_kwargs={"low": self.low, "high": self.high, "tanh_loc": False}, return_log_prob=True)
        critics = [ValueOperator(Heads(self.obs_size + dim, hidden, [1] * self.heads, "relu"),
                                 in_keys=["observation", "task", "action"], out_keys=["state_action_value"])
                   for _ in range(2)]
        self.loss_module = self.sac = SACLoss(self.policy, critics, num_qvalue_nets=2, loss_function="l2",
                                              target_entropy=-float(dim), delay_qvalue=True)
        self.sac.make_value_estimator(ValueEstimators.TD0, gamma=hp["gamma"])
        self.target = SoftUpdate(self.loss_module, tau=hp["tau"])
        self.buffer = ReplayBuffer(storage=LazyTensorStorage(hp["buffer_size"]), batch_size=hp["batch_size"])
        self.seen = 0  # transitions offered to the buffer since it was last emptied (reservoir sampling)
        self.rng = torch.Generator().manual_seed(seed)
        self.dim = dim

    def begin_task(self, task: int, keep_buffer: bool = False) -> None:
        super().begin_task(task, keep_buffer)
        if not keep_buffer:
            self.buffer.empty()
            self.seen = 0

    def remember(self, transition: TensorDict) -> None:
        """Reservoir sampling (Vitter 1985): every transition offered since the buffer was emptied stays in
        it with the same probability, capacity / offered; until it is full, each one is kept."""
        capacity = self.hp["buffer_size"]
        slot = self.seen if self.seen < capacity else int(torch.randint(self.seen + 1, (1,), generator=self.rng))
        self.seen += 1
        if slot < capacity:
            self.buffer.storage.set(slot, transition)

    def state_dict(self) -> dict[str, Any]:
        """The base's, and the replay buffer's transitions, the reservoir's count and random state."""
        return super().state_dict() | {"seen": self.seen, "reservoir_rng": self.rng.get_state()} | \
            buffer_state(self.buffer, "buffer.")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.seen = int(state["seen"])
        self.rng.set_state(state["reservoir_rng"])
        load_buffer(self.buffer, state, "buffer.")

    @torch.no_grad()
    def act(self, obs: Tensor, task: int) -> Tensor:
        loc, _ = self.extract(self.actor(obs, self.task_ids(task, len(obs))))
        return self.low + (self.high - self.low) * (torch.tanh(loc) + 1) / 2

    def train_task(self, task: int, steps: int, progress: Callable[[int], None]) -> None:
        hp = self.hp
        env = self.seq.make(task, env_seed(self.seed, task, 0))
        obs = torch.as_tensor(env.reset()[0])
        tasks = self.task_ids(task, 1)
        for step in range(steps):
            if step < hp["learning_starts"]:
                action = torch.as_tensor(env.action_space.sample(), dtype=torch.float32)
            else:
                with torch.no_grad():
                    action = self.policy(TensorDict({"observation": obs[None], "task": tasks}, [1]))["action"][0]
            o, r, terminated, truncated, _ = env.step(action.numpy())
            self.visit(obs[None])
            nxt = torch.as_tensor(o)
            self.remember(TensorDict({
                "observation": obs, "task": tasks[0], "action": action,
                "next": {"observation": nxt, "task": tasks[0], "reward": torch.tensor([r], dtype=torch.float32),
                         "terminated": torch.tensor([terminated]), "done": torch.tensor([terminated or truncated])}},
                []))
            obs = torch.as_tensor(env.reset()[0]) if terminated or truncated else nxt
            self.env_steps += 1
            if step >= hp["learning_starts"] and len(self.buffer) >= hp["batch_size"]:
                batch = self.buffer.sample()
                terms = self.loss_module(batch)
                self.update(terms["loss_actor"] + terms["loss_qvalue"] + terms["loss_alpha"], batch)
                self.target.step()
            progress(step + 1)
        env.close()

    def policy_fisher(self, states: Tensor, task: int) -> dict[str, Tensor]:
        """Gaussian policy before the tanh (a bijection, which leaves the Fisher unchanged): per action
        dimension d, (∂μ_d/∂θ)^2 / σ_d^2 + 2 (∂ log σ_d/∂θ)^2, as Continual World computes it for the actor."""
        bound = Bound(self.actor, task)
        zeros = torch.zeros(len(states), dtype=torch.long)
        total: dict[str, Tensor] = {}
        for d in range(self.dim):
            def mean(out: Tensor, y: Tensor, t: Tensor, d: int = d) -> Tensor:
                loc, scale = self.extract(out)
                return loc[:, d] / scale[:, d].detach()

            def log_scale(out: Tensor, y: Tensor, t: Tensor, d: int = d) -> Tensor:
                return math.sqrt(2) * self.extract(out)[1][:, d].log()

            for objective in (mean, log_scale):
                for k, v in grad_stats(bound, states, zeros, zeros, objective, "square").items():
                    total[k] = total.get(k, 0) + v
        return {k: v / len(states) for k, v in strip_prefix(total, "net.").items()}


ALGOS: dict[str, type[Agent]] = {"ppo": PPO, "sac": SAC}
