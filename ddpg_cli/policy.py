"""Load a trained policy from a run directory or a checkpoint file, for eval, render and export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ddpg_cli.averaging import mean_weights
from ddpg_cli.checkpoint import load_checkpoint, resolve_checkpoint
from ddpg_cli.config import Config, build_config
from ddpg_cli.errors import CheckpointError, ConfigError
from ddpg_cli.networks import Actor, DeployedPolicy, ObsNormalizer


@dataclass
class LoadedPolicy:
    policy: DeployedPolicy  # raw observations -> env actions, in eval mode, on the CPU
    config: Config  # the config the policy was trained with
    checkpoint: Path
    step: int  # env steps of training behind it

    @property
    def obs_dim(self) -> int:
        return int(self.policy.normalizer.mean.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.policy.low.shape[0])


def load_policy(path: Path, which: str = "last", live_actor: bool = False) -> LoadedPolicy:
    """`path` is a checkpoint file, or a run dir in which `which` (best, last, a file name) is chosen.
    A run with `eval.average_last` > 1 ships the mean of its last actors; `live_actor` loads the actor
    training went on with instead."""
    checkpoint = resolve_checkpoint(path, which)
    payload = load_checkpoint(checkpoint)
    try:
        config = build_config(payload["config"])
        spaces = payload["spaces"]
        obs_dim, action_dim = int(spaces["obs_dim"]), int(spaces["action_dim"])
        low = torch.as_tensor(spaces["action_low"], dtype=torch.float32)
        high = torch.as_tensor(spaces["action_high"], dtype=torch.float32)
        actor = Actor(obs_dim, action_dim, config.agent.actor_hidden, config.agent.activation, squash=not config.agent.invert_gradients)
        average = payload.get("policy_average")  # eval.average_last > 1: the policy is the mean of these
        averaged = bool(average and average["snapshots"]) and not live_actor
        actor.load_state_dict(mean_weights(average["snapshots"]) if averaged else payload["agent"]["actor"])
        normalizer = ObsNormalizer(obs_dim, enabled=config.env.normalize_obs)
        normalizer.load_state_dict(payload["agent"]["normalizer"])
        step = int(payload["counters"]["step"])
    except (KeyError, TypeError, RuntimeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{checkpoint} is damaged or incomplete: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    policy = DeployedPolicy(normalizer, actor, low, high).eval()
    return LoadedPolicy(policy, config, checkpoint, step)
