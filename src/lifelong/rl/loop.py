"""The continual RL loop: an agent learns the tasks of a sequence in turn, for `steps_per_task` environment
steps each, and is evaluated on every task (seen and unseen) at `evals_per_task` evenly spaced points of
each task and at the start: the curves the Continual World metrics are computed from (`rl.metrics`).

Evaluation runs `episodes` episodes of each task with the deterministic policy, from fixed seeds (the same
starts at every point, apart from the training environments' seeds), all episodes stepped together.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..checkpoint import States, split_state, strip_prefix
from ..configs import whole_numbers
from ..errors import ConfigError
from .agents import ALGOS, Agent, env_seed
from .envs import Sequence
from .metrics import normalise
from .strategies import RLStrategy, make_strategies


@torch.no_grad()
def evaluate(agent: Agent, seq: Sequence, task: int, episodes: int, seed: int) -> float:
    """The mean return of `episodes` episodes of `task` with the agent's deterministic policy (with the
    strategies' `evaluating` contexts)."""
    with contextlib.ExitStack() as stack:
        for s in agent.strategies:
            stack.enter_context(s.evaluating(task))
        return _episodes(agent, seq, task, episodes, seed)


def _episodes(agent: Agent, seq: Sequence, task: int, episodes: int, seed: int) -> float:
    envs = [seq.make(task, env_seed(seed, task, e, evaluation=True)) for e in range(episodes)]
    obs = np.stack([env.reset()[0] for env in envs])
    returns, alive = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while alive.any():
        actions = agent.act(torch.as_tensor(obs), task).numpy()
        for e in np.flatnonzero(alive):
            o, r, terminated, truncated, _ = envs[e].step(actions[e])
            obs[e], returns[e] = o, returns[e] + r
            alive[e] = not (terminated or truncated)
    for env in envs:
        env.close()
    return float(returns.mean())


def build_agent(seq: Sequence, algo: str, strategies: list[RLStrategy], seed: int,
                options: dict[str, Any] | None = None) -> Agent:
    """The agent of `algo` for `seq` (a head per task when the tasks' actions differ or a strategy asks),
    with the strategies attached."""
    if algo not in ALGOS:
        raise ConfigError(f"unknown algorithm {algo!r}: choose ppo (discrete actions) or sac (continuous)", "algo")
    if (algo == "ppo") != seq.discrete:
        want = "ppo" if seq.discrete else "sac"
        raise ConfigError(f"{seq.name} has {'discrete' if seq.discrete else 'continuous'} actions: use `algo` {want}",
                          "algo")
    heads = len(seq.tasks) if seq.heterogeneous or any(s.multihead for s in strategies) else 1
    extra: dict[str, Any] = {}
    for s in strategies:
        extra |= s.agent_options()
    agent = ALGOS[algo](seq, heads, seed, strategies, **{**extra, **(options or {})})
    for s in strategies:
        s.attach(agent)
    return agent


