"""`ddpg tune`: a hyperparameter search with Optuna, its trials run as `ddpg train` processes.

Optuna keeps the study (what was tried and how it scored, the sampler's and pruner's memory); this
module asks it for settings, turns each into `--seeds-per-trial` ordinary runs under
`OUT/trial-NNNN/seed-S/`, runs them with the local engine (processes, thread-aware like a sweep, never
Optuna's thread-based `n_jobs`), reports every evaluation to the trial so the pruner can stop it, and
tells the study how the trial ended.

The objective is the mean, over the trial's seeds, of the final evaluation return (the deterministic
policy over `eval.episodes` episodes); at each intermediate evaluation step the mean over the seeds is
reported for pruning. `OUT/tune.yaml` holds everything `--resume` needs; the study itself lives in an
Optuna journal file in OUT (safe for several processes on one machine), or in `--storage`.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ddpg_cli.config import Config, build_config, config_to_dict, config_to_yaml
from ddpg_cli.errors import ConfigError, DdpgError, MissingExtraError
from ddpg_cli.experiments.local import ProcessPool, RunProgress
from ddpg_cli.experiments.records import read_record, write_record
from ddpg_cli.experiments.space import Dimension, apply, check_space, read_space_file  # noqa: F401 - read_space_file is offered here too
from ddpg_cli.experiments.sweep import RunSpec
from ddpg_cli.layout import BEST_CONFIG_FILE, JOURNAL_FILE, RAY_DIR, TUNE_FILE, final_eval, seed_dir_name, trial_dir_name
FORMAT_NAME = "ddpg-cli-tune"
PRUNERS = ("median", "halving", "none")
SAMPLERS = ("tpe", "random")


class StorageUnreachable(DdpgError):
    """A --storage database that could not be reached."""

    exit_code = 1


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise MissingExtraError("ddpg tune needs Optuna: pip install 'ddpg-cli[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass
class TuneSetup:
    """One search, as `tune.yaml` records it."""

    out: Path
    base: dict[str, Any]  # the resolved base config (file < --set)
    space: dict[str, Any]  # the search space as given (validated into `dimensions`)
    study: str
    storage: str | None  # None: the journal file in OUT
    trials: int  # the study's total of finished (complete or pruned) trials to reach
    seeds_per_trial: int = 1
    sampler: str = "tpe"
    pruner: str = "median"
    threads: int = 1
    engine: str = "local"  # local, or ray: the experiment then lives under OUT/ray
    jobs: int | None = None  # the last --jobs given (None: auto); --resume without one keeps it
    dimensions: list[Dimension] = field(default_factory=list, repr=False)

    @property
    def base_config(self) -> Config:
        return build_config(self.base)

    def storage_url(self) -> str:
        if self.engine == "ray":
            return str(self.out / RAY_DIR / "tune")
        return self.storage or str(self.out / JOURNAL_FILE)

    def journal_file(self) -> Path | None:
        """The Optuna journal file on this machine that optuna-dashboard opens (None for a database or Ray)."""
        url = self.storage_url()
        return None if self.engine == "ray" or "://" in url else Path(url)

    def save(self) -> None:
        write_record(self.out / TUNE_FILE, FORMAT_NAME, {"study": self.study, "storage": self.storage, "trials": self.trials,
                                                         "seeds_per_trial": self.seeds_per_trial, "sampler": self.sampler, "pruner": self.pruner,
                                                         "threads": self.threads, "engine": self.engine, "jobs": self.jobs, "space": self.space, "base": self.base})  # fmt: skip

    @classmethod
    def load(cls, out: Path) -> TuneSetup:
        document = read_record(out, TUNE_FILE, FORMAT_NAME, "tuning")
        try:
            setup = cls(out.resolve(), document["base"], document["space"], document["study"], document.get("storage"), int(document["trials"]),
                        int(document["seeds_per_trial"]), document["sampler"], document["pruner"], int(document["threads"]),
                        str(document.get("engine", "local")), None if document.get("jobs") is None else int(document["jobs"]))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{out / TUNE_FILE} is damaged: {exc}") from None
        setup.dimensions = space_dimensions(setup.space, setup.base_config, out / TUNE_FILE)
        return setup


def space_dimensions(space: dict[str, Any], base: Config, source: Path) -> list[Dimension]:
    """Validate a space given as data (as tune.yaml keeps it) by the same rules as a space file."""
    return check_space(space, base, source)


# --- the study --------------------------------------------------------------------------------------


def open_study(setup: TuneSetup, create: bool) -> Any:
    optuna = import_optuna()
    storage = _storage(optuna, setup)
    pruner = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
        "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
        "none": lambda: optuna.pruners.NopPruner(),
    }[setup.pruner]()
    try:
        if create:
            study = optuna.create_study(study_name=setup.study, storage=storage, direction="maximize", pruner=pruner, load_if_exists=True)
        else:
            study = optuna.load_study(study_name=setup.study, storage=storage, pruner=pruner)
    except KeyError:
        raise ConfigError(f"no study named {setup.study!r} in {setup.storage_url()}") from None
    # Seeded, but never twice alike: from the config's seed, the trials the study already holds and
    # this worker's directory, so a resumed search or a second worker draws new settings, not the same.
    seed = (setup.base_config.seed + len(study.get_trials(deepcopy=False)) * 1_000_003 + zlib.crc32(str(setup.out).encode())) % 2**32
    study.sampler = optuna.samplers.TPESampler(seed=seed) if setup.sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    return study


def _storage(optuna: Any, setup: TuneSetup) -> Any:
    url = setup.storage_url()
    if "://" not in url:  # a journal file, on this machine
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except ImportError as exc:
        raise MissingExtraError(f"--storage {url}: the database driver is not installed ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's errors vary by driver; all mean "unreachable"
        raise StorageUnreachable(f"cannot reach --storage {url}: {str(exc).splitlines()[0][:200]}") from None


@contextlib.contextmanager
def ask_lock(setup: TuneSetup) -> Iterator[None]:
    """Counting the trials and asking for a new one must not interleave between two processes sharing
    a journal file, or both could ask for the last trial: an flock next to the journal. (A database
    shared by machines has no such lock: there, two workers can each start one trial past --trials.)"""
    url = setup.storage_url()
    if "://" in url:
        yield
        return
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(f"{url}.ask-lock", "a", encoding="utf-8") as handle:  # not .lock: Optuna's own lock is that
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def finished_count(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def recover(setup: TuneSetup, study: Any) -> list[int]:
    """Trials of this OUT that were running when their process died: marked failed and their
    settings queued again. Trials of other workers, or whose runs are still being trained, are left."""
    from optuna.trial import TrialState

    from ddpg_cli.run_state import run_is_locked

    retried = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("out") != str(setup.out):
            continue
        run_dirs = [Path(d) for d in trial.user_attrs.get("run_dirs", [])]
        if any(run_is_locked(d) for d in run_dirs):
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        retried.append(trial.number)
    return retried


# --- running trials ---------------------------------------------------------------------------------


@dataclass
class ActiveTrial:
    trial: Any
    runs: list[RunProgress]
    reported: set[int] = field(default_factory=set)  # evaluation steps already reported
    last_report: tuple[int, float] | None = None  # (step, value) last told to the pruner
    pruned: bool = False
    failed: str | None = None


@dataclass
class TrialOutcome:
    number: int
    state: str  # complete | pruned | failed
    value: float | None
    params: dict[str, Any]
    run_dirs: list[str]
    error: str | None = None
    pruned_at: int | None = None  # a pruned trial's last reported step (its value is the one reported there)


def trial_specs(setup: TuneSetup, number: int, values: dict[str, Any]) -> list[RunSpec]:
    base = setup.base_config
    specs = []
    for index in range(setup.seeds_per_trial):
        config = apply(base, values)
        data = config_to_dict(config)
        data["seed"] = base.seed + index
        if data["train"]["torch_threads"] is None:
            data["train"]["torch_threads"] = setup.threads
        run_dir = setup.out / trial_dir_name(number) / seed_dir_name(data["seed"])
        specs.append(RunSpec(run_dir, build_config(data), trial_dir_name(number), data["seed"], values))
    return specs


def run_study(
    setup: TuneSetup,
    study: Any,
    engine: ProcessPool,
    target: int,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    poll_s: float = 0.2,
) -> list[TrialOutcome]:
    """Run trials until the study has `target` finished ones (or a stop signal came), with as many
    trials at once as the engine's jobs allow (`seeds_per_trial` runs each)."""
    from optuna.trial import TrialState

    outcomes: list[TrialOutcome] = []
    active: list[ActiveTrial] = []
    with engine.handling_signals():
        while True:
            while engine.stop_signal is None and engine.jobs - engine.running() >= setup.seeds_per_trial:
                with ask_lock(setup):
                    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
                    if finished_count(study) + running >= target:
                        break
                    trial = study.ask()
                values = {dimension.key: dimension.suggest(trial) for dimension in setup.dimensions}
                specs = trial_specs(setup, trial.number, values)
                trial.set_user_attr("out", str(setup.out))
                trial.set_user_attr("run_dirs", [str(spec.run_dir) for spec in specs])
                runs = [RunProgress(spec, total=spec.config.train.total_steps) for spec in specs]
                for run in runs:
                    engine.start(run)
                active.append(ActiveTrial(trial, runs))
            engine.reap()
            for item in list(active):
                _report(item, engine)
                if all(run.status != "running" for run in item.runs):
                    active.remove(item)
                    outcome = _finish(study, item, engine.stop_signal is not None)
                    if outcome is not None:
                        outcomes.append(outcome)
                        if on_trial:
                            on_trial(outcome)
            if not active and (engine.stop_signal is not None or finished_count(study) >= target or engine.running() == 0 and _no_room(study, target)):
                break
            time.sleep(poll_s)
    return outcomes


