"""Does ours learn? Train one config over several seeds and check the final evaluations.

Each seed is a separate `ddpg train` process; its final evaluation is read from `summary.json`
(final actor, deterministic, 10 episodes, reset seeds 1000..1009). Prints per-seed results, then the
median and the worst seed, and exits 1 when a given threshold is not met (2 when a run failed), so it
can gate a slow test or a release.

With `--jobs J > 1`, J runs go at once and each is given `--set train.torch_threads=1` so they do
not fight over the cores; wall times are then not speed figures (use speed.py for those).

Usage (from the repo root):
    python bench/learning.py --config bench/configs/pendulum_matched.yaml --steps 20000 \
        --seeds 1 2 3 4 5 --jobs 2 --min-median -250 --min-seed -400
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (
    RUN_HEADER,
    RunResult,
    default_work_dir,
    fmt,
    format_run,
    median_or_none,
    write_json,
)
from ours import DEFAULT_CONFIG, run_ours


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="ours' config (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20_000,
                        help="train.total_steps; 0 keeps the config's own (default: %(default)s)")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each then uses 1 torch thread)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override passed to ours as --set (repeatable)")  # fmt: skip
    parser.add_argument("--python", default=sys.executable, help="interpreter with ddpg_cli; default: this one")
    parser.add_argument("--min-median", type=float, help="fail unless the median eval mean is >= this")
    parser.add_argument("--min-seed", type=float, help="fail unless every seed's eval mean is >= this")
    parser.add_argument("--work-dir", type=Path, help="where run dirs and logs go; default bench/results/learning-*")
    parser.add_argument("--json", type=Path, help="write per-seed results and the verdict here")
    args = parser.parse_args()
    if args.jobs < 1 or args.steps < 0:
        parser.error(f"--jobs must be >= 1 and --steps >= 0, got {args.jobs} and {args.steps}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    if not args.config.is_file():
        parser.error(f"--config {args.config} is not a file")
    return args


def check(results: list[RunResult], min_median: float | None, min_seed: float | None) -> list[str]:
    """The thresholds that were not met, each as one line (empty when all pass)."""
    means = [r.eval_mean for r in results if r.eval_mean is not None]
    median, worst = median_or_none(means), min(means, default=None)
    failures = []
    if min_median is not None and (median is None or median < min_median):
        failures.append(f"median eval mean {fmt(median, '.1f')} < required {min_median}")
    if min_seed is not None and (worst is None or worst < min_seed):
        failures.append(f"worst seed eval mean {fmt(worst, '.1f')} < required {min_seed}")
    return failures


def main() -> None:
    args = parse_args()
    steps = args.steps or None
    overrides = list(args.overrides) + (["train.torch_threads=1"] if args.jobs > 1 else [])
    work_dir = (args.work_dir or default_work_dir("learning")).resolve()

    print(f"learning: config {args.config}, seeds {' '.join(map(str, args.seeds))}, "
          f"steps {steps if steps else 'from config'}, {args.jobs} job(s) at once")  # fmt: skip
    print("eval: final actor, deterministic (no noise), 10 episodes, env reset with seeds 1000..1009, mean return")
    if overrides:
        print(f"overrides: {' '.join(overrides)}")
    print(f"work dir: {work_dir}\n")
    print(RUN_HEADER, flush=True)

    def one(seed: int) -> RunResult:
        result = run_ours(seed, steps, python=args.python, config=args.config, work_dir=work_dir,
                          overrides=overrides)  # fmt: skip
        print(format_run(result), flush=True)
        return result

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(one, args.seeds))

    means = [r.eval_mean for r in results if r.eval_mean is not None]
    median, worst = median_or_none(means), min(means, default=None)
    print(f"\nseeds ok {sum(r.ok for r in results)}/{len(results)}; "
          f"eval mean: median {fmt(median, '.1f')}, min {fmt(worst, '.1f')}")  # fmt: skip
    failed_runs = [r for r in results if not r.ok]
    failures = check(results, args.min_median, args.min_seed)
    for line in failures:
        print(f"FAIL: {line}")
    if not failures and (args.min_median is not None or args.min_seed is not None) and not failed_runs:
        print("PASS")

    if args.json:
        write_json(args.json, {
            "config": str(args.config), "steps": steps, "seeds": args.seeds, "jobs": args.jobs,
            "overrides": overrides, "runs": [r.to_dict() for r in results],
            "median_eval_mean": median, "min_eval_mean": worst,
            "thresholds": {"min_median": args.min_median, "min_seed": args.min_seed}, "failures": failures,
        })  # fmt: skip
    sys.exit(2 if failed_runs else 1 if failures else 0)


if __name__ == "__main__":
    main()
