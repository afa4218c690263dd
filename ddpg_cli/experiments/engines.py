"""Engines: what executes run specs (a sweep's runs) and a search's trials, looked up by name.

An engine knows nothing of DDPG: it is handed `RunSpec`s (a resolved config and a run dir each), and
every run it starts is an ordinary `ddpg train --events` process. It reports how it ended as data,
an `EngineResult` (every run's progress, and the signal that stopped it, if any) or a `SearchResult`.

A new engine (say, many seeds batched in one process) implements `Engine` and adds itself to
`ENGINES`; the commands and the Python API find it by its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

from ddpg_cli.errors import ConfigError
from ddpg_cli.experiments.local import ProcessPool, RunProgress
from ddpg_cli.experiments.sweep import RunSpec

OnChange = Callable[[list[RunProgress]], None]  # every run's progress, each time something changes
OnTrial = Callable[[Any], None]  # a trial that ended (a tune.TrialOutcome)


@dataclass
class EngineResult:
    """How executing run specs ended."""

    runs: list[RunProgress] = field(default_factory=list)  # each run as it ended: done, failed, interrupted
    stop_signal: str | None = None  # "SIGINT" or "SIGTERM" when a signal stopped the engine

    @property
    def failed(self) -> list[RunProgress]:
        return [run for run in self.runs if run.status == "failed"]

    @property
    def saved(self) -> int:
        """Runs a stop signal interrupted (each saved its `last`)."""
        return sum(run.status == "interrupted" for run in self.runs)


@dataclass
class SearchResult:
    """How running a search's trials ended: its trials as an Optuna study (None when it was stopped
    before any had reported), and the signal that stopped it, if any."""

    study: Any | None
    stop_signal: str | None = None


class Engine(Protocol):
    """What every engine implements."""

    name: ClassVar[str]
    reports_progress: ClassVar[bool]  # whether `run` calls `on_change` as runs go (a live table), or as they end

    @property
    def runs_here(self) -> bool:
        """Whether the runs execute on this machine (so what this machine measures, such as the
        precision timing of `train.precision: auto`, holds for them)."""

    def check_search(self, storage: str | None, study: str | None) -> None:
        """Refuse search options this engine cannot honour (ConfigError)."""

    def run(self, specs: list[RunSpec], jobs: int, threads: int, marker: Path, on_change: OnChange | None = None) -> EngineResult:
        """Execute every spec, `jobs` at a time, `threads` torch threads each, until all have ended or a
        stop signal came. `marker` is the sweep's file, which every node must see."""

    def open_study(self, setup: Any, create: bool, more_trials: int | None) -> tuple[Any | None, int, list[int]]:
        """(the search's Optuna study, or None where the engine keeps its own; the finished trials to
        reach; trials cut off by a crash and queued again)."""

    def search(self, setup: Any, study: Any | None, jobs: int, target: int, on_trial: OnTrial | None, resume: bool) -> SearchResult:
        """Run trials (`setup.seeds_per_trial` runs each) until the study has `target` finished ones, or
        a stop signal came."""


class LocalEngine:
    """Processes on this machine: a few runs at a time, each a child process (`local.ProcessPool`);
    a search asks its Optuna study for settings and prunes at each evaluation (`tune.run_study`)."""

    name = "local"
    reports_progress = True
    runs_here = True

    def __init__(self, address: str | None = None, gpus_per_run: float | None = None) -> None:
        if address is not None:
            raise ConfigError("--address joins a Ray cluster; use it with --engine ray")

    def check_search(self, storage: str | None, study: str | None) -> None:
        return None

    def run(self, specs: list[RunSpec], jobs: int, threads: int, marker: Path, on_change: OnChange | None = None) -> EngineResult:
        pool = ProcessPool(jobs)
        runs = pool.run(specs, on_change=on_change)
        return EngineResult(runs, pool.stop_signal)

    def open_study(self, setup: Any, create: bool, more_trials: int | None) -> tuple[Any | None, int, list[int]]:
        from ddpg_cli.experiments.tune import finished_count, open_study, recover

        if create:  # an unreachable storage fails here, before anything is written
            return open_study(setup, create=True), setup.trials, []
        study = open_study(setup, create=False)
        retried = recover(setup, study)
        return study, (finished_count(study) + more_trials if more_trials is not None else setup.trials), retried

    def search(self, setup: Any, study: Any | None, jobs: int, target: int, on_trial: OnTrial | None, resume: bool) -> SearchResult:
        from ddpg_cli.experiments.tune import run_study

        pool = ProcessPool(jobs)
        run_study(setup, study, pool, target, on_trial)
        return SearchResult(study, pool.stop_signal)


