"""The Python API: train a config (fresh or resumed), run a sweep, run a search, read runs back.
The `ddpg` commands are a thin layer over these functions; notebooks and scripts call them directly.

    from ddpg_cli import api

    result = api.train("configs/smoke.yaml", overrides=["train.total_steps=2000"], run_dir="runs/nb")
    sweep = api.sweep("configs/smoke.yaml", seeds="0-2", grid=["agent.actor_lr=1e-3,3e-4"], out="runs/nb-sweep")
    print(api.compare(["runs/nb-sweep"])["groups"][0]["final"]["iqm"])

Each one-call function (`train`, `resume`, `sweep`, `tune`) has two steps underneath for front ends
that speak between them: `prepare_run` / `train_prepared`, `open_sweep` / `run_sweep`,
`open_search` / `run_search`. Errors are `ddpg_cli.errors.DdpgError`s with one clear line.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from ddpg_cli.errors import ConfigError
from ddpg_cli.experiments.engines import ENGINES, Engine, EngineResult, SearchResult, get_engine
from ddpg_cli.experiments.runs import Group, RunRecord, collect_runs, group_runs
from ddpg_cli.experiments.workflows import (ConfigSource, SearchOutcome, SearchPlan, SweepOutcome, SweepPlan, open_search, open_sweep,
                                            resolve_config, run_search, run_sweep)  # fmt: skip
from ddpg_cli.layout import default_run_dir
from ddpg_cli.run_state import PreparedRun, prepare_fresh, prepare_resume
from ddpg_cli.train import TrainObserver, TrainResult

__all__ = [
    "train", "resume", "sweep", "tune", "read_runs", "compare",
    "prepare_run", "train_prepared", "open_sweep", "run_sweep", "open_search", "run_search",
    "get_engine", "ENGINES", "Engine", "EngineResult", "SearchResult", "PreparedRun", "TrainResult", "TrainObserver",
    "SweepPlan", "SweepOutcome", "SearchPlan", "SearchOutcome", "Group", "RunRecord",
]  # fmt: skip


# --- one run ---------------------------------------------------------------------------------------


def prepare_run(config: ConfigSource = None, overrides: Sequence[str] = (), run_dir: Path | str | None = None, resume: Path | str | None = None,
                announce: Callable[[], None] | None = None) -> PreparedRun:  # fmt: skip
    """A run ready to train: a new one from `config` (a YAML file, a preset's name, a `Config`, or None
    for the default) with `overrides` ("dotted.key=value") into `run_dir` (default runs/<env>-seed<s>-<time>),
    or the run in `resume` continued with its own config (only train.total_steps may change). Its
    threads and precision are planned here; `announce` is called before a precision timing runs."""
    if resume is not None:
        if config is not None or run_dir is not None:
            raise ConfigError("--resume continues a run with its own config and directory; do not pass CONFIG or --run-dir with it")
        return prepare_resume(Path(resume), overrides)
    cfg = resolve_config(config, overrides)
    return prepare_fresh(cfg, Path(run_dir) if run_dir is not None else default_run_dir(cfg.env.id, cfg.seed), announce)


def train_prepared(prepared: PreparedRun, observer: TrainObserver | None = None) -> TrainResult:
    """Train a prepared run (the caller has told its warnings, and checked `finished`)."""
    from ddpg_cli.train import train as run_training

    return run_training(prepared.config, prepared.run_dir, resume=prepared.resume, observer=observer, threads=prepared.threads, precision=prepared.precision)


def train(config: ConfigSource = None, overrides: Sequence[str] = (), run_dir: Path | str | None = None, observer: TrainObserver | None = None) -> TrainResult:
    """Train a new run; see `prepare_run` for the arguments."""
    return train_prepared(prepare_run(config, overrides, run_dir), observer)


def resume(run_dir: Path | str, total_steps: int | None = None, observer: TrainObserver | None = None) -> TrainResult | None:
    """Continue the run in `run_dir` to its total steps (or to `total_steps`); None when it had already
    reached them. The resume's warnings (no replay buffer, other conditions) come as Python warnings."""
    prepared = prepare_run(overrides=[f"train.total_steps={total_steps}"] if total_steps is not None else [], resume=run_dir)
    for line in prepared.warnings:
        warnings.warn(line, stacklevel=2)
    return None if prepared.finished is not None else train_prepared(prepared, observer)


# --- many runs -------------------------------------------------------------------------------------


def sweep(config: ConfigSource = None, overrides: Sequence[str] = (), seeds: str | Sequence[int] | None = None,
          grid: Sequence[str] | dict[str, list[Any]] | None = None, out: Path | str | None = None, jobs: int | str | None = None,
          engine: str = "local", resume: Path | str | None = None, **engine_options: Any) -> SweepOutcome:  # fmt: skip
    """Train every seed of every grid setting (or continue the sweep in `resume`) on `engine`; the
    outcome holds the sweep's runs by setting and how the engine ended. See `open_sweep`."""
    runner = get_engine(engine, **engine_options)
    plan = open_sweep(config, overrides, seeds, grid, Path(out) if out is not None else None, jobs, Path(resume) if resume is not None else None)
    return run_sweep(plan, runner)


def tune(config: ConfigSource = None, overrides: Sequence[str] = (), space: Path | str | dict[str, Any] | None = None, trials: int | None = None,
         out: Path | str | None = None, resume: Path | str | None = None, **options: Any) -> SearchOutcome:  # fmt: skip
    """Search hyperparameters (or continue the search in `resume`); the outcome holds the report
    (`ddpg tune --json`'s object), best.yaml and the plots. Other options: see `open_search`."""
    space = Path(space) if isinstance(space, str) else space
    plan = open_search(config, overrides, space, trials, out=Path(out) if out is not None else None, resume=Path(resume) if resume is not None else None, **options)
    return run_search(plan)


def read_runs(paths: Sequence[Path | str]) -> list[Group]:
    """Every run under `paths` (run dirs, sweep or search dirs, folders holding them), by setting."""
    return group_runs(collect_runs([Path(path) for path in paths]))


def compare(paths: Sequence[Path | str], at: int | None = None, solved_at: float | None = None) -> dict[str, Any]:
    """`ddpg compare --json`'s object: each setting's final return across seeds (IQM, mean, 95% CI,
    the worst seed), or its returns at step `at`, and how many seeds reach `solved_at` (default: the
    `# solved at:` of the env's preset; `solved` is null where there is none)."""
    from ddpg_cli.experiments.compare import check_step, comparison, parse_threshold

    groups = read_runs(paths)
    if at is not None:
        check_step(groups, at)
    if solved_at is not None:
        solved_at = parse_threshold(str(solved_at))  # a finite number, or a ConfigError
    return comparison(groups, at, solved_at)
