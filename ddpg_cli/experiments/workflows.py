"""The sweep and search workflows, in two steps each so that a front end can speak between them:
`open_sweep` (create or resume the sweep, find the runs still to do) then `run_sweep` (hand them to
an engine, read the directory back); `open_search` then `run_search`. Each returns data; none prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ddpg_cli.config import Config, apply_override, build_config, config_to_dict, load_config
from ddpg_cli.errors import ConfigError
from ddpg_cli.experiments.engines import Engine, EngineResult, OnChange, OnTrial, get_engine
from ddpg_cli.experiments.runs import Group, collect_runs, group_runs, run_status
from ddpg_cli.experiments.sweep import RunSpec, Sweep, create_sweep, grid_size, parse_grid, parse_jobs, parse_seeds
from ddpg_cli.layout import SWEEP_FILE, TUNE_FILE, default_experiment_dir
from ddpg_cli.precision import settle_precision
from ddpg_cli.resources import plan_jobs

ConfigSource = Path | str | Config | None  # a YAML file, a preset's name, a config, or the default


def resolve_config(config: ConfigSource, overrides: Sequence[str] = ()) -> Config:
    """defaults < file (or preset) < overrides; a `Config` is taken as it is, overrides applied."""
    if not isinstance(config, Config):
        return load_config(Path(config) if config is not None else None, list(overrides))
    data = config_to_dict(config)
    for assignment in overrides:
        apply_override(data, assignment)
    return build_config(data)


# --- a sweep ---------------------------------------------------------------------------------------


@dataclass
class SweepPlan:
    sweep: Sweep
    specs: list[RunSpec]  # every run of the sweep
    todo: list[RunSpec]  # those to run now (not done, not being trained by another process)
    busy: int  # runs another process is training, left alone
    jobs: int  # runs at once


def open_sweep(config: ConfigSource = None, overrides: Sequence[str] = (), seeds: str | Sequence[int] | None = None,
               grid: Sequence[str] | dict[str, list[Any]] | None = None, out: Path | None = None, jobs: int | str | None = None,
               resume: Path | None = None) -> SweepPlan:  # fmt: skip
    """A new sweep in `out` (default runs/sweeps/<env>-<time>), or the one in `resume` as it was
    defined. `seeds`: "0-4", "0,3,7" or a list (default: the config's seed); `grid`: "KEY=V1,V2"
    items or {key: values}; `jobs`: runs at once, "auto", or None (auto, or a resumed sweep's choice)."""
    jobs_asked = parse_jobs(jobs) if jobs is not None else None
    if resume is not None:
        if config is not None or overrides or seeds is not None or grid or out is not None:
            raise ConfigError("--resume continues a sweep as it was defined; give only --jobs, --engine, --address, --quiet or --json with it")
        sweep = Sweep.load(resume)
        if jobs is not None and jobs_asked != sweep.jobs:
            sweep.jobs = jobs_asked
            sweep.save()
        specs = sweep.runs()
        jobs_count, _ = plan_jobs(sweep.jobs, len(specs), sweep.threads)
    else:
        base = resolve_config(config, overrides)
        parsed_grid = grid if isinstance(grid, dict) else parse_grid(list(grid or []))
        seed_list = parse_seeds(seeds) if isinstance(seeds, str) else (list(seeds) if seeds is not None else None)
        target = out or default_experiment_dir("sweeps", base.env.id)
        if (target / SWEEP_FILE).exists():
            raise ConfigError(f"{target} already holds a sweep; continue it with ddpg sweep --resume {target}, or choose another --out")
        count = len(seed_list or [base.seed]) * grid_size(parsed_grid)
        jobs_count, threads = plan_jobs(jobs_asked, count, base.train.torch_threads)
        source = str(config) if config is not None and not isinstance(config, Config) else None
        sweep = create_sweep(target, base, seed_list, parsed_grid, threads, source, list(overrides), jobs_asked)
        sweep.save()
        specs = sweep.runs()
    statuses = {spec.run_dir: run_status(spec.run_dir)[0] for spec in specs}
    todo = [spec for spec in specs if statuses[spec.run_dir] not in ("done", "running")]
    return SweepPlan(sweep, specs, todo, sum(status == "running" for status in statuses.values()), jobs_count)


@dataclass
class SweepOutcome:
    groups: list[Group]  # every run of the sweep, read back from its directory, by setting
    result: EngineResult  # how the engine ended


def run_sweep(plan: SweepPlan, engine: Engine | str = "local", on_change: OnChange | None = None, announce: Callable[[], None] | None = None) -> SweepOutcome:
    """Hand the runs still to do to `engine` (an engine or its name), then read the sweep back. On this
    machine, `train.precision: auto` is settled first, once for all runs (`announce` is called before
    a timing)."""
    engine = get_engine(engine) if isinstance(engine, str) else engine
    if plan.todo and engine.runs_here:
        settle_precision([spec.config for spec in plan.todo], announce)
    result = engine.run(plan.todo, plan.jobs, plan.sweep.threads, plan.sweep.out / SWEEP_FILE, on_change) if plan.todo else EngineResult()
    return SweepOutcome(group_runs(collect_runs([plan.sweep.out])), result)


# --- a search --------------------------------------------------------------------------------------


@dataclass
class SearchPlan:
    setup: Any  # tune.TuneSetup
    engine: Engine  # the engine the search runs on (a resumed search keeps its own)
    study: Any | None  # the Optuna study (None where the engine keeps its own)
    target: int  # finished trials to reach
    jobs: int  # runs at once
    retried: list[int]  # trials cut off by a crash, queued again
    finished_before: int  # trials the study had finished already
    resumed: bool


def open_search(config: ConfigSource = None, overrides: Sequence[str] = (), space: Path | dict[str, Any] | None = None, trials: int | None = None,
                seeds_per_trial: int = 1, jobs: int | str | None = None, out: Path | None = None, storage: str | None = None,
                study: str | None = None, pruner: str = "median", sampler: str = "tpe", resume: Path | None = None,
                engine: str = "local", address: str | None = None, gpus_per_run: float | None = None) -> SearchPlan:  # fmt: skip
    """A new search in `out` (default runs/tune/<env>-<time>), or the one in `resume`: with `trials`,
    that many more finished trials. `space`: a YAML file, or the space as data (default: the shipped
    DDPG space). `engine` names the engine a new search runs on (`address`, `gpus_per_run`: a Ray
    cluster's); a resumed search keeps its own."""
    from ddpg_cli.experiments.space import read_space_file
    from ddpg_cli.experiments.tune import PRUNERS, SAMPLERS, TuneSetup, finished_count, import_optuna, space_dimensions

    runner = get_engine(engine, address, gpus_per_run)
    runner.check_search(storage, study)
    jobs_asked = parse_jobs(jobs) if jobs is not None else None
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    if seeds_per_trial < 1:
        raise ConfigError(f"--seeds-per-trial must be at least 1, got {seeds_per_trial}")
    if pruner not in PRUNERS:
        raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    import_optuna()
    if resume is not None:
        if config is not None or overrides or space is not None or out is not None or storage is not None or study is not None:
            raise ConfigError("--resume continues a search as it was defined; give only --trials, --jobs, --quiet or --json with it")
        setup = TuneSetup.load(resume)
        if setup.engine != runner.name:  # a search resumes on the engine it began on
            runner = get_engine(setup.engine, gpus_per_run=gpus_per_run)
        handle, target, retried = runner.open_study(setup, False, trials)
        setup.trials = target
    else:
        base = resolve_config(config, overrides)
        target_dir = out or default_experiment_dir("tune", base.env.id)
        if (target_dir / TUNE_FILE).exists():
            raise ConfigError(f"{target_dir} already holds a search; continue it with ddpg tune --resume {target_dir}, or choose another --out")
        space_data = space if isinstance(space, dict) else read_space_file(space)
        dimensions = space_dimensions(space_data, base, space if isinstance(space, Path) else Path("the default space" if space is None else "the space"))
        setup = TuneSetup(target_dir.resolve(), config_to_dict(base), space_data, study or target_dir.name, storage, trials or 20, seeds_per_trial, sampler, pruner, 1,
                          runner.name, jobs_asked, dimensions)  # fmt: skip
        handle, target, retried = runner.open_study(setup, True, None)
        setup.save()
    if jobs is not None:
        setup.jobs = jobs_asked
    jobs_count, threads = plan_jobs(setup.jobs, max(setup.seeds_per_trial, 2), setup.base["train"].get("torch_threads"))
    if resume is None:
        setup.threads = threads
    setup.save()
    finished = finished_count(handle) if handle is not None else 0
    return SearchPlan(setup, runner, handle, target, max(jobs_count, setup.seeds_per_trial), retried, finished, resume is not None)


@dataclass
class SearchOutcome:
    report: dict[str, Any] | None  # `ddpg tune --json`'s object (None: stopped before any trial reported)
    best_config: Path | None  # OUT/best.yaml, when a trial completed
    plots: list[Path]
    stop_signal: str | None

    @property
    def failed(self) -> bool:
        """No trial completed, and some failed."""
        return self.report is not None and self.report["best"] is None and any(t["state"] == "failed" for t in self.report["trials"])


def run_search(plan: SearchPlan, on_trial: OnTrial | None = None) -> SearchOutcome:
    """Run the search's trials on its engine; then write best.yaml and the plots, and report."""
    from ddpg_cli.experiments.tune import study_report, write_best, write_plots

    setup = plan.setup
    ended = plan.engine.search(setup, plan.study, plan.jobs, plan.target, on_trial, plan.resumed)
    if ended.study is None:
        return SearchOutcome(None, None, [], ended.stop_signal or "SIGINT")
    best = write_best(setup, ended.study)
    plots = write_plots(setup, ended.study)
    return SearchOutcome(study_report(setup, ended.study), best, plots, ended.stop_signal)