class RayEngine:
    """Ray Tune trials on a Ray cluster (`ray_engine`): each run of a sweep, or each trial of a search
    (Ray's OptunaSearch and ASHA scheduler), is a trial Ray places; it reports runs as they end."""

    name = "ray"
    reports_progress = False

    def __init__(self, address: str | None = None, gpus_per_run: float | None = None) -> None:
        from ddpg_cli.experiments.ray_engine import import_ray

        import_ray()  # before anything is written
        self.address, self.gpus_per_run = address, gpus_per_run

    @property
    def runs_here(self) -> bool:
        return self.address is None  # a local cluster, started for this command

    def check_search(self, storage: str | None, study: str | None) -> None:
        if storage is not None or study is not None:
            raise ConfigError("--storage and --study are for the local engine; with --engine ray the search lives in Ray's experiment under OUT/ray")

    def run(self, specs: list[RunSpec], jobs: int, threads: int, marker: Path, on_change: OnChange | None = None) -> EngineResult:
        from ddpg_cli.experiments.ray_engine import resolve_gpus, run_sweep_on_ray

        if not specs:
            return EngineResult()
        with self._cluster() as stopped:
            runs = run_sweep_on_ray(specs, marker.parent, marker, threads, resolve_gpus(self.gpus_per_run, specs[0].config), on_change)
        if stopped:
            return EngineResult([], "SIGINT")
        return EngineResult(runs, "SIGINT" if any(run.status == "interrupted" for run in runs) else None)

    def open_study(self, setup: Any, create: bool, more_trials: int | None) -> tuple[Any | None, int, list[int]]:
        if not create and more_trials is not None:
            raise ConfigError("a search on Ray resumes to the trials it was given; start a new search for more")
        return None, setup.trials, []  # Ray keeps the search in its own experiment

    def search(self, setup: Any, study: Any | None, jobs: int, target: int, on_trial: OnTrial | None, resume: bool) -> SearchResult:
        from ddpg_cli.experiments.ray_engine import resolve_gpus, tune_on_ray

        with self._cluster() as stopped:
            study = tune_on_ray(setup, resolve_gpus(self.gpus_per_run, setup.base_config), on_trial, resume)
        if stopped:
            return SearchResult(None, "SIGINT")
        # Ray returns normally on Ctrl-C too: a search cut short shows trials stopped before their first
        # evaluation (read back as pruned with no values) and fewer trials than it was given.
        unfinished = sum(t.state.name == "PRUNED" and not t.intermediate_values for t in study.trials)
        return SearchResult(study, "SIGINT" if unfinished and len(study.trials) < setup.trials else None)

    def _cluster(self) -> Any:
        from ddpg_cli.experiments.ray_engine import cluster

        return cluster(self.address)


ENGINES: dict[str, type] = {"local": LocalEngine, "ray": RayEngine}


def get_engine(name: str, address: str | None = None, gpus_per_run: float | None = None) -> Engine:
    """The engine called `name`, set up for `address` (a Ray cluster) and `gpus_per_run`."""
    if name not in ENGINES:
        raise ConfigError(f"--engine must be {' or '.join(ENGINES)}, got {name!r}")
    return ENGINES[name](address, gpus_per_run)  # type: ignore[no-any-return]
