"""Continual reinforcement learning (optional extra `rl`: torchrl, gymnasium): sequences of Gymnasium tasks
(`envs`), PPO and SAC on torchrl's losses and replay buffer in a loop of our own (`agents`, `loop`), strategies
as extra loss terms and hooks (`strategies`), and the Continual World metrics (`metrics`). See docs/rl.md.

    import lifelong.rl as rl
    seq = rl.sequence("cartpole-physics")
    curves = rl.run_sequence(seq, "ppo", "ewc", steps_per_task=100_000, seed=0)
"""

from .envs import SEQUENCES, Sequence, TaskSpec, sequence
from .loop import build_agent, evaluate, run_sequence
from .strategies import RL_STRATEGIES, RLStrategy, make_strategies

__all__ = ["RL_STRATEGIES", "SEQUENCES", "RLStrategy", "Sequence", "TaskSpec", "build_agent", "evaluate",
           "make_strategies", "run_sequence", "sequence"]
