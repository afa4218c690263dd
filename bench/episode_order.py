"""Does an env's episode depend on the episodes played before it in the same env?

The evaluation protocol plays reset seeds 1000, 1001, ... in turn in one env made for that
evaluation (as Stable-Baselines3's and CleanRL's evaluations do). Where an env keeps state across
resets, an episode's return then depends on its place in that order, not only on its reset seed.
This plays a run's final deterministic policy (the one `ddpg eval RUN_DIR` plays) both ways: the
episodes in turn in one env, and each in an env of its own; it prints each episode's two returns and
the first step at which their observations differ. MuJoCo's reset restores the whole simulator state,
so there both columns agree; BipedalWalker-v3 keeps its Box2D world across resets, and they do not.

Usage (from the repo root):
    python bench/episode_order.py runs/learning/bipedalwalker/base/seed-3 [--episodes 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from ddpg_cli.envs import make_env
from ddpg_cli.evaluate import evaluate
from ddpg_cli.policy import load_policy


class Recording(gym.Wrapper):
    """Keeps every observation the env returns, so two plays of one start can be compared step by step."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.seen: list[np.ndarray] = []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.seen = [obs]
        return obs, info

    def step(self, action):
        obs, *rest = self.env.step(action)
        self.seen.append(obs)
        return (obs, *rest)


def play(policy, env: Recording, seed: int) -> tuple[float, np.ndarray]:
    """One deterministic episode from `seed` (the evaluation's loop): its return and every observation."""
    return evaluate(policy, env, 1, seed).returns[0], np.asarray(env.seen)


def first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
    steps = min(len(a), len(b))
    differs = np.any(a[:steps] != b[:steps], axis=1)
    if differs.any():
        return int(np.argmax(differs))
    return None if len(a) == len(b) else steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_policy(args.run_dir, "last")
    first = loaded.config.eval.seed  # the protocol's reset seeds: first, first + 1, ...
    shared = Recording(make_env(loaded.config.env))
    print(f"{args.run_dir} at {loaded.step:,} steps, reset seeds {first}-{first + args.episodes - 1}")
    print(f"{'seed':>6} {'in turn':>10} {'own env':>10}  first step that differs")
    in_turn, alone = [], []
    for seed in range(first, first + args.episodes):
        turn_return, turn_seen = play(loaded.policy, shared, seed)
        own = Recording(make_env(loaded.config.env))
        own_return, own_seen = play(loaded.policy, own, seed)
        own.close()
        in_turn.append(turn_return)
        alone.append(own_return)
        step = first_difference(turn_seen, own_seen)
        print(f"{seed:>6} {turn_return:>10.1f} {own_return:>10.1f}  {'-' if step is None else step}")
    shared.close()
    print(f"{'mean':>6} {statistics.fmean(in_turn):>10.1f} {statistics.fmean(alone):>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
