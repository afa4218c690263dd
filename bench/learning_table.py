"""The learning table of docs/benchmarks.md: per group of runs (a sweep, or run dirs), each seed's final
evaluation, their median, the IQM with its 95% bootstrap interval, the best point of the mean
evaluation curve (the TD3 paper's and Tianshou's protocol), the worst seed, how many seeds solve the
task (final evaluation >= the threshold of docs/benchmarks.md, "When a task is solved", as `ddpg
compare` counts them; `--solved-at X` for another) and which seeds fell below that threshold at a
periodic evaluation after first reaching it (a policy that collapses mid-run, or falls late),
optionally also each seed's evaluation at an intermediate budget (`--at 100000`: HalfCheetah's 100k
column).

Everything is read from each run's RUN/evaluations.csv (every periodic evaluation: deterministic
policy, `eval.episodes` episodes from reset seed `eval.seed`) and RUN/summary.json (the final one), so
unfinished runs show how far they got.

Usage (from the repo root):
    python bench/learning_table.py runs/learning/hopper runs/learning/lunarlander [--at 100000] [--solved-at X] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ddpg_cli.errors import ConfigError
from ddpg_cli.experiments.compare import parse_threshold, solved_count
from ddpg_cli.experiments.runs import collect_runs, group_runs
from ddpg_cli.experiments.stats import band, bootstrap_ci, iqm
from ddpg_cli.presets import solved_threshold


def value_at(run, step: int) -> float | None:
    """The run's evaluation at `step` (None when it has not got there), as `ddpg compare --at` reads it."""
    row = run.eval_at(step)
    return None if row is None else row.mean


def final_value(run) -> float | None:
    if run.summary and run.summary.get("final_eval"):
        return float(run.summary["final_eval"]["mean"])
    return None


def describe(group, at: int | None, solved_at: float | None = None) -> dict:
    runs = sorted(group.runs, key=lambda run: run.seed)
    finals = {run.seed: final_value(run) for run in runs}
    done = [value for value in finals.values() if value is not None]
    curves = [([row.step for row in run.evaluations], [row.mean for row in run.evaluations]) for run in runs if run.evaluations]
    best = None
    if curves and len(curves) == len(runs):
        mean_curve = band(curves, statistic="mean")  # over the steps every seed has reached
        index = int(np.nanargmax(mean_curve.center))
        best = {"step": int(mean_curve.steps[index]), "mean": float(mean_curve.center[index])}
    env_id = runs[0].config.get("env", {}).get("id") if runs and runs[0].config else None
    total = runs[0].config.get("train", {}).get("total_steps") if runs and runs[0].config else None
    threshold = solved_at if solved_at is not None else getattr(solved_threshold(str(env_id)), "value", None)
    row = {
        "env": env_id,
        "setting": group.setting,
        "total_steps": total,
        "seeds": [run.seed for run in runs],
        "final": {str(seed): value for seed, value in finals.items()},
        "steps_reached": {str(run.seed): (run.evaluations[-1].step if run.evaluations else 0) for run in runs},
        "median": statistics.median(done) if done else None,
        "iqm": float(iqm(done)) if done else None,
        "ci95": list(bootstrap_ci(np.asarray(done), iqm)) if len(done) > 1 else None,
        "best_of_mean_curve": best,
        "worst": min(done) if done else None,
        "solved": None if threshold is None else {"threshold": threshold, "count": solved_count(done, threshold), "of": len(runs)},
        "dips": None if threshold is None else {str(run.seed): dips([(row.step, row.mean) for row in run.evaluations], threshold) for run in runs},
    }
    if at is not None:
        values = {str(run.seed): value_at(run, at) for run in runs}
        present = [value for value in values.values() if value is not None]
        row["at"] = {"step": at, "per_seed": values, "median": statistics.median(present) if present else None}
    return row


def dips(evaluations: Iterable[tuple[int, float]], threshold: float) -> list[int]:
    """The steps of the periodic evaluations (step, mean return) that fell below the threshold after
    the run had first reached it: a policy that collapses and recovers (MountainCar) or falls late
    (Hopper) shows here, where the final evaluation alone may miss it."""
    reached = False
    steps = []
    for step, mean in evaluations:
        if mean >= threshold:
            reached = True
        elif reached:
            steps.append(step)
    return steps


def threshold_argument(text: str) -> float:
    try:
        return parse_threshold(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def markdown_row(row: dict) -> str:
    """The row as docs/benchmarks.md's learning table has it (task, budget, seeds, finals, median,
    IQM [95% CI], worst, solved, best of the mean curve; the target and reference columns are the docs')."""
    seeds = row["seeds"]
    span = f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 1 else ", ".join(map(str, seeds))
    budget = f"{row['total_steps'] // 1000}k" if row["total_steps"] and row["total_steps"] % 1000 == 0 else f"{row['total_steps']}"
    finals = ", ".join(f"{value:.1f}" if value is not None else "-" for value in row["final"].values())
    best = row["best_of_mean_curve"]
    best_text = f"{best['mean']:.1f} @ {best['step'] // 1000}k" if best else "-"
    median = f"{row['median']:.1f}" if row["median"] is not None else "-"
    ci = f" [{row['ci95'][0]:.1f}, {row['ci95'][1]:.1f}]" if row["ci95"] else ""
    iqm_text = f"{row['iqm']:.1f}{ci}" if row["iqm"] is not None else "-"
    solved = row["solved"]
    solved_text = f"{solved['count']} of {solved['of']}" if solved else "-"
    worst = f"{row['worst']:.1f}" if row["worst"] is not None else "-"  # as the table's other figures: no thousands separator
    return f"| {row['env']} | {budget} | {span} | {finals} | {median} | {iqm_text} | {worst} | {solved_text} | {best_text} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--at", type=int, help="also each seed's evaluation at this step")
    parser.add_argument("--solved-at", type=threshold_argument, help="count the seeds at or above this return (default: the preset's threshold)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    try:
        groups = group_runs(collect_runs(args.paths))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    rows = [describe(group, args.at, args.solved_at) for group in groups]
    for row in rows:
        finals = ", ".join(f"{fmt(value)}" for value in row["final"].values())
        ci = f"[{fmt(row['ci95'][0])}, {fmt(row['ci95'][1])}]" if row["ci95"] else "-"
        best = row["best_of_mean_curve"]
        print(f"{row['env']} ({row['setting']}), {row['total_steps']:,} steps, seeds {row['seeds']}")
        print(f"  final per seed: {finals}   (steps reached: {row['steps_reached']})")
        print(f"  median {fmt(row['median'])}   IQM {fmt(row['iqm'])} {ci}   best of mean curve {fmt(best and best['mean'])} at {best and best['step']}")
        solved = row["solved"]
        solved_text = f"{solved['count']} of {solved['of']} seeds >= {solved['threshold']:g}" if solved else "no threshold (--solved-at)"
        print(f"  worst {fmt(row['worst'])}   solved: {solved_text}")
        if row["dips"] is not None:
            fell = {seed: steps for seed, steps in row["dips"].items() if steps}
            listed = "; ".join(f"seed {seed} at {', '.join(f'{step // 1000}k' for step in steps)}" for seed, steps in fell.items())
            print(f"  below the threshold after first reaching it: {len(fell)} of {len(row['dips'])} seeds" + (f" ({listed})" if listed else ""))
        print(f"  markdown: {markdown_row(row)}")
        if "at" in row:
            per_seed = ", ".join(fmt(value) for value in row["at"]["per_seed"].values())
            print(f"  at {row['at']['step']:,}: {per_seed}   median {fmt(row['at']['median'])}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
