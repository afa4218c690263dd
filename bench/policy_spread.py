"""How each checkpoint's policy does over many starts, and how much that moves between checkpoints.

The learning table scores a run by its final policy over 10 episodes (reset seeds 1000-1009). Where
the policy's quality moves from one checkpoint to the next, that score is one draw of the movement,
and 10 starts are few to tell a rare failure from a frequent one. For each checkpoint (a run dir gives
every periodic checkpoint and last.pt) this plays the deterministic policy `ddpg eval` runs for
`--episodes` episodes from reset seeds 1000, 1001, ... and prints one line (80 columns):
- eval10: the mean return of the first 10 episodes (what the evaluation reports for that checkpoint);
- the mean, the median and the worst return over all episodes;
- solved: the share of episodes whose own return reaches `--threshold` (default: the task's
  `# solved at:`, e.g. 200 for LunarLander, where it is the classic "landed" mark of one episode);
- ended: the share that ended before the time limit (terminated);
- -100: the share whose last reward was -100 or lower: the way LunarLander ends a crash or a flight
  off the screen and BipedalWalker a fall (a LunarLander landing at rest ends with +100 instead).

With `--average K`, one more line per run dir: the policy whose actor weights are the mean of the actor
weights at that run's last K checkpoints (with the last one's observation normaliser), as stochastic
weight averaging does (Izmailov et al. 2018; in deep RL, Nikishin et al. 2018): several points of one
late stretch of training averaged in weight space rather than the last point alone. Where checkpoints
and evaluations share their interval (the LunarLander, BipedalWalker, Swimmer and MuJoCo locomotion
presets: 10,000 steps), this is the policy a run with
`eval.average_last: K` would have ended with, so a finished run answers "would averaging have helped"
without training again.

Usage (from the repo root):
    python bench/policy_spread.py runs/learning/lunarlander/base/seed-3 [CHECKPOINT.pt ...] [--episodes 100] [--average 4]
    python bench/policy_spread.py RUN_DIR --last 4 --average 4 --episodes 20   # a finished run, both ways
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from actor_saturation import EVAL_SEED, checkpoints, load_agent
from ddpg_cli.averaging import mean_weights
from ddpg_cli.evaluate import evaluate
from ddpg_cli.presets import solved_threshold

CRASH_REWARD = -100.0  # LunarLander's crash and out-of-screen end, BipedalWalker's fall
PROTOCOL_EPISODES = 10


def spread(paths: list[Path], episodes: int, threshold: float | None) -> dict[str, float]:
    """The scores of the last checkpoint's policy; with several checkpoints, of the policy whose actor
    weights are the mean of theirs (the last one's observation normaliser)."""
    payload, config, agent, env, policy = load_agent(paths[-1])
    if len(paths) > 1:  # in step order, as `eval.average_last` takes them: the same mean, bit for bit
        actors = [load_agent(path)[2].actor.state_dict() for path in paths[:-1]] + [agent.actor.state_dict()]
        agent.actor.load_state_dict(mean_weights(actors))
    if threshold is None:
        known = solved_threshold(config.env.id)
        threshold = known.value if known else float("nan")
    played = evaluate(policy, env, episodes, EVAL_SEED)  # `ddpg eval`'s loop: its first 10 are the protocol's
    env.close()
    returns, ended = np.asarray(played.returns), np.asarray(played.terminated)
    crashed = ended & (np.asarray(played.last_rewards) <= CRASH_REWARD)
    return {
        "step": payload["counters"]["step"],
        "eval10": float(returns[:PROTOCOL_EPISODES].mean()),
        "mean": float(returns.mean()),
        "median": float(np.median(returns)),
        "worst": float(returns.min()),
        "solved": float(np.mean(returns >= threshold)) if np.isfinite(threshold) else float("nan"),
        "ended": float(ended.mean()),
        "crashed": float(crashed.mean()),
        "threshold": threshold,
    }


def print_row(name: str, row: dict[str, float]) -> None:
    print(
        f"{name[-22:]:<22} {row['step']:>7,} {row['eval10']:>7.1f} {row['mean']:>7.1f} {row['median']:>7.1f} {row['worst']:>7.1f} "
        f"{row['solved']:>6.0%} {row['ended']:>5.0%} {row['crashed']:>4.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs or checkpoint files")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per checkpoint (default 100)")
    parser.add_argument("--threshold", type=float, help="an episode's return that counts as solved (default: the task's)")
    parser.add_argument("--average", type=int, metavar="K", help="also, per run dir, the policy whose actor weights are the mean of its last K checkpoints'")
    parser.add_argument("--last", type=int, metavar="N", help="per run dir, score only its last N checkpoints (default: all)")
    args = parser.parse_args()
    if args.average is not None and args.average < 2:
        print("error: --average takes 2 or more checkpoints", file=sys.stderr)
        raise SystemExit(2)
    if args.last is not None and args.last < 1:
        print("error: --last takes 1 or more checkpoints", file=sys.stderr)
        raise SystemExit(2)
    if args.episodes < PROTOCOL_EPISODES:
        print(f"error: --episodes must be at least {PROTOCOL_EPISODES} (the evaluation's own episodes come first)", file=sys.stderr)
        raise SystemExit(2)
    found = {path: checkpoints(path) for path in args.paths}  # each in step order, last.pt last
    if missing := [str(path) for path, found_here in found.items() if not found_here]:
        print(f"error: no checkpoint in {', '.join(missing)}", file=sys.stderr)
        raise SystemExit(2)
    print(f"{'checkpoint':<22} {'step':>7} {'eval10':>7} {'mean':>7} {'median':>7} {'worst':>7} {'solved':>6} {'ended':>5} {'-100':>4}")
    thresholds = set()
    for found_here in found.values():
        for checkpoint in found_here[-args.last :] if args.last else found_here:
            row = spread([checkpoint], args.episodes, args.threshold)
            thresholds.add(row["threshold"])
            print_row(f"{checkpoint.parent.parent.name}/{checkpoint.stem}", row)  # e.g. seed-3/step_000170000
    if args.average:
        for path in (path for path in args.paths if path.is_dir()):  # a checkpoint file alone has nothing to average with
            last = found[path][-args.average :]
            row = spread(last, args.episodes, args.threshold)
            thresholds.add(row["threshold"])
            print_row(f"{path.name}/mean of {len(last)}", row)
    shown = ", ".join(f"{t:g}" for t in sorted(thresholds))
    print(f"{args.episodes} episodes each from reset seed {EVAL_SEED}; eval10: the first 10 (the evaluation's)")
    print(f"solved: episodes with return >= {shown}; ended: before the time limit;")
    print("-100: last reward -100 or lower (LunarLander's crash, BipedalWalker's fall)")
    if args.average:
        print(f"mean of K: the actor's weights averaged over each run's last {args.average} checkpoints")


if __name__ == "__main__":
    main()
