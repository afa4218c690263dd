"""How deep in tanh's flat tails an actor sits, and whether its critic wants it back: per checkpoint.

For each checkpoint (a run dir gives every periodic checkpoint and last.pt), the deterministic policy
plays `--episodes` episodes from reset seeds 1000, 1001, ... (the evaluation's), and on the states it
visits this prints (one line per checkpoint, 80 columns):
- the return of those episodes (as the evaluation would score them);
- the median |u| of the actor's outputs before tanh, and the median of tanh'(u) = 1 - tanh(u)^2, the
  factor every gradient through the output passes (0.01 at |u| = 3, 2e-9 at |u| = 10);
- the share of action components at a bound (within 1e-3, as TensorBoard's train/at_bound_fraction);
- of those, the share where the critic's dQ/da points back inward: the critic asks for another
  action, but a saturated tanh passes (almost) none of that gradient to the actor's weights;
- the critic's Q(s, mu(s)) against the discounted return G that actually followed (gamma of the
  run), both averaged over the states where G is known: every state of an episode that ended
  (terminated), and of an episode cut by the time limit only the states at least
  log(0.01)/log(gamma) steps before the cut (459 at gamma 0.99), whose unseen rest would weigh
  less than 1% of a reward stream. A critic that overestimates shows Q clearly above G.

A healthy bang-bang policy can sit at a bound with |u| around 3-5; a pinned one has |u| in the tens
with the critic pointing back inward in many states (docs/benchmarks.md, MountainCarContinuous-v0).

Usage (from the repo root):
    python bench/actor_saturation.py runs/learning/mountaincar/base/seed-7 [CHECKPOINT.pt ...] [--episodes 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from ddpg_cli.agent import ACTION_HIGH, AT_BOUND_TOLERANCE, DDPGAgent
from ddpg_cli.checkpoint import load_checkpoint
from ddpg_cli.config import Config, build_config
from ddpg_cli.envs import make_env
from ddpg_cli.networks import DeployedPolicy

EVAL_SEED = 1000
KNOWN_RETURN_TOLERANCE = 0.01  # the weight gamma^k below which the rewards after a cut are ignored


def checkpoints(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted((path / "checkpoints").glob("step_*.pt")) + [path / "checkpoints" / "last.pt"]
    return [p for p in found if p.exists()]


def load_agent(path: Path) -> tuple[dict, Config, DDPGAgent, gym.Env, DeployedPolicy]:
    """A checkpoint's payload, config, agent, a fresh env of its task, and the live actor's policy
    (normalise, act, scale to the env's box, clip): the one `ddpg eval` runs, except in a run with
    `eval.average_last`, where `ddpg eval` runs the mean of the window and this the live actor."""
    payload = load_checkpoint(path)
    config = build_config(payload["config"])
    spaces = payload["spaces"]
    agent = DDPGAgent(spaces["obs_dim"], spaces["action_dim"], config.agent, normalize_obs=config.env.normalize_obs)
    agent.load_state_dict(payload["agent"])
    env = make_env(config.env)
    policy = DeployedPolicy(agent.normalizer, agent.actor, torch.as_tensor(env.action_space.low), torch.as_tensor(env.action_space.high))
    return payload, config, agent, env, policy


def diagnose(path: Path, episodes: int) -> dict[str, float]:
    payload, config, agent, env, policy = load_agent(path)
    # A time-limited episode's last `horizon` states lack the rewards after the cut.
    horizon = int(np.ceil(np.log(KNOWN_RETURN_TOLERANCE) / np.log(config.agent.gamma))) if config.agent.gamma < 1 else None
    states, returns, returns_to_go, known = [], [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        rewards, done = [], False
        while not done:
            states.append(obs)
            with torch.no_grad():
                env_action = policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            obs, reward, terminated, truncated, _ = env.step(env_action)
            rewards.append(float(reward))
            done = terminated or truncated
        returns.append(sum(rewards))
        to_go, episode_returns = 0.0, []
        for reward in reversed(rewards):
            to_go = reward + config.agent.gamma * to_go
            episode_returns.append(to_go)
        returns_to_go.extend(reversed(episode_returns))
        if terminated:
            counted = len(rewards)
        elif horizon is None:  # gamma 1: every state of a cut episode misses rewards that count fully
            counted = 0
        else:
            counted = max(len(rewards) - horizon, 0)
        known.extend([True] * counted + [False] * (len(rewards) - counted))
    env.close()
    obs = agent.normalizer(torch.as_tensor(np.asarray(states), dtype=torch.float32))
    with torch.no_grad():
        action, pre_activation = agent.actor.forward_with_pre_activation(obs)
    action_leaf = action.clone().requires_grad_(True)
    q = agent.critic(obs, action_leaf)
    (dq_da,) = torch.autograd.grad(q.sum(), action_leaf)
    known = np.asarray(known)
    q, discounted = q.detach().numpy()[known], np.asarray(returns_to_go)[known]
    at_bound = action.abs() >= ACTION_HIGH - AT_BOUND_TOLERANCE
    wants_back = at_bound & (torch.sign(dq_da) == -torch.sign(action))
    u = pre_activation.abs()
    return {
        "step": payload["counters"]["step"],
        "return": float(np.mean(returns)),
        "median_abs_u": float(u.median()) if agent.actor.squash else float("nan"),
        "median_tanh_slope": float((1 - torch.tanh(u) ** 2).median()) if agent.actor.squash else float("nan"),
        "at_bound": float(at_bound.float().mean()),
        "wants_back": float(wants_back.sum() / max(int(at_bound.sum()), 1)),
        "q": float(q.mean()) if known.any() else float("nan"),
        "discounted_return": float(discounted.mean()) if known.any() else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs or checkpoint files")
    parser.add_argument("--episodes", type=int, default=3, help="episodes played per checkpoint (default 3)")
    args = parser.parse_args()
    print(f"{'checkpoint':<22} {'step':>7} {'return':>7} {'|u| med':>7} {'slope':>7} {'bound':>5} {'back':>5} {'Q':>6} {'G':>6}")
    for path in args.paths:
        for checkpoint in checkpoints(path):
            row = diagnose(checkpoint, args.episodes)
            name = f"{checkpoint.parent.parent.name}/{checkpoint.stem}"[-22:]  # e.g. seed-7/step_000030000
            print(
                f"{name:<22} {row['step']:>7,} {row['return']:>7.1f} {row['median_abs_u']:>7.1f} {row['median_tanh_slope']:>7.0e} "
                f"{row['at_bound']:>5.0%} {row['wants_back']:>5.0%} {row['q']:>6.1f} {row['discounted_return']:>6.1f}"
            )
    print("slope: median tanh'(u); bound: actions at a bound; back: of those, the share")
    print("where dQ/da points inward; Q: mean Q(s, mu(s)), G: mean discounted return")
    print("that followed, both over the visited states where G is known (nan: none)")


if __name__ == "__main__":
    main()