def _no_room(study: Any, target: int) -> bool:
    from optuna.trial import TrialState

    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    return finished_count(study) + running >= target


def _report(item: ActiveTrial, engine: ProcessPool) -> None:
    """Report the mean over the trial's seeds at each evaluation step all of them have reached; stop
    the trial's runs when the pruner says so."""
    if item.pruned or item.failed:
        return
    by_step: dict[int, list[float]] = {}
    for run in item.runs:
        for event in list(run.events):
            if event.get("event") == "evaluation":
                by_step.setdefault(int(event["step"]), []).append(float(event["mean"]))
    total = item.runs[0].total
    for step in sorted(by_step):
        values = by_step[step]
        if step in item.reported or len(values) < len(item.runs) or step >= total:
            continue
        item.reported.add(step)
        item.last_report = (step, sum(values) / len(values))
        item.trial.report(item.last_report[1], step)
        if item.trial.should_prune():
            item.pruned = True
            for run in item.runs:
                engine.stop_run(run)
            return
    failed = [run for run in item.runs if run.status == "failed"]
    if failed:
        item.failed = f"seed {failed[0].spec.seed}: {failed[0].error}"
        for run in item.runs:
            engine.stop_run(run)


def _finish(study: Any, item: ActiveTrial, stopping: bool) -> TrialOutcome | None:
    """Tell the study how the trial ended; None when a stop signal cut it (it stays running in the
    study, and `--resume` retries its settings)."""
    from optuna.trial import TrialState

    trial = item.trial
    run_dirs = [str(run.spec.run_dir) for run in item.runs]
    failed = item.failed or next((f"seed {run.spec.seed}: {run.error}" for run in item.runs if run.status == "failed"), None)
    if failed:
        trial.set_user_attr("error", failed)
        study.tell(trial, state=TrialState.FAIL)
        return TrialOutcome(trial.number, "failed", None, trial.params, run_dirs, failed)
    if item.pruned:
        study.tell(trial, state=TrialState.PRUNED)
        step, value = item.last_report or (None, None)
        return TrialOutcome(trial.number, "pruned", value, trial.params, run_dirs, pruned_at=step)
    if stopping and any(run.status != "done" for run in item.runs):
        return None
    finals = [final_eval(run.spec.run_dir) for run in item.runs]
    if any(value is None for value in finals):
        study.tell(trial, state=TrialState.FAIL)
        return TrialOutcome(trial.number, "failed", None, trial.params, run_dirs, "a run ended without its final evaluation")
    value = sum(finals) / len(finals)  # type: ignore[arg-type]
    study.tell(trial, value)
    return TrialOutcome(trial.number, "complete", value, trial.params, run_dirs)