def run_sequence(seq: Sequence, algo: str, strategy: str, steps_per_task: int, seed: int, evals_per_task: int = 10,
                 episodes: int = 10, strategy_options: dict[str, dict[str, Any]] | None = None,
                 agent_options: dict[str, Any] | None = None, tasks: list[int] | None = None,
                 progress: Callable[[str], None] | None = None, states: States | None = None) -> dict[str, Any]:
    """Learn `tasks` of `seq` (default all, in order) with `strategy` ("ewc", "ewc+multihead"); returns the
    curves: "steps" (global step of each evaluation point), "returns" and "scores" (normalised) at each point
    of every task of `seq` (points x tasks; with `tasks` given, of those tasks only: a reference run),
    "env_steps", "train_seconds" and "eval_seconds". With `states`, the state at each task's end is saved
    there, and a run that finds one there continues from it, to the same numbers as an uninterrupted run."""
    whole_numbers({"steps_per_task": steps_per_task, "evals_per_task": evals_per_task, "episodes": episodes})
    if evals_per_task > steps_per_task:
        raise ConfigError(f"`evals_per_task` ({evals_per_task}) cannot exceed `steps_per_task` ({steps_per_task})",
                          "evals_per_task")
    strategies = make_strategies(strategy, algo, strategy_options)
    agent = build_agent(seq, algo, strategies, seed, agent_options)
    order = list(range(len(seq.tasks))) if tasks is None else tasks
    evaluated = list(range(len(seq.tasks))) if tasks is None else tasks
    steps: list[int] = []
    returns: list[list[float]] = []
    timing = {"train": 0.0, "eval": 0.0}

    def point(step: int) -> None:
        t0 = time.perf_counter()
        steps.append(step)
        returns.append([evaluate(agent, seq, j, episodes, seed) for j in evaluated])
        timing["eval"] += time.perf_counter() - t0
        if progress is not None:
            progress(f"step {step}: " + " ".join(f"{r:.1f}" for r in returns[-1]))

    done = _restore(states, agent, strategies, steps, returns, timing)
    if not done:
        point(0)
    for k, task in enumerate(order):
        if k < done:
            continue
        for s in strategies:
            s.before_task(task)
        agent.begin_task(task, keep_buffer=k > 0 and any(s.keeps_buffer for s in strategies))
        marks = [round((j + 1) * steps_per_task / evals_per_task) for j in range(evals_per_task)]
        t0 = [time.perf_counter()]

        def reached(done: int, k: int = k, marks: list[int] = marks, t0: list[float] = t0) -> None:
            while marks and done >= marks[0]:
                timing["train"] += time.perf_counter() - t0[0]
                point(k * steps_per_task + marks.pop(0))
                t0[0] = time.perf_counter()

        agent.train_task(task, steps_per_task, reached)
        agent.task_steps = steps_per_task
        for s in strategies:
            s.after_task(task)
        if states is not None:
            _save(states, agent, strategies, k + 1, steps, returns, timing)
    bounds = [seq.tasks[j].bounds() for j in evaluated]
    scores = np.stack([normalise(np.asarray(returns)[:, j], *bounds[j]) for j in range(len(bounds))], 1)
    return {"steps": steps, "returns": returns, "scores": scores.tolist(), "env_steps": agent.env_steps,
            "train_seconds": timing["train"], "eval_seconds": timing["eval"], "heads": agent.heads,
            "strategy_options": {s.name: s.options() for s in strategies}, "agent_options": agent.hp}


def _save(states: States, agent: Agent, strategies: list[RLStrategy], done: int, steps: list[int],
          returns: list[list[float]], timing: dict[str, float]) -> None:
    """The state after `done` tasks: the agent's, the strategies', torch's random state and the curves so far."""
    tensors, agent_values = split_state(agent.state_dict(), "agent.")
    values: dict[str, Any] = {"done": done, "steps": steps, "returns": returns, "timing": timing,
                              "agent": agent_values, "strategies": []}
    for i, s in enumerate(strategies):
        t, v = split_state(s.state_dict(), f"strategy{i}.")
        tensors |= t
        values["strategies"].append(v)
    states.save(tensors | {"rng.torch": torch.get_rng_state()}, values)


def _restore(states: States | None, agent: Agent, strategies: list[RLStrategy], steps: list[int],
             returns: list[list[float]], timing: dict[str, float]) -> int:
    """Load the newest state saved in `states` (filling the curves so far in place); the tasks it has done."""
    chain = states.latest() if states is not None else []
    if not chain:
        return 0
    _, tensors, values = chain[-1]
    agent.load_state_dict(strip_prefix(tensors, "agent.") | values["agent"])
    for i, s in enumerate(strategies):
        s.load_state_dict(strip_prefix(tensors, f"strategy{i}.") | values["strategies"][i])
    torch.set_rng_state(tensors["rng.torch"])
    steps += values["steps"]
    returns += values["returns"]
    timing |= values["timing"]
    return int(values["done"])
