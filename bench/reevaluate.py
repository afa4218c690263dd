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

With `--live-actor`, for a run that trained with `eval.average_last` K > 1 (whose evaluations read
the mean of its last K actors): each evaluation is played with the actor training went on with
instead, and config.yaml is written with `eval.average_last: 1`. The averaging changes nothing in
training, bit for bit (tests/test_averaging.py), so the result is the run the config without it
makes, evaluations included: one run gives both readings. The originals are kept as
evaluations.averaged.csv, summary.averaged.json and config.averaged.yaml.

Usage (from the repo root):
    python bench/reevaluate.py runs/learning/bipedalwalker/base/seed-3 [RUN_DIR ...]
    python bench/reevaluate.py --live-actor COPY_OF_AN_AVERAGED_RUN
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from ddpg_cli.checkpoint import periodic_name
from ddpg_cli.config import build_config, config_to_yaml, read_config_file
from ddpg_cli.envs import make_env
from ddpg_cli.eval_log import EvaluationRow, evaluations_path, read_evaluations, replace_evaluations
from ddpg_cli.evaluate import evaluate
from ddpg_cli.layout import CONFIG_FILE, SUMMARY_FILE, checkpoint_dir, last_checkpoint, read_summary, write_summary, write_text_atomic
from ddpg_cli.policy import load_policy

NOTES = {
    "shared-env": "each evaluation played again from the run's checkpoint in a fresh env (bench/reevaluate.py)",
    "averaged": (
        "each evaluation played again from the run's checkpoint with the live actor; the run trained with "
        "eval.average_last: {k}, which changes no training (bench/reevaluate.py --live-actor)"
    ),
}


def checkpoint_at(run_dir: Path, step: int, final_step: int) -> Path:
    periodic = checkpoint_dir(run_dir) / periodic_name(step)
    if periodic.exists():
        return periodic
    if step == final_step and last_checkpoint(run_dir).exists():
        return last_checkpoint(run_dir)
    raise SystemExit(f"{run_dir}: no checkpoint at step {step:,}; it cannot be evaluated again")


def reevaluate(run_dir: Path, live_actor: bool = False) -> None:
    rows = read_evaluations(run_dir)
    summary_path = run_dir / SUMMARY_FILE
    summary = read_summary(run_dir)
    if not rows or summary is None:
        raise SystemExit(f"{run_dir}: not a finished run (no evaluations.csv or summary.json)")
    if summary.get("reevaluated"):
        raise SystemExit(f"{run_dir}: evaluated again already")
    config = build_config(read_config_file(run_dir / CONFIG_FILE))
    if live_actor and config.eval.average_last == 1:
        raise SystemExit(f"{run_dir}: trained without eval.average_last; its evaluations are the live actor's already")
    originals = "averaged" if live_actor else "shared-env"
    sources = [checkpoint_at(run_dir, row.step, summary["steps"]) for row in rows]  # all found before anything is played
    new_rows, final = [], None
    print(f"{run_dir}\n{'step':>8} {'old':>9} {'new':>9}")
    for row, source in zip(rows, sources):
        loaded = load_policy(source, live_actor=live_actor)
        env = make_env(loaded.config.env)
        result = evaluate(loaded.policy, env, loaded.config.eval.episodes, loaded.config.eval.seed)
        env.close()
        new_rows.append(EvaluationRow.of(row.step, row.wall_s, result))
        final = result
        print(f"{row.step:>8,} {row.mean:>9.1f} {result.mean:>9.1f}{'' if result.returns == list(row.returns) else '  differs'}")
    shutil.copyfile(evaluations_path(run_dir), run_dir / f"evaluations.{originals}.csv")
    shutil.copyfile(summary_path, run_dir / f"summary.{originals}.json")
    replace_evaluations(run_dir, new_rows)
    summary["final_eval"] = final.as_dict()
    summary["best_eval"] = max(row.mean for row in new_rows)
    summary["reevaluated"] = NOTES[originals].format(k=config.eval.average_last)
    write_summary(run_dir, summary)
    if live_actor:
        shutil.copyfile(run_dir / CONFIG_FILE, run_dir / "config.averaged.yaml")
        live_config = config.model_copy(update={"eval": config.eval.model_copy(update={"average_last": 1})})
        write_text_atomic(run_dir / CONFIG_FILE, config_to_yaml(live_config))
    print(f"final {final.mean:.1f} (was {rows[-1].mean:.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--live-actor", action="store_true", help="a run that trained with eval.average_last > 1: play the actor training went on with, and write its config without it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run_dir in args.run_dirs:
        reevaluate(run_dir, args.live_actor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
