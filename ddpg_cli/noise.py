"""Exploration noise in the normalised action space [-1, 1]: Gaussian, Ornstein-Uhlenbeck, none.

Each process draws from its own NumPy generator, so its state can be checkpointed and a resumed run
draws exactly the numbers the uninterrupted run would have. Sigma is a fraction of the half action
range; `sigma_at` gives its value on a schedule.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ddpg_cli.config import NoiseConfig


def sigma_at(step: int, config: NoiseConfig) -> float:
    """Sigma after `step` env steps: constant, or a linear / exponential move to `final_sigma`."""
    if config.schedule == "constant" or config.final_sigma is None:
        return config.sigma
    progress = min(step / config.schedule_steps, 1.0)
    if config.schedule == "linear":
        return config.sigma + progress * (config.final_sigma - config.sigma)
    return config.sigma * math.exp(progress * math.log(config.final_sigma / config.sigma))


class ActionNoise:
    """Noise for `num_envs` envs with `action_dim` dimensions. `__call__` returns [num_envs, action_dim]."""

    def __init__(self, num_envs: int, action_dim: int, sigma: float, seed: int) -> None:
        if num_envs < 1 or action_dim < 1:
            raise ValueError(f"noise needs num_envs >= 1 and action_dim >= 1, got {num_envs} and {action_dim}")
        self.shape = (num_envs, action_dim)
        self.sigma = sigma
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def __call__(self) -> np.ndarray:
        raise NotImplementedError

    def reset(self, env_mask: np.ndarray | None = None) -> None:
        """Called at the start of every episode of the envs in `env_mask` (all when None)."""

    def state_dict(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sigma = float(state["sigma"])
        self.rng.bit_generator.state = state["rng"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, sigma={self.sigma:.4g})"


class NoNoise(ActionNoise):
    def __call__(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=np.float32)


class GaussianNoise(ActionNoise):
    """Independent N(0, sigma^2) per step and dimension."""

    def __call__(self) -> np.ndarray:
        return (self.sigma * self.rng.standard_normal(self.shape)).astype(np.float32)


class OrnsteinUhlenbeckNoise(ActionNoise):
    """Temporally correlated noise: x += theta * (0 - x) * dt + sigma * sqrt(dt) * N(0, 1).

    It helps in envs where exploration must persist over many steps (MountainCarContinuous).
    """

    def __init__(self, num_envs: int, action_dim: int, sigma: float, seed: int, theta: float, dt: float) -> None:
        super().__init__(num_envs, action_dim, sigma, seed)
        if theta <= 0 or dt <= 0:
            raise ValueError(f"OU noise needs theta > 0 and dt > 0, got theta={theta} and dt={dt}")
        self.theta = theta
        self.dt = dt
        self.state = np.zeros(self.shape)

    def __call__(self) -> np.ndarray:
        drift = -self.theta * self.state * self.dt
        diffusion = self.sigma * math.sqrt(self.dt) * self.rng.standard_normal(self.shape)
        self.state = self.state + drift + diffusion
        return self.state.astype(np.float32)

    def reset(self, env_mask: np.ndarray | None = None) -> None:
        if env_mask is None:
            self.state[:] = 0.0
        else:
            self.state[env_mask] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "state": self.state.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.state = np.asarray(state["state"], dtype=np.float64).reshape(self.shape)


def make_noise(config: NoiseConfig, num_envs: int, action_dim: int, seed: int) -> ActionNoise:
    if config.type == "gaussian":
        return GaussianNoise(num_envs, action_dim, config.sigma, seed)
    if config.type == "ou":
        return OrnsteinUhlenbeckNoise(num_envs, action_dim, config.sigma, seed, config.theta, config.dt)
    return NoNoise(num_envs, action_dim, config.sigma, seed)
