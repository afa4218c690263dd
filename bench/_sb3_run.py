"""Child script: one matched Stable-Baselines3 DDPG run, then the PEERS.md evaluation.

Run by `bench/peers.py` in its own process so the parent can time the whole process and read its peak
RSS, exactly as for CleanRL and ours. Prints one line `BENCH_RESULT {json}` at the end.

The settings are those PEERS.md lists for SB3; change them there first, then here.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from _eval_protocol import evaluate_policy
from stable_baselines3 import DDPG
from stable_baselines3.common.noise import NormalActionNoise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--env-id", default="Pendulum-v1")
    args = parser.parse_args()

    env = gym.make(args.env_id)
    if not isinstance(env.action_space, gym.spaces.Box):
        raise SystemExit(f"DDPG needs a Box action space, {args.env_id} has {env.action_space}")
    n_actions = int(np.prod(env.action_space.shape))
    # SB3 adds the noise in its [-1, 1] action space, so sigma 0.1 is 0.1 times the action scale.
    noise = NormalActionNoise(mean=np.zeros(n_actions), sigma=0.1 * np.ones(n_actions))
    model = DDPG(
        "MlpPolicy",
        env,
        learning_rate=3e-4,
        buffer_size=1_000_000,
        learning_starts=1000,
        batch_size=256,
        tau=0.005,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        policy_kwargs={"net_arch": [256, 256]},
        action_noise=noise,
        seed=args.seed,
        device="cpu",
        verbose=0,
    )

    start = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    train_s = time.perf_counter() - start

    def act(obs: np.ndarray) -> np.ndarray:
        action, _ = model.predict(obs, deterministic=True)
        return action

    result = {
        "train_s": train_s,
        "final_eval": evaluate_policy(act, args.env_id),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "stable_baselines3": stable_baselines3.__version__,
            "torch": torch.__version__,
            "gymnasium": gym.__version__,
        },
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
