"""Run one matched Pendulum-v1 training of a peer implementation (Stable-Baselines3, CleanRL).

Each run is a child process timed whole (spawn to exit), so the figure is comparable with ours and
with the reference figures in PEERS.md. The settings below are PEERS.md's "matched settings"; edit
them only together with that file.

What is timed, per peer:
- sb3: the whole `bench/_sb3_run.py` process minus nothing, i.e. imports + construction + `learn()` +
  the 10-episode evaluation (about 2,000 deterministic steps, well under a second). The runner's own
  `learn()` time is reported as `inner_s`.
- cleanrl: the unmodified script run with `--save-model`, from spawn to its `model saved to` line; the
  child is then stopped, because what follows is CleanRL's own evaluation (with exploration noise and
  video capture), which is not the protocol and would inflate the time. The saved actor is then scored
  by `bench/_cleanrl_eval.py` under the CleanRL interpreter, outside the timed span.

Usage (from the repo root):
    python bench/peers.py --peers sb3 --seed 1 --steps 20000
    python bench/peers.py --peers cleanrl --cleanrl-script PATH/ddpg_continuous_action.py \
        --cleanrl-python PATH/bin/python --seed 1 --steps 20000
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from common import (
    BENCH_DIR,
    RUN_HEADER,
    RunResult,
    default_work_dir,
    failure_note,
    format_run,
    run_child_json,
    run_measured,
    write_json,
)

ENV_ID = "Pendulum-v1"
PEER_NAMES = ("sb3", "cleanrl")
CLEANRL_SAVED = "model saved to "
"""CleanRL prints this line right after `torch.save` of the final actor and critic."""


def cleanrl_args(seed: int, steps: int) -> list[str]:
    """CleanRL's command line from PEERS.md, plus `--save-model` so the final actor can be scored."""
    return [
        "--env-id", ENV_ID, "--seed", str(seed), "--total-timesteps", str(steps),
        "--learning-starts", "1000", "--policy-frequency", "1", "--batch-size", "256",
        "--learning-rate", "3e-4", "--buffer-size", "1000000", "--gamma", "0.99", "--tau", "0.005",
        "--exploration-noise", "0.1", "--no-cuda", "--save-model",
    ]  # fmt: skip


def run_sb3(seed: int, steps: int, *, python: str, work_dir: Path) -> RunResult:
    """One SB3 DDPG run at the matched settings (see `bench/_sb3_run.py`)."""
    run_dir = work_dir / f"sb3-s{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [python, str(BENCH_DIR / "_sb3_run.py"), "--seed", str(seed), "--steps", str(steps), "--env-id", ENV_ID]
    proc = run_measured(cmd, cwd=run_dir, log_path=run_dir / "stdout.log")
    ok = proc.returncode == 0 and proc.result is not None
    result = proc.result or {}
    final_eval = result.get("final_eval")
    return RunResult.measured(
        "sb3",
        seed,
        steps,
        proc,
        ok=ok,
        final_eval=final_eval,
        inner_s=result.get("train_s"),
        note="" if ok else failure_note(proc, "sb3 run"),
        extra={"versions": result.get("versions"), "torch_threads": result.get("torch_threads")},
    )


def _cleanrl_env(script: Path) -> dict[str, str]:
    """Environment for the CleanRL child.

    Unbuffered output, so the `model saved to` line reaches us when it is printed. `cleanrl_utils` is
    found either next to the script (a flat copy) or one level up (a CleanRL checkout's layout).
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    extra = [str(script.parent), str(script.parent.parent)]
    env["PYTHONPATH"] = os.pathsep.join(extra + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def run_cleanrl(seed: int, steps: int, *, script: Path, python: str, work_dir: Path) -> RunResult:
    """One unmodified CleanRL `ddpg_continuous_action.py` run, timed to its model save, then scored."""
    run_dir = work_dir / f"cleanrl-s{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [python, str(script), *cleanrl_args(seed, steps)]
    proc = run_measured(
        cmd, cwd=run_dir, log_path=run_dir / "stdout.log", env=_cleanrl_env(script), stop_on=CLEANRL_SAVED
    )

    def failed(note: str) -> RunResult:
        return RunResult.measured("cleanrl", seed, steps, proc, ok=False, note=note)

    if proc.stop_line is None:
        return failed(failure_note(proc, "cleanrl run (no 'model saved to' line)"))
    model_path = run_dir / proc.stop_line[len(CLEANRL_SAVED) :].strip()
    if not model_path.is_file():
        return failed(f"cleanrl reported {model_path} but it does not exist")

    result, why = run_child_json([python, str(BENCH_DIR / "_cleanrl_eval.py"), str(model_path), "--env-id", ENV_ID])
    if result is None:
        return failed(f"cleanrl evaluation failed ({why})")
    return RunResult.measured(
        "cleanrl",
        seed,
        steps,
        proc,
        ok=True,
        final_eval=result["final_eval"],
        extra={"model_path": str(model_path), "versions": result.get("versions")},
    )


def add_peer_args(parser: argparse.ArgumentParser, *, default_peers: str) -> None:
    """The options that say which peers to run and with which interpreters (shared with speed.py)."""
    parser.add_argument(
        "--peers", default=default_peers, help=f"comma-separated, among {','.join(PEER_NAMES)}; '' for none"
    )
    parser.add_argument(
        "--python", default=sys.executable,
        help="interpreter with stable-baselines3 (and ddpg_cli) installed; default: the one running this",
    )  # fmt: skip
    parser.add_argument("--cleanrl-script", type=Path, help="path to CleanRL's ddpg_continuous_action.py")
    parser.add_argument("--cleanrl-python", help="interpreter of CleanRL's venv (gymnasium 0.29.1)")


def select_peers(args: argparse.Namespace) -> list[str]:
    """Parse `--peers`; drop CleanRL, saying why, when its script or interpreter is missing."""
    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEER_NAMES]
    if unknown:
        raise SystemExit(f"unknown peer(s) {unknown}; expected some of {list(PEER_NAMES)}")
    if "cleanrl" in names and not (args.cleanrl_script and args.cleanrl_python):
        print("skipping cleanrl: pass --cleanrl-script PATH and --cleanrl-python PY to run it", file=sys.stderr)
        names.remove("cleanrl")
    if "cleanrl" in names and not args.cleanrl_script.is_file():
        raise SystemExit(f"--cleanrl-script {args.cleanrl_script} is not a file")
    return names


def run_peer(name: str, seed: int, steps: int, args: argparse.Namespace, work_dir: Path) -> RunResult:
    """Dispatch one run of the named peer."""
    if name == "sb3":
        return run_sb3(seed, steps, python=args.python, work_dir=work_dir)
    if name == "cleanrl":
        return run_cleanrl(seed, steps, script=args.cleanrl_script.resolve(), python=args.cleanrl_python,
                           work_dir=work_dir)  # fmt: skip
    raise ValueError(f"unknown peer {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_peer_args(parser, default_peers="sb3,cleanrl")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--work-dir", type=Path, help="where run dirs and logs go; default bench/results/peers-*")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    names = select_peers(args)
    work_dir = (args.work_dir or default_work_dir("peers")).resolve()
    print(RUN_HEADER, flush=True)
    results = []
    for name in names:
        result = run_peer(name, args.seed, args.steps, args, work_dir)
        print(format_run(result), flush=True)
        results.append(result)
    if args.json:
        write_json(args.json, {"env_id": ENV_ID, "runs": [r.to_dict() for r in results]})
    sys.exit(0 if all(r.ok for r in results) else 1)


if __name__ == "__main__":
    main()