# --- results ----------------------------------------------------------------------------------------


def study_report(setup: TuneSetup, study: Any) -> dict[str, Any]:
    """The `ddpg tune --json` object: every trial of the study, and the best."""
    trials = []
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name.lower()
        trials.append({
            "number": trial.number,
            "state": {"complete": "complete", "pruned": "pruned", "fail": "failed", "running": "running", "waiting": "waiting"}.get(state, state),
            "value": trial.value,
            "params": decode_params(trial.params),
            "run_dirs": trial.user_attrs.get("run_dirs", []),
        })  # fmt: skip
    best = best_trial(study)
    return {
        "study": setup.study,
        "storage": setup.storage_url(),
        "trials": trials,
        "best": None if best is None else {"number": best.number, "value": best.value, "params": decode_params(best.params), "config": str(setup.out / BEST_CONFIG_FILE)},
    }


def best_trial(study: Any) -> Any | None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda trial: trial.value) if complete else None


def decode_params(params: dict[str, Any]) -> dict[str, Any]:
    """Trial parameters as config values: list choices travel through Optuna as JSON text."""
    return {key: json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value for key, value in params.items()}


def write_best(setup: TuneSetup, study: Any) -> Path | None:
    """OUT/best.yaml: the best trial's full config, runnable by `ddpg train` as it is (its thread
    count left to `ddpg train`'s own choice)."""
    best = best_trial(study)
    if best is None:
        return None
    config = apply(setup.base_config, decode_params(best.params))
    data = config_to_dict(config)
    data["train"]["torch_threads"] = setup.base["train"].get("torch_threads")
    path = setup.out / BEST_CONFIG_FILE
    header = f"# The best trial ({best.number}) of study {setup.study!r}: mean final evaluation return {best.value:.2f} over {setup.seeds_per_trial} seed(s).\n"
    path.write_text(header + config_to_yaml(build_config(data)), encoding="utf-8")
    return path


def write_plots(setup: TuneSetup, study: Any) -> list[Path]:
    """The optimisation history and the parameter importances, as Optuna's matplotlib figures."""
    written: list[Path] = []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as optuna_plots
    except ImportError:
        return written
    figures = {"history.png": optuna_plots.plot_optimization_history}
    if best_trial(study) is not None and len([t for t in study.trials if t.state.name == "COMPLETE"]) >= 2 and study.best_trial.params:
        figures["importances.png"] = optuna_plots.plot_param_importances
    for name, draw in figures.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw(study)
            figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
            figure.set_size_inches(8, 4.8)
            figure.tight_layout()
            figure.savefig(setup.out / name, dpi=110)
            plt.close(figure)
            written.append(setup.out / name)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
    return written
