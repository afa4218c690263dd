"""What MKL's reproducibility mode costs: the matched Pendulum run with the mode off, AUTO, AUTO,STRICT.

ddpg-cli turns on MKL's conditional numerical reproducibility (`MKL_CBWR=AUTO,STRICT`) before torch
loads, so that a resumed run is bitwise equal to an uninterrupted one whatever the memory alignment
of its arrays (ddpg_cli/reproducibility.py). This times whole `ddpg train` processes with each mode,
alternating the modes round by round so that a drift of the machine's speed hits all of them alike,
and prints each mode's median steps/s and its ratio to the mode off. `MKL_CBWR=` (empty) is how a
user turns the mode off; the package keeps whatever value the environment already holds.

`--updates N` times the update alone instead: each child process runs `update_speed.py` (the fp32
eager update of the matched networks, N updates per timing, median of 3 timings), which resolves a
difference of a few percent that whole runs on a shared VM (±20% from minute to minute) cannot.

Usage (from the repo root):
    python bench/reproducibility_cost.py --rounds 3 --steps 6000
    python bench/reproducibility_cost.py --rounds 8 --updates 500
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import BENCH_DIR, RUN_HEADER, RunResult, default_work_dir, format_run, wait_until_idle, write_json
from ours import DEFAULT_CONFIG, run_ours

MODES = {"off": "", "auto": "AUTO", "auto-strict": "AUTO,STRICT"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="runs per mode, alternated (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=6000, help="train.total_steps per run (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override for every run (repeatable)")  # fmt: skip
    parser.add_argument("--updates", type=int, help="time N updates per child instead of whole training runs")
    parser.add_argument("--wait-idle", type=float, default=60.0, help="seconds to wait for idle cores before each run")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.updates:
        return time_updates(args)
    work_dir = (args.work_dir or default_work_dir("reproducibility-cost")).resolve()

    print(f"matched Pendulum config, {args.steps:,} steps, {args.rounds} alternated rounds; overrides: {args.overrides or 'none'}")
    print(RUN_HEADER, flush=True)
    runs: dict[str, list[RunResult]] = {mode: [] for mode in MODES}
    for round_index in range(args.rounds):
        order = list(MODES) if round_index % 2 == 0 else list(reversed(MODES))
        for mode in order:
            wait_until_idle(args.wait_idle)
            env = {**os.environ, "MKL_CBWR": MODES[mode]}
            result = run_ours(round_index, args.steps, python=args.python, config=DEFAULT_CONFIG, work_dir=work_dir,
                              overrides=args.overrides, env=env, label=mode)  # fmt: skip
            print(format_run(result), flush=True)
            runs[mode].append(result)

    print(f"\n{'mode':<12} {'MKL_CBWR':<12} {'median SPS':>10} {'all SPS':<22} {'vs off':>7}")
    base = statistics.median(r.sps for r in runs["off"])
    summary = {}
    for mode, results in runs.items():
        sps = [r.sps for r in results]
        median = statistics.median(sps)
        summary[mode] = {"mkl_cbwr": MODES[mode], "median_sps": median, "sps": sps, "ratio_to_off": median / base}
        print(f"{mode:<12} {MODES[mode] or '(empty)':<12} {median:>10.1f} {' / '.join(f'{v:.0f}' for v in sps):<22} {median / base:>7.3f}")
    if args.json:
        write_json(args.json, {"steps": args.steps, "rounds": args.rounds, "summary": summary,
                               "runs": {m: [r.to_dict() for r in rs] for m, rs in runs.items()}})  # fmt: skip


def time_updates(args: argparse.Namespace) -> None:
    """Milliseconds per update under each mode, one child process per (round, mode), alternated."""
    print(f"fp32 eager update, matched networks, {args.updates} updates x 3 timings per child, {args.rounds} alternated rounds")
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    command = [args.python, str(BENCH_DIR / "update_speed.py"), "--variants", "fp32", "--updates", str(args.updates), "--rounds", "3"]
    for round_index in range(args.rounds):
        for mode in list(MODES) if round_index % 2 == 0 else list(reversed(MODES)):
            wait_until_idle(args.wait_idle)
            output = subprocess.run(command, env={**os.environ, "MKL_CBWR": MODES[mode]}, capture_output=True, text=True, check=True).stdout
            row = next(line for line in output.splitlines() if line.startswith("fp32 "))
            times[mode].append(float(row.split()[1]))
            print(f"round {round_index}  {mode:<12} {times[mode][-1]:.3f} ms/update", flush=True)
    base = statistics.median(times["off"])
    print(f"\n{'mode':<12} {'MKL_CBWR':<12} {'median ms':>9} {'vs off':>7}  all (ms)")
    for mode, values in times.items():
        median = statistics.median(values)
        print(f"{mode:<12} {MODES[mode] or '(empty)':<12} {median:>9.3f} {median / base:>7.3f}  {' '.join(f'{v:.2f}' for v in values)}")
    if args.json:
        write_json(args.json, {"updates": args.updates, "rounds": args.rounds, "ms_per_update": times})


if __name__ == "__main__":
    main()
