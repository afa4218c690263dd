"""Run one `ddpg train` of ours as a child process and read its `summary.json`.

Used by `speed.py` and `learning.py`. The wall time here is the whole process (interpreter start,
imports, training, final evaluation, writes), measured by the bench like the peers' times; the
`wall_s` that ours writes in `summary.json` is its own training clock and is kept as `inner_s`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from common import BENCH_DIR, REPO_ROOT, RunResult, failure_note, run_measured

DEFAULT_CONFIG = BENCH_DIR / "configs" / "pendulum_matched.yaml"


def ours_command(
    python: str, config: Path, *, seed: int, steps: int | None, run_dir: Path, overrides: Sequence[str] = ()
) -> list[str]:
    """`<python> -m ddpg_cli train CONFIG --set seed=S [--set train.total_steps=N] ... --run-dir DIR`."""
    cmd = [python, "-m", "ddpg_cli", "train", str(config), "--set", f"seed={seed}"]
    if steps is not None:
        cmd += ["--set", f"train.total_steps={steps}"]
    for override in overrides:
        cmd += ["--set", override]
    return [*cmd, "--run-dir", str(run_dir)]


def run_ours(
    seed: int,
    steps: int | None,
    *,
    python: str,
    config: Path,
    work_dir: Path,
    overrides: Sequence[str] = (),
    env: dict[str, str] | None = None,
    label: str = "ours",
) -> RunResult:
    """Train ours once; `steps=None` keeps the config's `train.total_steps`. `env` replaces the child's
    environment; `label` names the run (its impl) and its folder.

    The run dir is `work_dir/{label}-s{seed}/run` and must not exist yet (ours refuses to overwrite a
    run); the child's output goes to `work_dir/{label}-s{seed}/stdout.log`.
    """
    base = work_dir / f"{label}-s{seed}"
    base.mkdir(parents=True, exist_ok=True)
    run_dir = base / "run"
    cmd = ours_command(python, config.resolve(), seed=seed, steps=steps, run_dir=run_dir, overrides=overrides)
    proc = run_measured(cmd, cwd=REPO_ROOT, log_path=base / "stdout.log", env=env)

    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    final_eval = summary.get("final_eval")
    ok = proc.returncode == 0 and final_eval is not None
    if proc.returncode != 0:
        note = failure_note(proc, "ours")
    elif final_eval is None:
        note = f"ours exited 0 but {summary_path} has no final_eval"
    else:
        episodes = len(final_eval.get("returns", []))
        note = "" if episodes == 10 else f"final_eval has {episodes} episodes, not the protocol's 10"
    return RunResult.measured(
        label,
        seed,
        int(summary.get("steps", steps or 0)),
        proc,
        ok=ok,
        final_eval=final_eval,
        inner_s=summary.get("wall_s"),
        note=note,
        extra={"run_dir": str(run_dir), "command": cmd},
    )
