"""Child script: score a saved CleanRL DDPG actor with the PEERS.md protocol.

CleanRL's own evaluation (run after `--save-model`) adds exploration noise and records video, so it
is not our protocol. This script runs under the CleanRL interpreter, rebuilds an equivalent MLP
from the saved state dict (obs -> 256 -> 256 -> act, ReLU, tanh, then the saved `action_scale` and
`action_bias`), and prints one line `BENCH_RESULT {json}`. It imports nothing from CleanRL.
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import torch
from _eval_protocol import evaluate_policy
from torch import nn

# CleanRL's actor layer names -> indices in our nn.Sequential (Linear, ReLU, Linear, ReLU, Linear, Tanh).
_LAYER_INDEX = {"fc1": 0, "fc2": 2, "fc_mu": 4}


def build_actor(state: dict[str, torch.Tensor]) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """Return (tanh MLP, action_scale, action_bias) loaded from CleanRL's actor state dict.

    Fails loudly if the saved layout differs, rather than scoring a half-loaded network.
    """
    expected = {f"{name}.{p}" for name in _LAYER_INDEX for p in ("weight", "bias")}
    expected |= {"action_scale", "action_bias"}
    if set(state) != expected:
        raise SystemExit(f"unexpected CleanRL actor keys: got {sorted(state)}, expected {sorted(expected)}")
    obs_dim = state["fc1.weight"].shape[1]
    hidden1, hidden2 = state["fc1.weight"].shape[0], state["fc2.weight"].shape[0]
    act_dim = state["fc_mu.weight"].shape[0]
    mlp = nn.Sequential(
        nn.Linear(obs_dim, hidden1),
        nn.ReLU(),
        nn.Linear(hidden1, hidden2),
        nn.ReLU(),
        nn.Linear(hidden2, act_dim),
        nn.Tanh(),
    )
    mlp.load_state_dict(
        {f"{idx}.{p}": state[f"{name}.{p}"] for name, idx in _LAYER_INDEX.items() for p in ("weight", "bias")}
    )
    mlp.eval()
    return mlp, state["action_scale"], state["action_bias"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_path", help="the .cleanrl_model file written by --save-model")
    parser.add_argument("--env-id", default="Pendulum-v1")
    args = parser.parse_args()

    # CleanRL saves `(actor.state_dict(), qf1.state_dict())`; only the actor is needed.
    actor_state, _ = torch.load(args.model_path, map_location="cpu", weights_only=True)
    mlp, scale, bias = build_actor(actor_state)
    act_dim = mlp[4].out_features

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = mlp(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))
            # CleanRL's scale/bias come from the vector env's batched space, shape (1, act_dim).
            return (out * scale + bias).reshape(act_dim).numpy()

    result = {
        "final_eval": evaluate_policy(act, args.env_id),
        "versions": {"torch": torch.__version__, "gymnasium": gym.__version__},
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
