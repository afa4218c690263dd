"""Keep the records of finished runs in the repository, so the learning table and its curves can be
rebuilt and checked by anyone, without the hours of training or the run dirs (which hold checkpoints
and TensorBoard logs, and stay on the machine that trained).

Per finished run (the final evaluation written), this copies the three small files the table and the
plots read: config.yaml (the resolved config), evaluations.csv (every periodic evaluation, each
episode's return) and summary.json (the final evaluation, steps, wall time), into DEST/seed-N/. All the
runs given, and those already kept in DEST, must share one config, the seed aside (one row of the
table); an existing record of the same seed is replaced.

Usage (from the repo root):
    python bench/keep_records.py runs/learning/hopper --to docs/records/hopper
    python bench/learning_table.py docs/records/hopper          # the row, from the records
    ddpg plot docs/records/hopper --out docs/images/hopper.png  # the curve
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ddpg_cli.errors import ConfigError
from ddpg_cli.experiments.runs import collect_runs, differing_keys

RECORD_FILES = ("config.yaml", "evaluations.csv", "summary.json")


def keep(sources: list[Path], destination: Path) -> list[int]:
    """Copy the records of the finished runs under `sources` into `destination`; their seeds."""
    runs = [run for run in collect_runs(sources) if run.status == "done"]
    if not runs:
        raise ConfigError(f"no finished run under {', '.join(map(str, sources))}")
    kept = collect_runs([destination]) if destination.is_dir() else []
    differing = differing_keys([run.config for run in runs + kept])
    if differing:
        raise ConfigError(
            f"the runs given and those kept in {destination} differ in more than their seed "
            f"({', '.join(differing[:4])}{', ...' if len(differing) > 4 else ''}): "
            "keep each setting on its own"
        )
    seeds = sorted(run.seed for run in runs)
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"two finished runs have the same seed among {seeds}")
    for run in runs:
        target = destination / f"seed-{run.seed}"
        target.mkdir(parents=True, exist_ok=True)
        for name in RECORD_FILES:
            shutil.copyfile(run.run_dir / name, target / name)
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path, help="sweep or run dirs of one setting")
    parser.add_argument("--to", type=Path, required=True, help="the record folder, e.g. docs/records/hopper")
    args = parser.parse_args()
    try:
        seeds = keep(args.sources, args.to)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    runs = "1 run (seed" if len(seeds) == 1 else f"{len(seeds)} runs (seeds"
    print(f"kept {runs} {', '.join(map(str, seeds))}) in {args.to}")


if __name__ == "__main__":
    main()
