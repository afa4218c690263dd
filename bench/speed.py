"""Side-by-side speed of ours and the peers on Pendulum-v1 at the matched settings.

Runs alternate (ours, sb3, cleanrl, ours, sb3, cleanrl, ...) so slow drifts of the machine hit every
implementation alike; round r uses seed r. Runs go one after another, never two at once: on a 2-core
machine a second job would steal the cores being timed. Before each run the cores are sampled for 3 s
(`--wait-idle S` waits up to S seconds for them to be idle); during each run the CPU used by other
processes is recorded ("other CPU"). A run where others used more than 10% of the cores is discarded
and rerun after the cores go idle (`--retry-busy N`, default 2); the discarded runs stay in the JSON.
A 256x256 matmul is timed before and after (`_calibrate.py`): a VM's speed can drift with its host's
load, invisibly to the guest, so the walls should be read against that figure.

Reported per run and as medians: whole-process wall seconds, SPS = steps / wall, final evaluation
(deterministic, 10 episodes, reset seeds 1000..1009), peak RSS; then ours/peer of the median SPS.

Usage (from the repo root):
    python bench/speed.py --rounds 3 --steps 20000 \
        --cleanrl-script PATH/ddpg_continuous_action.py --cleanrl-python PATH/bin/python --json out.json
    python bench/speed.py --no-ours --peers sb3,cleanrl --rounds 1 ...   # peers only
    python bench/speed.py --set train.compile=true --variant eager:train.compile=false ...
        # also time ours with other settings, in the same alternation (impl `ours-eager`)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import (
    BENCH_DIR,
    RUN_HEADER,
    RunResult,
    default_work_dir,
    fmt,
    format_run,
    median_or_none,
    run_child_json,
    wait_until_idle,
    write_json,
)
from ours import DEFAULT_CONFIG, run_ours
from peers import ENV_ID, add_peer_args, run_peer, select_peers

BUSY = 0.1
"""Share of all cores busy (before a run) or used by others (during it) that marks a shared machine."""
PEERS_MATMUL_GFLOPS = 196
"""PEERS.md's 256x256 matmul speed on 2 threads, on the machine where its reference times were taken."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_peer_args(parser, default_peers="sb3,cleanrl")
    parser.add_argument("--no-ours", action="store_true", help="time the peers only")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="ours' config (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override passed to ours as --set (repeatable)")  # fmt: skip
    parser.add_argument("--variant", dest="variants", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                        help="also time ours with these overrides on top of --set, as impl `ours-NAME`, alternated "
                             "with the others (repeatable)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per implementation; round r uses seed r")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="before each run, wait up to S seconds for idle cores (default: only warn)")  # fmt: skip
    parser.add_argument("--retry-busy", type=int, default=2, metavar="N",
                        help="rerun a run up to N times when other processes used >10%% of the cores during it, "
                             "waiting for idle cores first (default: %(default)s)")  # fmt: skip
    parser.add_argument("--no-calibrate", action="store_true",
                        help="skip timing a 256x256 matmul before and after the runs (a few seconds)")  # fmt: skip
    parser.add_argument("--work-dir", type=Path, help="where run dirs and logs go; default bench/results/speed-*")
    parser.add_argument("--json", type=Path, help="write settings, every run, medians and ratios here")
    args = parser.parse_args()
    args.variant_overrides = {}
    for spec in args.variants:
        name, _, assignments = spec.partition(":")
        if not name or not assignments or not all("=" in a for a in assignments.split(",")):
            parser.error(f"--variant takes NAME:KEY=VALUE[,KEY=VALUE], got {spec!r}")
        args.variant_overrides[f"ours-{name}"] = assignments.split(",")
    if args.rounds < 1 or args.steps < 1 or args.retry_busy < 0:
        parser.error(f"need --rounds >= 1, --steps >= 1, --retry-busy >= 0; got {args.rounds}, {args.steps}, "
                     f"{args.retry_busy}")  # fmt: skip
    return args


def calibrate(python: str, when: str) -> float | None:
    """Time the dominant matmul now (`bench/_calibrate.py`), so walls can be read against PEERS.md's."""
    result, why = run_child_json([python, str(BENCH_DIR / "_calibrate.py")])
    if result is None:
        print(f"calibration {when} failed ({why})", file=sys.stderr)
        return None
    gflops = float(result["matmul_256_gflops"])
    print(f"machine {when}: 256x256 matmul {gflops:.0f} GFLOP/s on {result['torch_threads']} threads "
          f"(PEERS.md machine: about {PEERS_MATMUL_GFLOPS})", flush=True)  # fmt: skip
    return gflops


def run_one(impl: str, seed: int, args: argparse.Namespace, work_dir: Path, wait_s: float) -> RunResult:
    """One run of `impl`, after waiting up to `wait_s` for idle cores; the busy share seen is in `extra`."""
    busy = wait_until_idle(wait_s, threshold=BUSY)
    if busy is not None and busy > BUSY:
        print(f"warning: cores {busy:.0%} busy before {impl} seed {seed}: its timing may be inflated",
              file=sys.stderr, flush=True)  # fmt: skip
    if impl == "ours" or impl in args.variant_overrides:
        overrides = args.overrides + args.variant_overrides.get(impl, [])
        variant_dir = work_dir if impl == "ours" else work_dir / impl
        result = run_ours(seed, args.steps, python=args.python, config=args.config, work_dir=variant_dir,
                          overrides=overrides)  # fmt: skip
        result.impl = impl
    else:
        result = run_peer(impl, seed, args.steps, args, work_dir)
    result.extra["busy_before"] = busy
    return result


