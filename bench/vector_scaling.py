"""Whole-run steps per second of ours for 1, 2, 4 and 8 envs (`train.num_envs`).

Each env step is still one gradient step (`train.updates_per_step: 1`), so more envs only amortise
the per-step overhead of acting and stepping; the updates dominate. Runs go one after another, in
rounds (1 2 4 8, 1 2 4 8, ...), and the table shows medians.

    python bench/vector_scaling.py --steps 5000 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from common import default_work_dir
from ours import DEFAULT_CONFIG, run_ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    work_dir = args.work_dir or default_work_dir("vector")
    sps: dict[int, list[float]] = {n: [] for n in args.envs}
    for round_index in range(args.rounds):
        for n in args.envs:
            result = run_ours(
                seed=round_index * 100 + n,
                steps=args.steps,
                python=args.python,
                config=args.config,
                work_dir=work_dir / f"envs{n}",
                overrides=[f"train.num_envs={n}", "eval.every=0", "checkpoint.every=0"],
            )
            if not result.ok:
                sys.exit(f"num_envs={n} failed: {result.note}")
            sps[n].append(args.steps / result.wall_s)
            print(f"round {round_index + 1}: num_envs {n}: {result.wall_s:.1f} s, {sps[n][-1]:.0f} SPS", flush=True)
    base = statistics.median(sps[args.envs[0]])
    print(f"\n{args.steps} steps per run, one update per env step, whole-process wall time, medians of {args.rounds}")
    print(f"{'num_envs':>8} {'SPS':>8} {'vs ' + str(args.envs[0]):>8}")
    for n in args.envs:
        median = statistics.median(sps[n])
        print(f"{n:>8} {median:>8.0f} {median / base:>7.2f}x")


if __name__ == "__main__":
    main()
