"""Play a finished run's evaluations again from its checkpoints, each in a fresh env, as a run now does.

Runs made before each evaluation got an env of its own kept one evaluation env for their whole
length, and BipedalWalker-v3 carries state across resets (docs/benchmarks.md, the evaluation
protocol), so those runs' evaluations.csv and final evaluation depend on the episodes played before
them. Training never saw the evaluation env, so the checkpoints are the ones the same run makes
today, and evaluating each in a fresh env gives the figures today's run writes. This needs a
checkpoint at every evaluated step (a run with `checkpoint.keep` at least its number of
evaluations, and checkpoints and evaluations at one interval), and rewrites in place:

- evaluations.csv: each row's returns replayed (its step and wall time kept);
- summary.json: `final_eval` and `best_eval` from the new rows, and `reevaluated` saying so
  (checkpoints/best.pt stays the one the run chose).

The originals are kept beside them as evaluations.shared-env.csv and summary.shared-env.json. Every
row evaluated in a fresh env already (a run resumed after the change) must come out the same: the
script prints each row old and new, so that can be checked.

Usage (from the repo root):
    python bench/reevaluate.py runs/learning/bipedalwalker/base/seed-3 [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from ddpg_cli.checkpoint import periodic_name
from ddpg_cli.envs import make_env
from ddpg_cli.eval_log import EvaluationRow, evaluations_path, read_evaluations, replace_evaluations
from ddpg_cli.evaluate import evaluate
from ddpg_cli.layout import SUMMARY_FILE, checkpoint_dir, last_checkpoint, read_summary, write_summary
from ddpg_cli.policy import load_policy

NOTE = "each evaluation played again from the run's checkpoint in a fresh env (bench/reevaluate.py)"


def checkpoint_at(run_dir: Path, step: int, final_step: int) -> Path:
    periodic = checkpoint_dir(run_dir) / periodic_name(step)
    if periodic.exists():
        return periodic
    if step == final_step and last_checkpoint(run_dir).exists():
        return last_checkpoint(run_dir)
    raise SystemExit(f"{run_dir}: no checkpoint at step {step:,}; it cannot be evaluated again")


def reevaluate(run_dir: Path) -> None:
    rows = read_evaluations(run_dir)
    summary_path = run_dir / SUMMARY_FILE
    summary = read_summary(run_dir)
    if not rows or summary is None:
        raise SystemExit(f"{run_dir}: not a finished run (no evaluations.csv or summary.json)")
    if summary.get("reevaluated"):
        raise SystemExit(f"{run_dir}: evaluated again already")
    sources = [checkpoint_at(run_dir, row.step, summary["steps"]) for row in rows]  # all found before anything is played
    new_rows, final = [], None
    print(f"{run_dir}\n{'step':>8} {'old':>9} {'new':>9}")
    for row, source in zip(rows, sources):
        loaded = load_policy(source)
        env = make_env(loaded.config.env)
        result = evaluate(loaded.policy, env, loaded.config.eval.episodes, loaded.config.eval.seed)
        env.close()
        new_rows.append(EvaluationRow.of(row.step, row.wall_s, result))
        final = result
        print(f"{row.step:>8,} {row.mean:>9.1f} {result.mean:>9.1f}{'' if result.returns == list(row.returns) else '  differs'}")
    shutil.copyfile(evaluations_path(run_dir), run_dir / "evaluations.shared-env.csv")
    shutil.copyfile(summary_path, run_dir / "summary.shared-env.json")
    replace_evaluations(run_dir, new_rows)
    summary["final_eval"] = final.as_dict()
    summary["best_eval"] = max(row.mean for row in new_rows)
    summary["reevaluated"] = NOTE
    write_summary(run_dir, summary)
    print(f"final {final.mean:.1f} (was {rows[-1].mean:.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run_dir in args.run_dirs:
        reevaluate(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
