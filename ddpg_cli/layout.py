"""The run directory and the experiment directories: every file name, defined once.

This layout is the contract between a training run and everything that reads it (the experiments,
`eval`, `export`, `compare`, `plot`); every module takes its names from here.

    RUN/                              one run (`ddpg train`, or one seed of a sweep or a trial)
      config.yaml                     the resolved config, as the run now goes
      checkpoints/last.pt             everything needed to resume
      checkpoints/best.pt             the best evaluation so far (no replay buffer)
      checkpoints/step_000005000.pt   periodic snapshots (no replay buffer)
      evaluations.csv                 every evaluation, one row each
      summary.json                    the final numbers of a finished run
      failure.json                    why a run started by an engine failed (removed when retried)
      train.log                       the human output of a run started by an engine
      tensorboard/                    event files
      export/                         exported policies
      .lock                           held while a process trains the run

    SWEEP/sweep.yaml                  a sweep: base config, grid, seeds
    SWEEP/<setting>/seed-<s>/         its runs
    SEARCH/tune.yaml                  a search: base config, space, study
    SEARCH/trial-NNNN/seed-<s>/       its trials' runs
    SEARCH/best.yaml                  the best trial's config
    SEARCH/optuna-journal.log         the study (local engine), SEARCH/ray/ (Ray engine)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
CHECKPOINT_SUFFIX = ".pt"
EVALUATIONS_FILE = "evaluations.csv"
SUMMARY_FILE = "summary.json"
FAILURE_FILE = "failure.json"
LOG_FILE = "train.log"
TENSORBOARD_DIR = "tensorboard"
EXPORT_DIR = "export"
LOCK_FILE = ".lock"

SWEEP_FILE = "sweep.yaml"
TUNE_FILE = "tune.yaml"
BEST_CONFIG_FILE = "best.yaml"
JOURNAL_FILE = "optuna-journal.log"  # optuna-dashboard opens .log journals
RAY_DIR = "ray"
RUNS_ROOT = Path("runs")  # where runs, sweeps and searches go by default, below the working directory


# --- a run -----------------------------------------------------------------------------------------


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR


def last_checkpoint(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR / LAST


def holds_checkpoints(run_dir: Path) -> bool:
    """Whether a run has saved anything there (a new run must not write over it)."""
    directory = checkpoint_dir(run_dir)
    return directory.is_dir() and any(directory.glob(f"*{CHECKPOINT_SUFFIX}"))


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    return _read_json(run_dir / SUMMARY_FILE)


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    write_text_atomic(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))


TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp-"  # a file being written is `.NAME.tmp-PID` until it is renamed


def temp_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: hidden, beside it, named after this process."""
    return path.parent / f"{TEMP_PREFIX}{path.name}{TEMP_SUFFIX}{os.getpid()}"


def write_text_atomic(path: Path, text: str) -> None:
    """Atomic, like the checkpoints: a reader never sees half a file."""
    temp = temp_path(path)
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def final_eval(run_dir: Path) -> float | None:
    """The mean return of a finished run's final evaluation (None when it has not finished)."""
    try:
        return float((read_summary(run_dir) or {})["final_eval"]["mean"])
    except (KeyError, TypeError, ValueError):
        return None


def clear_unsaved(run_dir: Path) -> None:
    """What a run killed before its first `last.pt` left behind (a best.pt, TensorBoard events, the
    first evaluations): it starts again from scratch, and its files with it."""
    for snapshot in checkpoint_dir(run_dir).glob(f"*{CHECKPOINT_SUFFIX}"):
        snapshot.unlink(missing_ok=True)
    shutil.rmtree(run_dir / TENSORBOARD_DIR, ignore_errors=True)
    for name in (EVALUATIONS_FILE, SUMMARY_FILE):
        (run_dir / name).unlink(missing_ok=True)


# --- a failure, as data ----------------------------------------------------------------------------


def write_failure(run_dir: Path, exit_code: int, error: str) -> None:
    """RUN/failure.json: the one-line reason a run failed and its exit code (atomic: an engine that
    reads half a file would take the run for one that left no reason)."""
    write_text_atomic(run_dir / FAILURE_FILE, json.dumps({"exit_code": exit_code, "error": error}))


def read_failure(run_dir: Path) -> str | None:
    """The reason in RUN/failure.json, or None when the run has not failed."""
    failure = _read_json(run_dir / FAILURE_FILE)
    return None if failure is None else str(failure.get("error", "failed"))


def clear_failure(run_dir: Path) -> None:
    (run_dir / FAILURE_FILE).unlink(missing_ok=True)


# --- names -----------------------------------------------------------------------------------------


def seed_dir_name(seed: int) -> str:
    return f"seed-{seed}"


def trial_dir_name(number: int) -> str:
    return f"trial-{number:04d}"


def seed_dirs(folder: Path) -> list[Path]:
    """The run dirs of a setting's or a trial's seeds, by name."""
    return sorted(folder.glob("seed-*"))


def trial_dirs(out: Path) -> list[Path]:
    """A search's trial folders."""
    return sorted(out.glob("trial-*"))


def trial_number(name: str) -> int:
    """`trial-0003` (a trial's directory name) is trial 3."""
    return int(name.rsplit("-", 1)[-1])


def default_run_dir(env_id: str, seed: int) -> Path:
    """runs/<env>-seed<seed>-<time>."""
    return RUNS_ROOT / f"{_env_name(env_id)}-seed{seed}-{_now()}"


def default_experiment_dir(kind: str, env_id: str) -> Path:
    """runs/<kind>/<env>-<time>: a sweep's (`sweeps`) or a search's (`tune`) default directory."""
    return RUNS_ROOT / kind / f"{_env_name(env_id)}-{_now()}"


def _env_name(env_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id.split(":")[-1])


def _now() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
