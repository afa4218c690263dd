"""Milliseconds per DDPG update (critic + actor + targets) for each compute variant, side by side.

Variants are timed in rounds, one after another within each round (A B C D, A B C D, ...), so that a
noisy machine slows them alike; the table shows the median over rounds and the ratio to fp32 eager.

    python bench/update_speed.py                      # Pendulum dims, batch 256, 256x256 MLPs
    python bench/update_speed.py --obs-dim 17 --action-dim 6 --variants fp32,bf16
    python bench/update_speed.py --obs-dim 17 --action-dim 6 --hidden 400,300 --batch 100 --td3   # the HalfCheetah preset
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ddpg_cli.agent import DDPGAgent
from ddpg_cli.config import AgentConfig
from ddpg_cli.replay_buffer import ReplayBuffer

VARIANTS = {
    "fp32": {"precision": "fp32", "compile": False},
    "bf16": {"precision": "bf16", "compile": False},
    "fp32+compile": {"precision": "fp32", "compile": True},
    "bf16+compile": {"precision": "bf16", "compile": True},
}


TD3 = {"twin_critics": True, "target_noise": 0.2, "target_noise_clip": 0.5, "policy_delay": 2}


def build(variant: str, obs_dim: int, action_dim: int, hidden: list[int], batch: int, td3: bool = False) -> tuple[DDPGAgent, ReplayBuffer]:
    torch.manual_seed(0)
    config = AgentConfig(actor_hidden=hidden, critic_hidden=hidden, batch_size=batch, **(TD3 if td3 else {}))
    agent = DDPGAgent(obs_dim, action_dim, config, **VARIANTS[variant])
    buffer = ReplayBuffer(100_000, obs_dim, action_dim)
    for _ in range(100):
        buffer.add(torch.randn(100, obs_dim), torch.rand(100, action_dim) * 2 - 1, torch.randn(100), torch.randn(100, obs_dim), torch.zeros(100))
    return agent, buffer


def time_updates(agent: DDPGAgent, buffer: ReplayBuffer, generator: torch.Generator, count: int, batch: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        agent.update(buffer.sample(batch, generator))
    return (time.perf_counter() - start) / count * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--obs-dim", type=int, default=3)
    parser.add_argument("--action-dim", type=int, default=1)
    parser.add_argument("--hidden", default="256,256", help="hidden widths of both networks, e.g. 400,300 (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--updates", type=int, default=300, help="updates per timing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--td3", action="store_true", help="TD3's switches on (twin critics, target smoothing, policy delay 2)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.variants.split(",")
    generator = torch.Generator().manual_seed(0)
    setups = {}
    for name in names:
        agent, buffer = build(name, args.obs_dim, args.action_dim, [int(width) for width in args.hidden.split(",")], args.batch, args.td3)
        start = time.perf_counter()
        time_updates(agent, buffer, generator, 30, args.batch)  # warm-up, and compilation when compiled
        setups[name] = (agent, buffer, time.perf_counter() - start)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            agent, buffer, _ = setups[name]
            times[name].append(time_updates(agent, buffer, generator, args.updates, args.batch))

    print(f"obs {args.obs_dim}, action {args.action_dim}, {args.hidden.replace(',', 'x')} MLPs, batch {args.batch}{', TD3' if args.td3 else ''}, torch threads {torch.get_num_threads()}, {args.rounds} rounds of {args.updates} updates")
    base = statistics.median(times[names[0]])
    print(f"{'variant':<14} {'ms/update':>10} {'updates/s':>10} {'vs ' + names[0]:>10} {'warm-up s':>10}  all rounds (ms)")
    for name in names:
        median = statistics.median(times[name])
        print(f"{name:<14} {median:>10.3f} {1e3 / median:>10.0f} {base / median:>9.2f}x {setups[name][2]:>10.1f}  {' '.join(f'{t:.2f}' for t in times[name])}")


if __name__ == "__main__":
    main()
