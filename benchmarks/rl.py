"""Single-task correctness of the RL agents before any strategy is compared (issue 26): PPO on CartPole-v1
must reach a return >= 475 and SAC on Pendulum-v1 >= -200, within the step budgets rl-baselines3-zoo's tuned
runs use (PPO: 100,000 steps; SAC: 20,000 steps). Each seed learns the first task of `cartpole-physics`
(CartPole-v1, default physics) or `pendulum-gravity` (Pendulum-v1, g = 10) alone; the final return is the
mean over `--episodes` evaluation episodes with the deterministic policy, and the target is met when its
mean over the seeds is (as published results average over runs); the seeds meeting it alone are counted.
Prints one JSON line per seed (return at each evaluation point, environment steps, seconds, steps/s) and a
summary line.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rl.py --algo ppo [--steps 100000] [--seeds 3]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rl.py --algo sac [--steps 20000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from lifelong.rl import run_sequence, sequence

TARGETS = {"ppo": ("cartpole-physics", 100_000, 475.0), "sac": ("pendulum-gravity", 20_000, -200.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=sorted(TARGETS), default="ppo")
    parser.add_argument("--steps", type=int, help="environment steps (default: the published budget)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--evals", type=int, default=10, help="evaluation points during training")
    args = parser.parse_args()
    name, budget, target = TARGETS[args.algo]
    steps = args.steps or budget
    finals = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        out = run_sequence(sequence(name, tasks=1), args.algo, "naive", steps, seed, args.evals, args.episodes)
        seconds = time.perf_counter() - t0
        finals.append(out["returns"][-1][0])
        print(json.dumps({"algo": args.algo, "seed": seed, "steps": out["steps"],
                          "returns": [round(r[0], 1) for r in out["returns"]], "env_steps": out["env_steps"],
                          "seconds": round(seconds, 1), "train_seconds": round(out["train_seconds"], 1),
                          "steps_per_second": round(out["env_steps"] / out["train_seconds"]),
                          "threads": torch.get_num_threads()}), flush=True)
    mean = statistics.mean(finals)
    print(f"{args.algo} on {name}'s first task, {steps} steps, {args.seeds} seeds: final return mean {mean:.1f} "
          f"(target >= {target}: {'PASS' if mean >= target else 'FAIL'}), seeds at or above it "
          f"{sum(f >= target for f in finals)}/{len(finals)}, min {min(finals):.1f}")


if __name__ == "__main__":
    main()
