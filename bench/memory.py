"""Resident memory over a long `ddpg train` run: does it stay flat once the replay buffer is allocated?

One `ddpg train` child runs for --steps env steps (200,000 by default) with cheap settings (32x32
networks, batch 32, one env, TensorBoard on, a snapshot every 5% of the run) and a replay buffer sized
to hold every transition, so the buffer itself is allocated once, up front, and never wraps. This
script samples the child's resident set size (RSS) every --interval seconds and at each periodic
snapshot (whose file name gives the step), then prints:

- RSS at 10%, 50% and 100% of the steps (100%: the last sample before the child exits),
- the replay buffer's preallocated bytes,
- the largest RSS after the first 10%, its growth over the 10% figure, and the verdict: FLAT when the
  growth stays within --tolerance-mib, GREW otherwise.

RSS is read with psutil when it is installed (the `bench` extra), else from /proc/PID/status (VmRSS).
Exit status: 0 flat, 1 grew, 2 the run failed.

    OMP_NUM_THREADS=1 python bench/memory.py                       # 200,000 steps of Pendulum-v1
    OMP_NUM_THREADS=1 python bench/memory.py --steps 20000 --json bench/results/memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SNAPSHOT = re.compile(r"step_(\d+)\.pt$")


def rss_bytes(pid: int) -> int | None:
    """The resident set size of `pid`, or None once it is gone."""
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - psutil.NoSuchProcess and friends: the child has exited
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def buffer_bytes(env_id: str, capacity: int) -> int:
    """ReplayBuffer.bytes_needed for this env, computed in a child so this process stays light."""
    code = (
        "import gymnasium as gym; from ddpg_cli.replay_buffer import ReplayBuffer; "
        f"env = gym.make({env_id!r}); "
        f"print(ReplayBuffer.bytes_needed({capacity}, env.observation_space.shape[0], env.action_space.shape[0]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def settings(args: argparse.Namespace) -> list[str]:
    return [
        f"env.id={args.env}",
        f"seed={args.seed}",
        "agent.actor_hidden=[32, 32]",
        "agent.critic_hidden=[32, 32]",
        "agent.batch_size=32",
        f"agent.buffer_size={args.buffer_size or args.steps}",  # by default every transition: never wraps
        f"train.total_steps={args.steps}",
        f"train.learning_starts={min(1000, args.steps // 10)}",
        "train.torch_threads=1",
        "eval.every=0",
        "eval.episodes=2",
        f"checkpoint.every={max(args.steps // 20, 1)}",
        "checkpoint.keep=100",
        f"logging.every={max(args.steps // 200, 1)}",
        f"logging.tensorboard={'false' if args.no_tensorboard else 'true'}",
    ]


def measure(args: argparse.Namespace, run_dir: Path) -> dict:
    command = [sys.executable, "-m", "ddpg_cli", "train", "--quiet", "--run-dir", str(run_dir)]
    for item in settings(args):
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    samples: list[tuple[float, int, int]] = []  # (seconds, last known step, rss)
    step, next_sample = 0, 0.0
    checkpoints = run_dir / "checkpoints"
    while child.poll() is None:
        now = time.monotonic() - started
        newest = max((int(m.group(1)) for p in (checkpoints.glob("step_*.pt") if checkpoints.is_dir() else []) if (m := SNAPSHOT.search(p.name))), default=step)
        if newest > step or now >= next_sample:
            step = max(step, newest)
            rss = rss_bytes(child.pid)
            if rss is not None:
                samples.append((now, step, rss))
            next_sample = now + args.interval
        time.sleep(0.2)
    stdout, stderr = child.communicate()
    wall = time.monotonic() - started
    if child.returncode != 0:
        raise RuntimeError(f"ddpg train exited with {child.returncode}: {stderr.strip()[-500:]}")
    if not samples:
        raise RuntimeError("no RSS sample was taken (the run was too short)")

    def at(fraction: float) -> tuple[int, int]:
        target = fraction * args.steps
        for _, s, rss in samples:
            if s >= target:
                return s, rss
        return samples[-1][1], samples[-1][2]

    step_10, rss_10 = at(0.10)
    step_50, rss_50 = at(0.50)
    rss_end = samples[-1][2]
    after_10 = [rss for _, s, rss in samples if s >= step_10]
    peak_after_10 = max(after_10)
    growth = peak_after_10 - rss_10
    return {
        "env": args.env,
        "steps": args.steps,
        "wall_s": round(wall, 1),
        "steps_per_second": round(args.steps / wall, 1),
        "samples": len(samples),
        "rss_mib": {"10%": _mib(rss_10), "50%": _mib(rss_50), "100%": _mib(rss_end), "peak_after_10%": _mib(peak_after_10)},
        "steps_at": {"10%": step_10, "50%": step_50},
        "buffer_preallocated_mib": _mib(buffer_bytes(args.env, args.buffer_size or args.steps)),
        "growth_after_10%_mib": _mib(growth),
        "tolerance_mib": args.tolerance_mib,
        "flat": growth <= args.tolerance_mib * 2**20,
        "rss_reader": "psutil" if _has_psutil() else "/proc/PID/status",
        "trace": [(round(t, 1), s, _mib(rss)) for t, s, rss in samples],
    }


def _mib(value: int) -> float:
    return round(value / 2**20, 1)


def _has_psutil() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200_000, help="env steps of the run (default 200,000)")
    parser.add_argument("--env", default="Pendulum-v1", help="Gymnasium id (default Pendulum-v1)")
    parser.add_argument("--buffer-size", type=int, help="replay buffer capacity (default: --steps, so it never wraps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between RSS samples (default 3)")
    parser.add_argument("--tolerance-mib", type=float, default=16.0, help="growth after 10%% still called flat (default 16 MiB)")
    parser.add_argument("--no-tensorboard", action="store_true", help="run without TensorBoard logging")
    parser.add_argument("--work-dir", type=Path, help="where the run dir goes (default: a temporary dir, removed)")
    parser.add_argument("--json", type=Path, help="also write the result, with the whole RSS trace, here")
    args = parser.parse_args()
    if args.steps < 20:
        parser.error("--steps must be at least 20")

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        try:
            result = measure(args, Path(work) / "run")
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    rss = result["rss_mib"]
    print(f"{result['env']}, {result['steps']:,} steps in {result['wall_s']:.0f} s ({result['steps_per_second']:.0f} steps/s), {result['samples']} RSS samples ({result['rss_reader']})")
    print(f"RSS at 10% (step {result['steps_at']['10%']:,}): {rss['10%']:8.1f} MiB")
    print(f"RSS at 50% (step {result['steps_at']['50%']:,}): {rss['50%']:8.1f} MiB")
    print(f"RSS at 100%:{'':>16}{rss['100%']:8.1f} MiB")
    print(f"replay buffer, preallocated:  {result['buffer_preallocated_mib']:8.1f} MiB")
    verdict = "FLAT" if result["flat"] else "GREW"
    print(f"peak after 10%: {rss['peak_after_10%']:.1f} MiB, growth {result['growth_after_10%_mib']:+.1f} MiB -> {verdict} (tolerance {result['tolerance_mib']:g} MiB)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
