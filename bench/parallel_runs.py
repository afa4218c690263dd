"""Many runs on one machine: a sweep against the same runs done by hand.

Scenarios (each N seeds of the matched Pendulum config, `--steps` each):
  sweep        `ddpg sweep CONFIG --seeds ... --jobs auto`
  sequential   N `ddpg train`, one after another (the default thread choice: all free CPUs)
  at-once      N `ddpg train` started together, default thread choice (what users do by hand)
  torch-default  N `ddpg train` started together with torch's own default, every CPU each
                 (what `ddpg train` did before it chose its threads; very slow, so `--torch-default-steps`)
  pair         one `ddpg train` alone, then two started `--pair-gap` seconds apart: each one's speed
               against the one alone (the goal: each at least half)

Reported: total wall (first start to last exit), aggregate steps/s (all steps / total wall), each
run's own steps/s (its training loop, from summary.json) and final evaluation return. With
`--cleanrl-script`, one CleanRL run of the same steps for scale (as `speed.py` runs it).

Usage (from the repo root):
    python bench/parallel_runs.py --seeds 1-4 --steps 20000 --json bench/results/parallel.json \\
        --cleanrl-script PEERS/cleanrl/ddpg_continuous_action.py --cleanrl-python PEERS/cleanrl-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import REPO_ROOT, default_work_dir, wait_until_idle, write_json
from ours import DEFAULT_CONFIG

SCENARIOS = ("sweep", "sequential", "at-once", "torch-default", "pair")


def parse_seeds(spec: str) -> list[int]:
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


def train_command(python: str, config: Path, seed: int, steps: int, run_dir: Path, extra: list[str]) -> list[str]:
    return [python, "-m", "ddpg_cli", "train", str(config), "--set", f"seed={seed}", "--set", f"train.total_steps={steps}",
            *[part for item in extra for part in ("--set", item)], "--run-dir", str(run_dir), "--quiet"]  # fmt: skip


def summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run_together(commands: list[list[str]], gap_s: float = 0.0) -> tuple[float, list[int]]:
    """Start the commands (gap_s apart), wait for all; (wall from first start to last exit, exit codes)."""
    start = time.perf_counter()
    children = []
    for index, command in enumerate(commands):
        if index and gap_s:
            time.sleep(gap_s)
        children.append(subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    codes = [child.wait() for child in children]
    return time.perf_counter() - start, codes


def record(name: str, wall: float, run_dirs: list[Path], codes: list[int], steps: int) -> dict:
    runs = [summary(d) for d in run_dirs]
    result = {
        "scenario": name,
        "runs": len(run_dirs),
        "wall_s": wall,
        "aggregate_sps": steps * len(run_dirs) / wall,
        "run_sps": [r.get("steps_per_second") for r in runs],
        "final_eval": [r.get("final_eval", {}).get("mean") for r in runs],
        "exit_codes": codes,
    }
    sps = " / ".join(f"{v:.0f}" for v in result["run_sps"] if v)
    evals = " / ".join(f"{v:.1f}" for v in result["final_eval"] if v is not None)
    print(f"{name:<14} {len(run_dirs)} runs  wall {wall:7.1f} s  aggregate {result['aggregate_sps']:6.1f} steps/s  "
          f"each {sps}  final eval {evals}  exit {codes}", flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--seeds", default="1-4", help="first-last (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    parser.add_argument("--torch-default-steps", type=int, default=4_000, help="steps per run in torch-default")
    parser.add_argument("--pair-gap", type=float, default=3.0, help="seconds between the two hand-started runs")
    parser.add_argument("--wait-idle", type=float, default=60.0)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--cleanrl-script", type=Path)
    parser.add_argument("--cleanrl-python", default=None)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    work = (args.work_dir or default_work_dir("parallel")).resolve()
    config = args.config.resolve()
    results = []
    print(f"{len(seeds)} seeds ({args.seeds}) of {config.name}, {args.steps:,} steps each; work dir {work}", flush=True)

    for scenario in args.scenarios.split(","):
        wait_until_idle(args.wait_idle)
        base = work / scenario
        if scenario == "sweep":
            command = [args.python, "-m", "ddpg_cli", "sweep", str(config), "--seeds", args.seeds, "--set", f"train.total_steps={args.steps}",
                       "--jobs", "auto", "--out", str(base), "--quiet"]  # fmt: skip
            wall, codes = run_together([command])
            results.append(record(scenario, wall, sorted(base.glob("base/seed-*")), codes, args.steps))
        elif scenario == "sequential":
            dirs = [base / f"seed-{s}" for s in seeds]
            start, codes = time.perf_counter(), []
            for seed, run_dir in zip(seeds, dirs):
                codes += run_together([train_command(args.python, config, seed, args.steps, run_dir, [])])[1]
            results.append(record(scenario, time.perf_counter() - start, dirs, codes, args.steps))
        elif scenario in ("at-once", "torch-default"):
            steps = args.steps if scenario == "at-once" else args.torch_default_steps
            extra = [] if scenario == "at-once" else [f"train.torch_threads={_cpus()}"]
            dirs = [base / f"seed-{s}" for s in seeds]
            wall, codes = run_together([train_command(args.python, config, s, steps, d, extra) for s, d in zip(seeds, dirs)])
            results.append(record(scenario, wall, dirs, codes, steps))
        elif scenario == "pair":
            alone = base / "alone"
            wall, codes = run_together([train_command(args.python, config, seeds[0], args.steps, alone, [])])
            results.append(record("pair: alone", wall, [alone], codes, args.steps))
            wait_until_idle(args.wait_idle)
            dirs = [base / "first", base / "second"]
            wall, codes = run_together([train_command(args.python, config, s, args.steps, d, []) for s, d in zip(seeds[:2], dirs)], args.pair_gap)
            pair = record("pair: two", wall, dirs, codes, args.steps)
            reference = results[-1]["run_sps"][0]
            pair["vs_alone"] = [v / reference if v and reference else None for v in pair["run_sps"]]
            print(f"{'':<14} each against the run alone: {' / '.join(f'{v:.2f}' for v in pair['vs_alone'] if v)}", flush=True)
            results.append(pair)
        else:
            parser.error(f"unknown scenario {scenario!r}")

    if args.cleanrl_script:
        from peers import run_cleanrl  # noqa: PLC0415 - only with --cleanrl-script

        wait_until_idle(args.wait_idle)
        peer = run_cleanrl(seeds[0], args.steps, script=args.cleanrl_script.resolve(), python=args.cleanrl_python or args.python,
                           work_dir=work / "cleanrl")  # fmt: skip
        print(f"{'cleanrl':<14} 1 run   wall {peer.wall_s:7.1f} s  {peer.sps:6.1f} steps/s  final eval {peer.eval_mean}", flush=True)
        results.append({"scenario": "cleanrl", "wall_s": peer.wall_s, "aggregate_sps": peer.sps, "final_eval": [peer.eval_mean]})

    if args.json:
        write_json(args.json, {"config": str(config), "seeds": seeds, "steps": args.steps, "results": results,
                               "median_final_eval": {r["scenario"]: statistics.median([v for v in r["final_eval"] if v is not None] or [float("nan")]) for r in results}})  # fmt: skip


def _cpus() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


if __name__ == "__main__":
    main()