def run_clean(impl: str, seed: int, args: argparse.Namespace, work_dir: Path) -> tuple[RunResult, list[RunResult]]:
    """Run until one attempt is not contended (at most 1 + `--retry-busy` attempts).

    Returns the kept run and the discarded contended ones. Retries wait for idle cores first and use
    fresh run dirs (`retry1/`, ...), since ours refuses to overwrite a run.
    """
    discarded: list[RunResult] = []
    for attempt in range(args.retry_busy + 1):
        first = attempt == 0
        run_dir = work_dir if first else work_dir / f"retry{attempt}"
        wait_s = args.wait_idle if first else max(args.wait_idle, 600.0)
        result = run_one(impl, seed, args, run_dir, wait_s)
        contended = result.other_cpu_frac is not None and result.other_cpu_frac > BUSY
        if not contended or attempt == args.retry_busy:
            if contended:
                result.note = (result.note + " contended: not a clean figure").strip()
            return result, discarded
        print(format_run(result) + f"discarded: other processes used {result.other_cpu_frac:.0%} of the cores",
              flush=True)  # fmt: skip
        discarded.append(result)
    raise AssertionError("unreachable")


def medians(runs: list[RunResult]) -> dict[str, float | int | None]:
    """Medians over the successful runs of one implementation."""
    ok = [r for r in runs if r.ok]
    return {
        "runs_ok": len(ok),
        "runs": len(runs),
        "wall_s": median_or_none([r.wall_s for r in ok]),
        "sps": median_or_none([r.sps for r in ok]),
        "eval_mean": median_or_none([r.eval_mean for r in ok]),
        "peak_rss_mib": median_or_none([r.peak_rss_mib for r in ok]),
    }


def main() -> None:
    args = parse_args()
    ours = [] if args.no_ours else ["ours", *args.variant_overrides]
    impls = ours + select_peers(args)
    if not impls:
        raise SystemExit("nothing to run: --no-ours and no peers selected")
    if ours and not args.config.is_file():
        raise SystemExit(f"--config {args.config} is not a file")
    work_dir = (args.work_dir or default_work_dir("speed")).resolve()

    print(f"speed: {ENV_ID}, {args.steps} steps, {args.rounds} round(s), seeds 1..{args.rounds}, "
          f"order {', '.join(impls)} per round; runs one at a time")  # fmt: skip
    print("wall = whole child process (cleanrl: to its 'model saved' line); SPS = steps / wall")
    print("eval: final actor, deterministic, 10 episodes, reset seeds 1000..1009, mean return")
    print(f"work dir: {work_dir}")
    calibration = {"before": None if args.no_calibrate else calibrate(args.python, "before")}
    print()
    print(RUN_HEADER, flush=True)

    runs: dict[str, list[RunResult]] = {impl: [] for impl in impls}
    discarded: list[RunResult] = []
    for seed in range(1, args.rounds + 1):
        for impl in impls:
            result, dropped = run_clean(impl, seed, args, work_dir)
            runs[impl].append(result)
            discarded += dropped
            print(format_run(result), flush=True)

    calibration["after"] = None if args.no_calibrate else calibrate(args.python, "after")
    summary = {impl: medians(rs) for impl, rs in runs.items()}
    print(f"\nmedians over {args.rounds} round(s)")
    print(f"{'impl':<12} {'ok':>5} {'wall s':>8} {'SPS':>6} {'eval mean':>10} {'peak RSS MiB':>12}")
    for impl, m in summary.items():
        print(f"{impl:<12} {m['runs_ok']:>2}/{m['runs']:<2} {fmt(m['wall_s'], '.1f'):>8} {fmt(m['sps'], '.0f'):>6} "
              f"{fmt(m['eval_mean'], '.1f'):>10} {fmt(m['peak_rss_mib'], '.0f'):>12}")  # fmt: skip

    ratios: dict[str, float | None] = {}  # "ours/sb3", "ours-eager/sb3", ...
    for mine in ours:
        for impl in impls:
            if impl in ours:
                continue
            mine_sps, peer_sps = summary[mine]["sps"], summary[impl]["sps"]
            ratios[f"{mine}/{impl}"] = mine_sps / peer_sps if mine_sps and peer_sps else None
            print(f"{mine}/{impl} median SPS: {fmt(ratios[f'{mine}/{impl}'], '.2f')}")

    if args.json:
        write_json(args.json, {
            "env_id": ENV_ID, "steps": args.steps, "rounds": args.rounds, "order": impls,
            "config": str(args.config) if ours else None, "overrides": args.overrides,
            "variants": args.variant_overrides,
            "runs": [r.to_dict() for rs in runs.values() for r in rs],
            "discarded_contended_runs": [r.to_dict() for r in discarded], "matmul_gflops": calibration,
            "medians": summary, "sps_ratios": ratios,
        })  # fmt: skip
        print(f"wrote {args.json}")
    sys.exit(0 if all(r.ok for rs in runs.values() for r in rs) else 1)


if __name__ == "__main__":
    main()
