"""How often the actor's actions sit at a bound, per group of runs (a sweep, or run dirs).

Reads each run's TensorBoard scalar `train/at_bound_fraction` (the share of the actor's action
components within 1e-3 of -1 or 1 in its update batches, logged every `logging.every` steps) and prints,
per group: the mean over the whole run, over its first and its last fifth, and the peak. Used for the
inverting-gradients ablation in docs/benchmarks.md.

Usage (from the repo root):
    python bench/saturation.py runs/learning/mountaincar-ig [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ddpg_cli.experiments.runs import collect_runs, group_runs


def at_bound_series(run_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not (run_dir / "tensorboard").is_dir():  # a run not started yet
        return []
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})  # 0: keep every point
    accumulator.Reload()
    if "train/at_bound_fraction" not in accumulator.Tags().get("scalars", []):
        return []
    return [(event.step, event.value) for event in accumulator.Scalars("train/at_bound_fraction")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = {}
    print(f"{'group':<32} {'runs':>4} {'whole run':>10} {'first 20%':>10} {'last 20%':>10} {'peak':>6}")
    for group in group_runs(collect_runs(args.paths)):
        whole, first, last, peaks = [], [], [], []
        for run in group.runs:
            series = at_bound_series(run.run_dir)
            if not series:
                continue
            values = [value for _, value in series]
            fifth = max(1, len(values) // 5)
            whole.append(statistics.fmean(values))
            first.append(statistics.fmean(values[:fifth]))
            last.append(statistics.fmean(values[-fifth:]))
            peaks.append(max(values))
        if not whole:
            continue
        row = {"runs": len(whole), "whole": statistics.fmean(whole), "first_fifth": statistics.fmean(first), "last_fifth": statistics.fmean(last), "peak": max(peaks)}
        report[group.setting] = row
        print(f"{group.setting:<32} {row['runs']:>4} {row['whole']:>10.1%} {row['first_fifth']:>10.1%} {row['last_fifth']:>10.1%} {row['peak']:>6.0%}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
