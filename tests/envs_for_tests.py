"""Small envs the tests load by `envs_for_tests:Name-v0`, the way users load their own envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import register


class AsymmetricBoundsEnv(gym.Env):
    """Two action dims with asymmetric bounds; reward is best at a fixed target action.

    Every action it receives is kept in `received`, so tests can check scaling and clipping.
    Episodes end by termination after `episode_length` steps when `terminate` is set, otherwise by
    the TimeLimit wrapper.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, episode_length: int = 7, terminate: bool = True, render_mode: str | None = None) -> None:
        self.action_space = gym.spaces.Box(np.array([-3.0, 0.0], dtype=np.float32), np.array([1.0, 10.0], dtype=np.float32))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        self.episode_length = episode_length
        self.terminate = terminate
        self.render_mode = render_mode
        self.received: list[np.ndarray] = []
        self.target = np.array([0.5, 2.0], dtype=np.float32)
        self.t = 0
        self.position = np.zeros(3, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        self.position = self.np_random.uniform(-1, 1, size=3).astype(np.float32)
        return self.position.copy(), {}

    def step(self, action):
        action = np.asarray(action, dtype=np.float32)
        self.received.append(action.copy())
        self.t += 1
        self.position[:2] += 0.1 * (action - self.target)
        self.position[2] = self.t
        reward = -float(np.sum((action - self.target) ** 2))
        terminated = self.terminate and self.t >= self.episode_length
        return self.position.copy(), reward, terminated, False, {}

    def render(self):
        frame = np.zeros((32, 32, 3), dtype=np.uint8)
        frame[:, : 4 + 4 * self.t % 28] = 255
        return frame


class NonFiniteEnv(AsymmetricBoundsEnv):
    """Returns a NaN observation at a given step of the first episode: a broken simulator."""

    def __init__(self, nan_at: int = 30, **kwargs) -> None:
        super().__init__(episode_length=10_000, terminate=False, **kwargs)
        self.nan_at = nan_at
        self.total = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self.total += 1
        if self.total == self.nan_at:
            obs[0] = np.nan
        return obs, reward, terminated, truncated, info


class FaultyEnv(AsymmetricBoundsEnv):
    """Injects one kind of fault from the `at`-th step (counted over all episodes, from 1) on.

    fault:
      "inf_reward"   the reward of step `at` is +inf;
      "huge_reward"  every reward from step `at` on is 1e30: finite, but its square overflows float32,
                     so the critic's loss becomes infinite at the first update that samples one;
      "nan_reset"    the first reset after step `at` returns a NaN observation.
    Episodes last `episode_length` steps (terminated), so resets happen regularly.
    """

    def __init__(self, fault: str = "inf_reward", at: int = 30, episode_length: int = 10, **kwargs) -> None:
        super().__init__(episode_length=episode_length, terminate=True, **kwargs)
        if fault not in ("inf_reward", "huge_reward", "nan_reset"):
            raise ValueError(f"unknown fault {fault!r}")
        self.fault = fault
        self.at = at
        self.total = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        if self.fault == "nan_reset" and self.total >= self.at:
            obs[1] = np.nan
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self.total += 1
        if self.fault == "inf_reward" and self.total == self.at:
            reward = float("inf")
        elif self.fault == "huge_reward" and self.total >= self.at:
            reward = 1e30
        return obs, reward, terminated, truncated, info


class WideObsEnv(AsymmetricBoundsEnv):
    """AsymmetricBounds with `obs_dim` observation dims (the first three as there, then noise): each
    transition is large, so a checkpoint holding the replay buffer takes a moment to write."""

    def __init__(self, obs_dim: int = 2048, **kwargs) -> None:
        super().__init__(**kwargs)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
        self.obs_dim = obs_dim

    def _widen(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([obs, self.np_random.standard_normal(self.obs_dim - obs.shape[0]).astype(np.float32)])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        return self._widen(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return self._widen(obs), reward, terminated, truncated, info


class RememberingEnv(AsymmetricBoundsEnv):
    """AsymmetricBounds whose rewards also depend on how many episodes this instance has run: a
    simulator that keeps state across resets, as BipedalWalker-v3 does (docs/benchmarks.md)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.resets = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.resets += 1
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward - 0.01 * self.resets, terminated, truncated, info


register(id="AsymmetricBounds-v0", entry_point=AsymmetricBoundsEnv, max_episode_steps=50)
register(id="WideObs-v0", entry_point=WideObsEnv, max_episode_steps=50)
register(id="NonFinite-v0", entry_point=NonFiniteEnv, max_episode_steps=1000)
register(id="Faulty-v0", entry_point=FaultyEnv, max_episode_steps=1000)
register(id="Remembering-v0", entry_point=RememberingEnv, max_episode_steps=50)
