"""The evaluation protocol of PEERS.md (the peer reference notes), in one place so all are scored alike.

Protocol: the final actor acts deterministically (no exploration noise) for 10 episodes; episode i
starts from `env.reset(seed=1000 + i)`; the score is the mean undiscounted return.

This module is imported by child scripts that run under *different* interpreters (the project venv
with gymnasium 1.x, the CleanRL venv with gymnasium 0.29), so it needs only numpy and gymnasium, whose
`reset`/`step` API is the same in both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

EVAL_SEEDS: tuple[int, ...] = tuple(range(1000, 1010))
"""Reset seeds of the 10 evaluation episodes; a Pendulum return depends mostly on its start state."""

PROTOCOL_TEXT = "final actor, deterministic (no noise), 10 episodes, env reset with seeds 1000..1009"


def evaluate_policy(
    act: Callable[[np.ndarray], np.ndarray],
    env_id: str,
    seeds: Sequence[int] = EVAL_SEEDS,
) -> dict[str, Any]:
    """Run one episode per reset seed and summarise the returns.

    `act` maps one observation (shape `(obs_dim,)`) to one action in the env's own bounds
    (shape `(act_dim,)`). Returns `{"mean", "std", "returns", "lengths", "seeds"}`, the same shape
    as `final_eval` in ddpg-cli's `summary.json`.
    """
    env = gym.make(env_id)
    returns: list[float] = []
    lengths: list[int] = []
    try:
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            episode_return, length, done = 0.0, 0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act(obs))
                episode_return += float(reward)
                length += 1
                done = bool(terminated or truncated)
            returns.append(episode_return)
            lengths.append(length)
    finally:
        env.close()
    return {
        "mean": float(np.mean(returns)),
        "std": float(np.std(returns)),
        "returns": returns,
        "lengths": lengths,
        "seeds": list(seeds),
    }
