"""Sequences of reinforcement-learning tasks: Gymnasium classic-control environments whose physics change
between tasks (as CARL's contextual environments, Benjamins et al. 2023), or different environments.

A task is an environment id and the physics parameters set on its unwrapped environment after `make`
(CartPole's `length`, `gravity`, `masspole`; Pendulum's `g`); each parameter name is checked against the
environment's own (`PHYSICS`) and derived quantities (CartPole's `total_mass`, `polemass_length`) are
recomputed. Tasks of one sequence whose observation sizes differ are zero-padded to the largest size only
when asked (`pad=True`); their action spaces may differ (the agent then has a head per task). Every
observation and reward is checked to be finite (a physics setting that blows the simulation up is refused
by name, not learnt from). Environments are seeded from (seed, task, copy): the same seed gives the same
episodes. Scores are normalised per base environment (`BOUNDS`) for the Continual World metrics.

    SEQUENCES: cartpole-physics, pendulum-gravity, classic-discrete      sequence(name, pad) -> Sequence
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import ConfigError
from ..registry import Registry

# the physics parameters a task may set, per environment id (attributes of the unwrapped environment)
PHYSICS: dict[str, tuple[str, ...]] = {
    "CartPole-v1": ("gravity", "masscart", "masspole", "length", "force_mag", "tau"),
    "Pendulum-v1": ("g", "m", "l", "max_speed", "max_torque", "dt"),
    "Acrobot-v1": ("LINK_LENGTH_1", "LINK_LENGTH_2", "LINK_MASS_1", "LINK_MASS_2", "LINK_COM_POS_1",
                   "LINK_COM_POS_2", "LINK_MOI", "dt"),
    "MountainCar-v0": ("force", "gravity"),
}
# (low, high) of the normalised score (R - low) / (high - low), clipped to [0, 1] as a success rate: low is
# about a uniformly random policy's return on the default physics, high a solved agent's (CartPole's maximum;
# the others: returns that SAC/PPO reach in published runs, e.g. rl-baselines3-zoo's benchmark table)
BOUNDS: dict[str, tuple[float, float]] = {
    "CartPole-v1": (20.0, 500.0), "Pendulum-v1": (-1200.0, -150.0),
    "Acrobot-v1": (-500.0, -80.0), "MountainCar-v0": (-200.0, -110.0),
}


def _cartpole_derived(env: Any) -> None:
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


DERIVED: dict[str, Callable[[Any], None]] = {"CartPole-v1": _cartpole_derived}


@dataclass(frozen=True)
class TaskSpec:
    """One task: a Gymnasium environment id and the physics parameters set on it (name -> value)."""

    env_id: str
    physics: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """E.g. "CartPole-v1 length=1.0" (or just the id with the default physics)."""
        return " ".join([self.env_id, *(f"{k}={v:g}" for k, v in self.physics.items())])

    def check(self) -> None:
        """ConfigError for an unknown environment or physics parameter, or a value that is not a finite number > 0."""
        if self.env_id not in PHYSICS:
            raise ConfigError(f"unknown environment {self.env_id!r} in `sequence`: choose one of "
                              f"{', '.join(PHYSICS)}", "sequence")
        for key, value in self.physics.items():
            if key not in PHYSICS[self.env_id]:
                raise ConfigError(f"{self.env_id} has no physics parameter {key!r}: choose from "
                                  f"{', '.join(PHYSICS[self.env_id])}", "sequence")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"physics parameter {key} of {self.env_id} must be a finite number > 0, "
                                  f"got {value!r}", "sequence")

    def make(self, seed: int, obs_size: int | None = None) -> gym.Env:
        """The environment with this task's physics, seeded (reset with `seed` on its first reset); observations
        zero-padded to `obs_size` when given; every step checked for non-finite observations and rewards."""
        env = gym.make(self.env_id)
        inner = env.unwrapped
        for key, value in self.physics.items():
            setattr(inner, key, float(value))
        if self.env_id in DERIVED:
            DERIVED[self.env_id](inner)
        env.action_space.seed(seed)
        return Checked(env, self.name, seed, obs_size)

    def bounds(self) -> tuple[float, float]:
        return BOUNDS[self.env_id]


class Checked(gym.Wrapper):
    """Seeds the first reset, zero-pads observations to `obs_size`, and raises ConfigError (naming the task)
    when an observation or reward is not finite."""

    def __init__(self, env: gym.Env, name: str, seed: int, obs_size: int | None) -> None:
        super().__init__(env)
        self.task_name, self.steps = name, 0
        self._seed: int | None = seed
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box), "classic-control observations are boxes"
        self.pad = 0 if obs_size is None else obs_size - _size(space)
        if self.pad:
            low = np.concatenate([space.low, np.zeros(self.pad, np.float32)])
            high = np.concatenate([space.high, np.zeros(self.pad, np.float32)])
            self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if not np.isfinite(obs).all():
            raise ConfigError(f"task {self.task_name!r} gave a non-finite observation after {self.steps} steps: "
                              "choose physics parameters the simulation can follow", "sequence")
        return np.concatenate([obs, np.zeros(self.pad, np.float32)]) if self.pad else obs

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        if self._seed is not None:
            kwargs.setdefault("seed", self._seed)
            self._seed = None
        obs, info = self.env.reset(**kwargs)
        return self._obs(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if not math.isfinite(float(reward)):
            raise ConfigError(f"task {self.task_name!r} gave a non-finite reward after {self.steps} steps: "
                              "choose physics parameters the simulation can follow", "sequence")
        return self._obs(obs), float(reward), bool(terminated), bool(truncated), info


@dataclass(frozen=True)
class Sequence:
    """Tasks met one after the other. `obs_size`: the padded observation size (None: no padding; then every
    task's observation has the same size). `n_actions` per task: an int (discrete) or None (continuous)."""

    name: str
    tasks: tuple[TaskSpec, ...]
    obs_size: int | None = None

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError(f"sequence {self.name!r} has no tasks", "sequence")
        for task in self.tasks:
            task.check()
        sizes = {t.name: _size(_space(t.env_id)[0]) for t in self.tasks}
        kinds = {isinstance(_space(t.env_id)[1], gym.spaces.Discrete) for t in self.tasks}
        if len(kinds) > 1:
            raise ConfigError(f"sequence {self.name!r} mixes discrete and continuous actions: one algorithm "
                              "cannot act in both", "sequence")
        if self.obs_size is None and len(set(sizes.values())) > 1:
            raise ConfigError(f"the tasks of {self.name!r} observe different sizes ({_sizes(sizes)}): pass "
                              "`pad` to zero-pad them to the largest", "pad")
        if self.obs_size is not None and self.obs_size < max(sizes.values()):
            raise ConfigError(f"`obs_size` {self.obs_size} is smaller than a task's observation ({_sizes(sizes)})",
                              "pad")

    @property
    def discrete(self) -> bool:
        return isinstance(_space(self.tasks[0].env_id)[1], gym.spaces.Discrete)

    def observation_size(self) -> int:
        return self.obs_size or _size(_space(self.tasks[0].env_id)[0])

    def action_sizes(self) -> list[int]:
        """Per task: the number of discrete actions, or the dimension of the continuous action."""
        spaces = [_space(t.env_id)[1] for t in self.tasks]
        return [int(s.n) if isinstance(s, gym.spaces.Discrete) else _size(s) for s in spaces]

    def action_bounds(self) -> tuple[float, float]:
        """(low, high) of a continuous action (the first task's, the same for all of a physics sequence)."""
        space = _space(self.tasks[0].env_id)[1]
        assert isinstance(space, gym.spaces.Box), "a continuous sequence"
        return float(space.low.min()), float(space.high.max())

    @property
    def heterogeneous(self) -> bool:
        """Whether the tasks are different environments (then the agent needs a head per task)."""
        return len({t.env_id for t in self.tasks}) > 1

    def make(self, task: int, seed: int) -> gym.Env:
        return self.tasks[task].make(seed, self.obs_size)


def _space(env_id: str) -> tuple[gym.Space, gym.Space]:
    env = gym.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _size(space: gym.Space) -> int:
    """The length of a flat (Box) observation or action."""
    assert space.shape is not None and len(space.shape) == 1, "classic-control spaces are flat"
    return int(space.shape[0])


def _sizes(sizes: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sizes.items())


SEQUENCES = Registry("sequence")
SEQUENCES.register("cartpole-physics", "CartPole-v1, 5 tasks: default, pole length 1.0, gravity 20, pole mass "
                   "1.0, length 0.25 with gravity 4.9 (discrete)")((
    TaskSpec("CartPole-v1"), TaskSpec("CartPole-v1", {"length": 1.0}), TaskSpec("CartPole-v1", {"gravity": 20.0}),
    TaskSpec("CartPole-v1", {"masspole": 1.0}), TaskSpec("CartPole-v1", {"length": 0.25, "gravity": 4.9})))
SEQUENCES.register("pendulum-gravity", "Pendulum-v1, 4 tasks: g = 10, 4, 16, 7 (continuous)")(
    tuple(TaskSpec("Pendulum-v1", {"g": g}) for g in (10.0, 4.0, 16.0, 7.0)))
SEQUENCES.register("classic-discrete", "CartPole-v1, Acrobot-v1, MountainCar-v0: different observations (needs "
                   "pad) and actions (a head per task)")(
    (TaskSpec("CartPole-v1"), TaskSpec("Acrobot-v1"), TaskSpec("MountainCar-v0")))


def sequence(name: str, pad: bool = False, tasks: int | None = None) -> Sequence:
    """The registered sequence `name` (its first `tasks` tasks, if given), observations zero-padded to the
    largest size with `pad`."""
    specs = SEQUENCES.get(name).factory
    if tasks is not None:
        if isinstance(tasks, bool) or not isinstance(tasks, int) or not 1 <= tasks <= len(specs):
            raise ConfigError(f"`tasks` of {name} must be a whole number from 1 to {len(specs)}, got {tasks!r}",
                              "tasks")
        specs = specs[:tasks]
    size = max(_size(_space(t.env_id)[0]) for t in specs) if pad else None
    return Sequence(name, specs, size)
