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
run's own steps/s (its training loop, from summary.json), its learning steps/s (the steps after the
warm-up, without the first updates that compile, evaluations and checkpoints: summary.json's
`learning_steps_per_second`, with the seconds of each phase) and final evaluation return. With
`--cleanrl-script`, one CleanRL run of the same steps for scale (as `speed.py` runs it).

`--set KEY=VALUE` goes to every run; each `--variant NAME:KEY=VALUE[,KEY=VALUE]` runs every scenario
again with those overrides on top, alternated with the others over `--rounds` (A B, A B, ...); the
end prints each variant's median aggregate steps/s against the first one's (and CleanRL's).

Usage (from the repo root):
    python bench/parallel_runs.py --seeds 1-4 --steps 20000 --json bench/results/parallel.json \\
        --cleanrl-script PEERS/cleanrl/ddpg_continuous_action.py --cleanrl-python PEERS/cleanrl-venv/bin/python
    python bench/parallel_runs.py --scenarios sweep --seeds 1-2 --rounds 2 --set train.compile=true \\
        --variant fp32:train.precision=fp32 --variant auto:train.precision=auto      # two jobs, two precisions
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


def parse_variant(text: str) -> tuple[str, list[str]]:
    """`NAME:KEY=VALUE[,KEY=VALUE]` -> (NAME, [KEY=VALUE, ...])."""
    name, _, settings = text.partition(":")
    if not name or not settings:
        raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE]")
    return name, settings.split(",")


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
    learning_sps = [r.get("learning_steps_per_second") for r in runs]
    result = {
        "scenario": name,
        "runs": len(run_dirs),
        "wall_s": wall,
        "aggregate_sps": steps * len(run_dirs) / wall,
        "run_sps": [r.get("steps_per_second") for r in runs],
        # Steps a second while learning, without warm-up, compiling, evaluations or checkpoints.
        "learning_sps": learning_sps,
        "learning_aggregate_sps": sum(v for v in learning_sps if v) or None,
        "session_seconds": [r.get("session_seconds") for r in runs],
        "final_eval": [r.get("final_eval", {}).get("mean") for r in runs],
        "exit_codes": codes,
    }
    sps = " / ".join(f"{v:.0f}" for v in result["run_sps"] if v)
    evals = " / ".join(f"{v:.1f}" for v in result["final_eval"] if v is not None)
    learning = " / ".join(f"{v:.0f}" for v in result["learning_sps"] if v)
    print(f"{name:<14} {len(run_dirs)} runs  wall {wall:7.1f} s  aggregate {result['aggregate_sps']:6.1f} steps/s  "
          f"each {sps} (learning {learning})  final eval {evals}  exit {codes}", flush=True)  # fmt: skip
    for run_dir, seconds in zip(run_dirs, result["session_seconds"]):
        if seconds:
            print(f"{'':<14} {run_dir.name}: " + ", ".join(f"{phase} {value:.1f} s" for phase, value in seconds.items()), flush=True)
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
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override for every run (repeatable)")
    parser.add_argument("--variant", dest="variants", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                        help="run the scenarios again with these overrides too, alternated (repeatable)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1, help="times each scenario runs per variant, alternated")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    work = (args.work_dir or default_work_dir("parallel")).resolve()
    config = args.config.resolve()
    variants = [parse_variant(text) for text in args.variants] or [("", [])]
    results = []
    print(f"{len(seeds)} seeds ({args.seeds}) of {config.name}, {args.steps:,} steps each; work dir {work}", flush=True)

    for round_index in range(args.rounds):
        for variant, settings in variants:
            for scenario in args.scenarios.split(","):
                label = f"{scenario} {variant}".strip()
                base = work / f"round-{round_index}" / (variant or "base") / scenario
                for result in run_scenario(scenario, label, base, args, config, seeds, [*args.overrides, *settings]):
                    results.append({**result, "variant": variant, "kind": result["scenario"].replace(f" {variant}", "", 1) if variant else result["scenario"]})
    if variants[0][0]:
        summarise_variants(results, [name for name, _ in variants])

    if args.cleanrl_script:
        from peers import run_cleanrl  # noqa: PLC0415 - only with --cleanrl-script

        wait_until_idle(args.wait_idle)
        peer = run_cleanrl(seeds[0], args.steps, script=args.cleanrl_script.resolve(), python=args.cleanrl_python or args.python,
                           work_dir=work / "cleanrl")  # fmt: skip
        print(f"{'cleanrl':<14} 1 run   wall {peer.wall_s:7.1f} s  {peer.sps:6.1f} steps/s  final eval {peer.eval_mean}", flush=True)
        results.append({"scenario": "cleanrl", "wall_s": peer.wall_s, "aggregate_sps": peer.sps, "final_eval": [peer.eval_mean]})
        for result in results:
            if result["scenario"] != "cleanrl" and result.get("aggregate_sps"):
                print(f"{result['scenario']:<22} aggregate / CleanRL's one run: {result['aggregate_sps'] / peer.sps:.2f}x", flush=True)

    if args.json:
        write_json(args.json, {"config": str(config), "seeds": seeds, "steps": args.steps, "overrides": args.overrides, "variants": args.variants, "results": results,
                               "median_final_eval": {r["scenario"]: statistics.median([v for v in r["final_eval"] if v is not None] or [float("nan")]) for r in results}})  # fmt: skip


def summarise_variants(results: list[dict], names: list[str]) -> None:
    """Each variant's median aggregate steps/s per scenario (whole runs, and their learning phases
    alone), against the first variant's."""
    for field, what in (("aggregate_sps", "aggregate"), ("learning_aggregate_sps", "learning")):
        by_kind: dict[tuple[str, str], list[float]] = {}
        for result in results:
            if result.get(field):
                by_kind.setdefault((result["kind"], result["variant"]), []).append(result[field])
        for (kind, variant), values in by_kind.items():
            first = by_kind.get((kind, names[0]))
            ratio = statistics.median(values) / statistics.median(first) if first else float("nan")
            print(f"{kind + ' ' + variant:<22} median {what} {statistics.median(values):7.1f} steps/s over {len(values)} rounds; {ratio:.2f}x {names[0]}",
                  flush=True)  # fmt: skip


def run_scenario(scenario: str, label: str, base: Path, args: argparse.Namespace, config: Path, seeds: list[int], overrides: list[str]) -> list[dict]:
    """One scenario, once; its records (two for `pair`)."""
    wait_until_idle(args.wait_idle)
    sets = [part for item in overrides for part in ("--set", item)]
    if scenario == "sweep":
        command = [args.python, "-m", "ddpg_cli", "sweep", str(config), "--seeds", args.seeds, "--set", f"train.total_steps={args.steps}", *sets,
                   "--jobs", "auto", "--out", str(base), "--quiet"]  # fmt: skip
        wall, codes = run_together([command])
        return [record(label, wall, sorted(base.glob("base/seed-*")), codes, args.steps)]
    if scenario == "sequential":
        dirs = [base / f"seed-{s}" for s in seeds]
        start, codes = time.perf_counter(), []
        for seed, run_dir in zip(seeds, dirs):
            codes += run_together([train_command(args.python, config, seed, args.steps, run_dir, overrides)])[1]
        return [record(label, time.perf_counter() - start, dirs, codes, args.steps)]
    if scenario in ("at-once", "torch-default"):
        steps = args.steps if scenario == "at-once" else args.torch_default_steps
        extra = overrides if scenario == "at-once" else [*overrides, f"train.torch_threads={_cpus()}"]
        dirs = [base / f"seed-{s}" for s in seeds]
        wall, codes = run_together([train_command(args.python, config, s, steps, d, extra) for s, d in zip(seeds, dirs)])
        return [record(label, wall, dirs, codes, steps)]
    if scenario == "pair":
        alone = base / "alone"
        wall, codes = run_together([train_command(args.python, config, seeds[0], args.steps, alone, overrides)])
        results = [record(f"{label}: alone", wall, [alone], codes, args.steps)]
        wait_until_idle(args.wait_idle)
        dirs = [base / "first", base / "second"]
        wall, codes = run_together([train_command(args.python, config, s, args.steps, d, overrides) for s, d in zip(seeds[:2], dirs)], args.pair_gap)
        pair = record(f"{label}: two", wall, dirs, codes, args.steps)
        reference = results[-1]["run_sps"][0]
        pair["vs_alone"] = [v / reference if v and reference else None for v in pair["run_sps"]]
        print(f"{'':<14} each against the run alone: {' / '.join(f'{v:.2f}' for v in pair['vs_alone'] if v)}", flush=True)
        return [*results, pair]
    raise SystemExit(f"unknown scenario {scenario!r}; choose among {', '.join(SCENARIOS)}")


def _cpus() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


if __name__ == "__main__":
    main()
