"""Deterministic evaluation: the policy without noise, episode i reset with seed `seed + i`.

Used by `ddpg train` (periodic and final evaluation), `ddpg eval` and `bench/policy_spread.py`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

Policy = Callable[[torch.Tensor], torch.Tensor]  # raw obs [B, obs_dim] -> env actions [B, action_dim]


@dataclass
class EvalResult:
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    seed: int = 0
    # how each episode ended: by the task (a fall, a crash, a landing) rather than the time limit, and
    # its last reward (LunarLander ends a crash with -100, a landing with +100); not in as_dict()
    terminated: list[bool] = field(default_factory=list)
    last_rewards: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.returns)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.returns) if len(self.returns) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "std": self.std,
            "min": min(self.returns),
            "max": max(self.returns),
            "episodes": len(self.returns),
            "seed": self.seed,
            "returns": self.returns,
            "lengths": self.lengths,
        }


@torch.inference_mode()
def evaluate(
    policy: Policy,
    env: gym.Env,
    episodes: int,
    seed: int,
    device: torch.device | str = "cpu",
    on_step: Callable[[gym.Env, int], None] | None = None,
) -> EvalResult:
    """Run `episodes` deterministic episodes. `on_step(env, t)` is called after each reset (t = 0) and
    step (t = the episode's steps so far); render uses it to grab frames."""
    result = EvalResult(seed=seed)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        if on_step is not None:
            on_step(env, 0)
        episode_return, length, done, reward, terminated = 0.0, 0, False, 0.0, False
        while not done:
            obs_tensor = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device).unsqueeze(0)
            action = policy(obs_tensor)[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            episode_return += float(reward)
            length += 1
            if on_step is not None:
                on_step(env, length)
            done = terminated or truncated
        result.returns.append(episode_return)
        result.lengths.append(length)
        result.terminated.append(bool(terminated))
        result.last_rewards.append(float(reward))
    return result
