"""The evaluation loop: reset seeds, returns, lengths, and how each episode ended."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from ddpg_cli.evaluate import evaluate


class Ledge(gym.Env):
    """Resets to obs [seed]; an even seed walks off the ledge on step 3 (reward -100, terminated), an odd
    one earns 1 a step until the time limit of 5 (truncated)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.seed_seen, self.t = seed, 0
        return np.array([seed], np.float32), {}

    def step(self, action):
        self.t += 1
        falls = self.seed_seen % 2 == 0 and self.t == 3
        return np.array([self.seed_seen], np.float32), -100.0 if falls else 1.0, falls, self.t == 5, {}


def test_evaluate_records_each_episode_and_how_it_ended() -> None:
    seen = []
    result = evaluate(lambda obs: (seen.append(float(obs[0, 0])), torch.zeros(1, 1))[1], Ledge(), 3, seed=10)
    assert seen[0] == 10.0 and {10.0, 11.0, 12.0} == set(seen)  # episode i resets with seed + i
    assert result.returns == [-98.0, 5.0, -98.0]
    assert result.lengths == [3, 5, 3]
    assert result.terminated == [True, False, True]
    assert result.last_rewards == [-100.0, 1.0, -100.0]
    assert result.as_dict()["mean"] == np.mean([-98.0, 5.0, -98.0])
    assert "terminated" not in result.as_dict()  # summary.json and evaluations.csv keep their format
