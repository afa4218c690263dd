"""The TD3 paper's own ten seeds per task, scored as our learning table scores ours: each seed's
evaluation at a budget, median, IQM with its 95% bootstrap interval, worst seed, how many reach our
threshold for the task (docs/benchmarks.md, "When a task is solved"), and how many fell below it at a
later evaluation after first reaching it.

The curves are the ones the TD3 repository publishes (`learning_curves/TASK/TD3_TASK-v1_SEED.npy` in
github.com/sfujim/TD3): gym's v1 MuJoCo tasks, the deterministic policy evaluated over 10 episodes
before training and every 5,000 steps after, one value per evaluation. They say how often the
algorithm itself, at the settings it was published with, reaches a threshold by a budget: the
reference against which a per-seed target is fair or not.

Usage (from the repo root; LEARNING_CURVES is that folder of a TD3 checkout):
    python bench/td3_paper_seeds.py LEARNING_CURVES
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from learning_table import dips

from ddpg_cli.experiments.stats import bootstrap_ci, iqm
from ddpg_cli.presets import solved_threshold

EVAL_EVERY = 5000  # the TD3 repository's evaluation interval; its first evaluation is at step 0
BUDGETS = {"InvertedPendulum": [50_000], "InvertedDoublePendulum": [100_000], "Reacher": [100_000], "Hopper": [300_000],
           "Walker2d": [300_000], "HalfCheetah": [100_000, 300_000], "Ant": [100_000, 300_000]}  # fmt: skip
FOLDERS = {"Walker2d": "Walker"}  # the repository's folder where it differs from the task's name
# Where the learning table's target at a budget is a per-seed threshold other than the preset's.
TARGETS = {("HalfCheetah", 300_000): 9000.0}


def score(curves: list[np.ndarray], budget: int, threshold: float | None) -> dict:
    index = budget // EVAL_EVERY
    finals = np.array([curve[index] for curve in curves])
    row = {"finals": finals, "median": float(np.median(finals)), "iqm": float(iqm(finals)), "ci95": bootstrap_ci(finals), "worst": float(finals.min())}
    if threshold is not None:
        row["solved"] = int((finals >= threshold).sum())
        # Our table's definition of a fall (learning_table.dips), on the evaluations up to the budget.
        row["fell"] = sum(bool(dips(zip(range(0, budget + 1, EVAL_EVERY), curve[: index + 1]), threshold)) for curve in curves)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("curves", type=Path, help="the learning_curves folder of a TD3 checkout")
    args = parser.parse_args()
    for task, budgets in BUDGETS.items():
        files = sorted((args.curves / FOLDERS.get(task, task)).glob(f"TD3_{task}-v1_*.npy"))
        if not files:
            continue
        curves = [np.load(path, allow_pickle=False) for path in files]
        found = solved_threshold(f"{task}-v5")
        for budget in budgets:
            threshold = TARGETS.get((task, budget), found.value if found else None)
            row = score(curves, budget, threshold)
            low, high = row["ci95"]
            print(f"{task}-v1 at {budget // 1000}k, {len(curves)} seeds: {', '.join(f'{value:.0f}' for value in row['finals'])}")
            line = f"  median {row['median']:.1f}  IQM {row['iqm']:.1f} [{low:.1f}, {high:.1f}]  worst {row['worst']:.1f}"
            if threshold is not None:
                line += f"  >= {threshold:g}: {row['solved']} of {len(curves)}; fell below it after reaching it: {row['fell']}"
            print(line)


if __name__ == "__main__":
    main()
