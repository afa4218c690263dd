"""Build environments, check that DDPG can act in them, and map actions to their bounds.

The actor and the replay buffer work in a normalised action space [-1, 1]^A; `scale_action` is the one
place that maps it onto the env's [low, high] (asymmetric bounds included).
"""

from __future__ import annotations

import warnings
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from ddpg_cli.config import EnvConfig
from ddpg_cli.errors import EnvError

ArrayLike = TypeVar("ArrayLike")  # a numpy array or a torch tensor: scale_action serves both


def scale_action(action: ArrayLike, low: Any, high: Any) -> ArrayLike:
    """Map an action in [-1, 1] to [low, high] (elementwise, broadcast over the batch)."""
    return low + (action + 1.0) * 0.5 * (high - low)


def make_env(env_config: EnvConfig, render_mode: str | None = None) -> gym.Env:
    """One env, with a flat float observation and a bounded Box action space checked."""
    kwargs = dict(env_config.kwargs)
    if env_config.max_episode_steps is not None:
        kwargs["max_episode_steps"] = env_config.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gymnasium's deprecation chatter is not the user's business here
            env = gym.make(env_config.id, **kwargs)
    except gym.error.Error as exc:
        raise EnvError(f"unknown or unusable env id '{env_config.id}': {_first_line(exc)}") from None
    except ModuleNotFoundError as exc:
        missing = exc.name or getattr(exc.__cause__, "name", None) or _first_line(exc)
        raise EnvError(f"env '{env_config.id}' needs a module that is not installed: {missing} ({_install_hint(env_config.id)})") from None
    except ImportError as exc:
        raise EnvError(f"env '{env_config.id}' could not be imported: {_first_line(exc)} ({_install_hint(env_config.id)})") from None
    except TypeError as exc:
        raise EnvError(f"env '{env_config.id}' rejected env.kwargs {env_config.kwargs}: {_first_line(exc)}") from None
    check_spaces(env, env_config.id)
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        env = gym.wrappers.FlattenObservation(env)
    return env


def make_vector_env(env_config: EnvConfig, num_envs: int) -> SyncVectorEnv:
    """`num_envs` copies stepped together. Autoreset is disabled: the training loop resets finished
    envs itself, so that no stored transition ever crosses an episode boundary."""
    return SyncVectorEnv(
        [lambda: make_env(env_config) for _ in range(num_envs)],
        autoreset_mode=AutoresetMode.DISABLED,
    )


def check_spaces(env: gym.Env, env_id: str) -> None:
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        env.close()
        raise EnvError(f"env '{env_id}' has a {type(space).__name__} action space; DDPG needs a continuous Box action space")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        env.close()
        raise EnvError(f"env '{env_id}' has an unbounded action space; DDPG needs finite action bounds")
    if np.any(space.high <= space.low):
        env.close()
        raise EnvError(f"env '{env_id}' has an empty action range (high <= low)")
    if len(space.shape) != 1:
        env.close()
        raise EnvError(f"env '{env_id}' has action shape {space.shape}; ddpg-cli supports flat (1-D) action vectors")
    if not isinstance(env.observation_space, (gym.spaces.Box, gym.spaces.Dict, gym.spaces.Tuple)):
        env.close()
        raise EnvError(f"env '{env_id}' has a {type(env.observation_space).__name__} observation space; ddpg-cli needs Box (or Dict/Tuple of Box) observations")


def env_rng_state(env: gym.Env) -> dict[str, Any]:
    """The env's NumPy generator state (plain ints and strings, safe to checkpoint)."""
    return env.unwrapped.np_random.bit_generator.state


def set_env_rng_state(env: gym.Env, state: dict[str, Any]) -> None:
    env.unwrapped.np_random.bit_generator.state = state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _install_hint(env_id: str) -> str:
    if any(name in env_id for name in ("Cheetah", "Hopper", "Walker", "Ant", "Humanoid", "Swimmer", "Reacher", "InvertedPendulum", "InvertedDoublePendulum", "Pusher")):
        return "install the mujoco extra: pip install 'ddpg-cli[mujoco]'"
    if any(name in env_id for name in ("LunarLander", "BipedalWalker", "CarRacing")):
        return "install the box2d extra: pip install 'ddpg-cli[box2d]'"
    return "install the package that registers it"
