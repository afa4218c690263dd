"""Build environments, check that DDPG can act in them, and map actions to their bounds.

The actor and the replay buffer work in a normalised action space [-1, 1]^A; `scale_action` is the one
place that maps it onto the env's [low, high] (asymmetric bounds included).
"""

from __future__ import annotations

import os
import re
import traceback
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
        env = _gym_make(env_config.id, kwargs)
    except gym.error.DependencyNotInstalled as exc:  # its hint installs gymnasium's extra, not our pinned one
        extra = _extra_for(env_config.id)
        if extra is None:
            raise EnvError(f"env '{env_config.id}' needs a package that is not installed: {_first_line(exc)}") from None
        raise EnvError(f"env '{env_config.id}' needs {EXTRAS[extra]}, which is not installed: pip install 'ddpg-cli[{extra}]'") from None
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


def _gym_make(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gymnasium's deprecation chatter is not the user's business here
            return gym.make(env_id, **kwargs)
    except Exception as exc:
        if (gl_error := _gl_error(exc)) is not None:
            raise gl_error from None
        raise


# The system library each offscreen OpenGL of MuJoCo loads, and its Debian/Ubuntu package.
GL_PACKAGES = {"osmesa": ("the OSMesa library", "libosmesa6"), "egl": ("an EGL library", "libegl1")}


def _gl_error(exc: BaseException) -> EnvError | None:
    """MuJoCo sets up the OpenGL that MUJOCO_GL names when it is first imported (by gym.make); a system
    library that is missing fails deep inside PyOpenGL ("'NoneType' object has no attribute
    'glGetError'"). That failure as one line saying what to install, or None for any other failure."""
    backend = os.environ.get("MUJOCO_GL", "").strip().lower()
    files = [frame.filename.replace("\\", "/") for frame in traceback.extract_tb(exc.__traceback__)]
    if not backend or not any("/OpenGL/" in name or re.search(r"/mujoco/(gl_context|osmesa|egl|glfw|cgl|rendering)", name) for name in files):
        return None
    if backend in GL_PACKAGES:
        other = "egl" if backend == "osmesa" else "osmesa"
        library, package = GL_PACKAGES[backend]
        return EnvError(f"MUJOCO_GL={backend}: MuJoCo could not load {library}; install it (Debian/Ubuntu: sudo apt-get install {package}) or use MUJOCO_GL={other}")
    return EnvError(f"MUJOCO_GL={backend}: MuJoCo could not set up OpenGL ({_first_line(exc)}); without a display, use MUJOCO_GL=egl")


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


EXTRAS = {"mujoco": "MuJoCo", "box2d": "Box2D"}  # our extras (pyproject.toml), by Gymnasium's env family


def _extra_for(env_id: str) -> str | None:
    """The extra of ours that an env needs, from where Gymnasium registers it (None: not one of its
    MuJoCo or Box2D envs)."""
    try:
        entry_point = str(gym.spec(env_id).entry_point)
    except gym.error.Error:
        return None
    return next((extra for extra in EXTRAS if entry_point.startswith(f"gymnasium.envs.{extra}")), None)


def _install_hint(env_id: str) -> str:
    extra = _extra_for(env_id)
    return f"install the {extra} extra: pip install 'ddpg-cli[{extra}]'" if extra else "install the package that registers it"
