"""The Ray engine: the same run specs as the local engine, each run (sweep) or trial (tune) a Ray
Tune trial, so that Ray schedules them over a cluster.

Inside a trial, each run is the same `ddpg train --events` child process the local engine starts (on
whichever node Ray placed the trial): exact resume, checkpoints, TensorBoard and RUN/train.log work
unchanged, and run dirs are absolute paths under `--out`, never inside Ray's own folders (Ray
changes each trial's working directory). Every evaluation is reported with `ray.tune.report`, with a
small checkpoint naming the run dir and its step; a trial lost with its node restarts (`FailureConfig`)
and its runs resume from their own `last.pt`. Across nodes, `--out` must be on storage they all
mount: each trial checks that it sees the sweep's or search's file there before it starts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from ddpg_cli.config import build_config
from ddpg_cli.errors import ConfigError, DdpgError, MissingExtraError
from ddpg_cli.experiments.local import RunProgress, failure_reason, launch
from ddpg_cli.experiments.sweep import RunSpec
from ddpg_cli.layout import RAY_DIR, TUNE_FILE, read_failure, seed_dir_name, seed_dirs, trial_dir_name, trial_dirs, trial_number
from ddpg_cli.layout import final_eval as run_final_eval
from ddpg_cli.reproducibility import DEFAULT_MKL_MODE, MKL_MODE_VARIABLE

MAX_FAILURES = 2  # restarts of a trial whose node or process was lost (its runs resume)
RUN_FAILED_CODES = (1, 2)  # `ddpg train`'s exit codes for a run that failed or had bad input


class RayUnreachable(DdpgError):
    """A Ray cluster address that could not be joined."""

    exit_code = 1


def import_ray() -> Any:
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise MissingExtraError("--engine ray needs Ray Tune: pip install 'ddpg-cli[ray]'") from None
    return ray


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS), or start a local one of `num_cpus`. Ray's own
    console output (its progress tables, its log lines) is silenced: the sweep or search prints its own."""
    ray = import_ray()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Workers get the reproducibility mode before they load torch, as every ddpg process does.
    env_vars = {MKL_MODE_VARIABLE: os.environ.get(MKL_MODE_VARIABLE, DEFAULT_MKL_MODE)}
    if os.environ.get("PYTHONPATH"):  # user envs (`module:Env-v0`) import on the workers too, whose working dirs differ
        env_vars["PYTHONPATH"] = os.pathsep.join(str(Path(entry).absolute()) for entry in os.environ["PYTHONPATH"].split(os.pathsep) if entry)
    import logging

    _check_reachable(address or os.environ.get("RAY_ADDRESS") or None)
    try:
        ray.init(address=address, num_cpus=num_cpus if address is None else None, runtime_env={"env_vars": env_vars},
                 include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, ignore_reinit_error=True)  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnreachable(f"cannot join the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: {str(exc).strip().splitlines()[0][:200]}") from None


@contextlib.contextmanager
def cluster(address: str | None) -> Iterator[list[bool]]:
    """Joined to (or running) a Ray cluster for the block, shut down after it. Ctrl-C inside ends the
    block early: the list it yields then holds True."""
    from ddpg_cli.resources import usable_cpus

    connect(address, num_cpus=usable_cpus())
    stopped: list[bool] = []
    try:
        yield stopped
    except KeyboardInterrupt:
        stopped.append(True)
    finally:
        import_ray().shutdown()


def resolve_gpus(asked: float | None, config: Any) -> float:
    """--gpus-per-run, or by default a whole GPU for a run on CUDA and none otherwise."""
    if asked is not None:
        return asked
    return 1.0 if config.train.device == "cuda" else 0.0


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nothing answers at (ray.init would retry for minutes)."""
    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    import socket

    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnreachable(f"cannot join the Ray cluster at {address}: {exc.strerror or exc}") from None


def spec_to_dict(spec: RunSpec) -> dict[str, Any]:
    return {"run_dir": str(spec.run_dir), "config": spec.config.model_dump(mode="json"), "setting": spec.setting, "seed": spec.seed, "values": spec.values}


def spec_from_dict(data: dict[str, Any]) -> RunSpec:
    return RunSpec(Path(data["run_dir"]), build_config(data["config"]), data["setting"], int(data["seed"]), dict(data["values"]))


def run_specs_in_trial(specs: list[RunSpec], marker: Path, report: Callable[[dict[str, Any], Path | None], None]) -> dict[str, Any]:
    """Inside a Ray trial: run `specs` side by side as child processes, report the mean over them of
    each evaluation step they have all reached, and return the final metrics.

    A run that fails on its own (bad input, a non-finite value: exit code 1 or 2) fails the same way
    every time, so the trial ends normally with `failed` and the run's one-line reason in its metrics:
    raising would make Ray restart it `MAX_FAILURES` times for nothing. Anything else (the child
    killed, `marker` not visible on this node) raises, and Ray's restart resumes the runs."""
    if not marker.is_file():
        raise RuntimeError(f"{marker} is not visible on this node: --out must be on storage every node mounts")
    children = [(spec, launch(spec, sys.executable)) for spec in specs]
    evaluations: dict[int, list[float]] = {}
    try:
        streams = [child.stdout for _, child in children]
        # Read the children's events in turn; a trial's runs evaluate at the same steps.
        import selectors

        selector = selectors.DefaultSelector()
        for (spec, child), stream in zip(children, streams):
            selector.register(stream, selectors.EVENT_READ, spec)
        open_streams = len(children)
        reported: set[int] = set()
        total = specs[0].config.train.total_steps
        while open_streams:
            for key, _ in selector.select(timeout=1.0):
                line = key.fileobj.readline()
                if not line:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") != "evaluation":
                    continue
                step = int(event["step"])
                evaluations.setdefault(step, []).append(float(event["mean"]))
                if len(evaluations[step]) == len(specs) and step not in reported and step < total:
                    reported.add(step)
                    report({"step": step, "eval_return": sum(evaluations[step]) / len(specs)}, specs[0].run_dir)
        failures, lost = [], []
        for spec, child in children:
            code = child.wait()
            if code in RUN_FAILED_CODES:
                error = failure_reason(spec.run_dir, code)
                failures.append(f"seed {spec.seed}: {error}")
            elif code != 0:
                lost.append(f"{spec.setting} seed {spec.seed}: exited with code {code}")
        if lost:
            raise RuntimeError(lost[0])
        if failures:  # NaN, not None: Ray's OptunaSearch passes every reported value to Optuna, which records NaN as failed
            return {"eval_return": float("nan"), "failed": True, "error": failures[0]}
    finally:
        for _, child in children:  # a trial stopped by Ray (a scheduler, Ctrl-C) stops its runs: they save
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    child.kill()
    finals = [run_final_eval(spec.run_dir) for spec in specs]
    if any(value is None for value in finals):
        raise RuntimeError("a run ended without its final evaluation")
    return {"step": total, "eval_return": sum(finals) / len(finals), "done": True}  # type: ignore[arg-type]


def tune_report(metrics: dict[str, Any], run_dir: Path | None) -> None:
    """`ray.tune.report` with a checkpoint that names the run dir and step (the run's own `last.pt`
    is what a restarted trial resumes from; it is not copied into Ray's storage)."""
    from ray import tune

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "run.json").write_text(json.dumps({"run_dir": str(run_dir), "step": metrics["step"]}), encoding="utf-8")
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


# --- a sweep on Ray ---------------------------------------------------------------------------------


def _sweep_trial(params: dict[str, Any]) -> None:
    """The Ray Tune trainable of a sweep: one run."""
    from ray import tune

    spec = spec_from_dict(params["run"])
    final = run_specs_in_trial([spec], Path(params["marker"]), tune_report)
    tune.report(final)


def run_sweep_on_ray(specs: list[RunSpec], out: Path, marker: Path, threads: int, gpus: float,
                     on_change: Callable[[list[RunProgress]], None] | None = None) -> list[RunProgress]:  # fmt: skip
    """Every spec as one Ray Tune trial (a plain grid), `threads` CPUs (and `gpus` GPUs) each;
    `on_change` sees every run each time one ends."""
    from ray import tune

    runs = {str(spec.run_dir): RunProgress(spec, total=spec.config.train.total_steps) for spec in specs}
    callback = _end_callback(runs, (lambda run: on_change(list(runs.values()))) if on_change else None)
    tuner = tune.Tuner(
        tune.with_resources(_sweep_trial, {"cpu": threads, "gpu": gpus}),
        param_space={"run": tune.grid_search([spec_to_dict(spec) for spec in specs]), "marker": str(marker)},
        tune_config=tune.TuneConfig(trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(name="sweep", storage_path=str(out / RAY_DIR), failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
                                  verbose=0, callbacks=[callback], log_to_file=True),  # fmt: skip
    )
    results = tuner.fit()
    for result in results:
        run = runs.get(str(result.config["run"]["run_dir"])) if result.config else None
        if run is None:
            continue
        if result.error is not None:
            run.status = "failed"
            run.error = run.error or _error_line(result.error)
        elif (result.metrics or {}).get("failed"):
            run.status, run.error = "failed", run.error or result.metrics.get("error")
        elif run.status in ("running", "pending"):
            run.status = "done" if run_final_eval(run.spec.run_dir) is not None else "interrupted"
    return list(runs.values())


def _trial_name(trial: Any) -> str:
    run = trial.config.get("run") if trial.config else None
    if isinstance(run, dict):
        return f"{run['setting']}-{seed_dir_name(run['seed'])}"[:120]
    return f"trial-{trial.trial_id}"


def _error_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    lines = [line for line in text if "RuntimeError:" in line]
    return (lines[-1].split("RuntimeError:", 1)[1].strip() if lines else (text[-1] if text else type(error).__name__))[:300]


def _end_callback(runs: dict[str, RunProgress], on_end: Callable[[RunProgress], None] | None) -> Any:
    """A Ray Tune callback that marks runs running, done or failed as their trials go, and tells the
    view. Ray saves its experiment state with the callbacks in it: this one pickles as nothing."""
    return _end_callback_class()(runs, on_end)


@functools.cache
def _end_callback_class() -> type:
    from ray.tune import Callback

    class EndCallback(Callback):  # no closure: Ray pickles the class with its experiment state
        def __init__(self, runs: dict[str, RunProgress], on_end: Callable[[RunProgress], None] | None) -> None:
            self.runs, self.on_end = runs, on_end

        def __getstate__(self) -> dict[str, Any]:
            return {}

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.runs, self.on_end = {}, None

        def _run(self, trial: Any) -> RunProgress | None:
            return self.runs.get(trial.config["run"]["run_dir"]) if trial.config and "run" in trial.config else None

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            if (run := self._run(trial)) is not None:
                run.status = "running"

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            if (run := self._run(trial)) is not None:
                run.step, run.last_eval = int(result.get("step", run.step)), result.get("eval_return", run.last_eval)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            if (trial.last_result or {}).get("failed"):  # a run failed on its own (see run_specs_in_trial)
                self._end(trial, "failed", _failure_of(trial))
            else:
                self._end(trial, "done", None)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._end(trial, "failed", _failure_of(trial))

        def _end(self, trial: Any, status: str, error: str | None) -> None:
            if (run := self._run(trial)) is None:
                return
            run.status, run.error = status, error
            if status == "done":
                run.step = run.total
            if self.on_end:
                self.on_end(run)

    return EndCallback


def _failure_of(trial: Any) -> str:
    """The run's own one-line reason, read from its failure record (Ray keeps only a traceback)."""
    run = trial.config.get("run", {}) if trial.config else {}
    return read_failure(Path(run.get("run_dir", ""))) or "the trial failed (see its RUN/train.log and Ray's log)"


# --- a search on Ray --------------------------------------------------------------------------------


def _distributions(dimensions: list[Any]) -> dict[str, Any]:
    """Our search space as Optuna distributions, for Ray's OptunaSearch."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = {}
    for dimension in dimensions:
        if dimension.choices is not None:
            space[dimension.key] = CategoricalDistribution([json.dumps(c) if isinstance(c, (list, dict)) else c for c in dimension.choices])
        elif dimension.integer:
            space[dimension.key] = IntDistribution(int(dimension.low), int(dimension.high), log=dimension.log)
        else:
            space[dimension.key] = FloatDistribution(float(dimension.low), float(dimension.high), log=dimension.log)
    return space


# Trials are numbered in the order Ray creates them, in the driver; a search resumed on Ray numbers
# its new trials after the ones already in OUT. The trainable reads its number from its directory.
_numbers: dict[str, int] = {}
_next_number = [0]


def _numbered(trial: Any) -> str:
    if trial.trial_id not in _numbers:
        _numbers[trial.trial_id] = _next_number[0]
        _next_number[0] += 1
    return trial_dir_name(_numbers[trial.trial_id])


def _tune_trial(params: dict[str, Any], setup: dict[str, Any]) -> None:
    """The Ray Tune trainable of a search: one trial, its seeds side by side."""
    from ray import tune

    from ddpg_cli.experiments.tune import TuneSetup, decode_params, trial_specs

    search = TuneSetup(Path(setup["out"]), setup["base"], setup["space"], setup["study"], None, setup["trials"], setup["seeds_per_trial"],
                       setup["sampler"], setup["pruner"], setup["threads"])  # fmt: skip
    number = trial_number(Path(tune.get_context().get_trial_dir()).name)
    specs = trial_specs(search, number, decode_params(params))
    final = run_specs_in_trial(specs, search.out / TUNE_FILE, tune_report)
    tune.report(final)


def tune_on_ray(setup: Any, gpus: float, on_trial: Callable[[Any], None] | None = None, resume: bool = False) -> Any:
    """Run the search as a Ray Tune experiment under OUT/ray: Ray's OptunaSearch proposes settings,
    Ray's ASHA scheduler stops trials early, trials run where Ray places them. Returns an in-memory
    Optuna study holding the outcome, for the report and plots."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    base = setup.base_config
    total, every = base.train.total_steps, max(base.eval.every, 1)
    # Early stopping is Ray's own: ASHA (asynchronous successive halving) for --pruner median or
    # halving, each trial judged at its evaluation steps against the others at the same step.
    scheduler = None if setup.pruner == "none" else ASHAScheduler(time_attr="step", metric="eval_return", mode="max", max_t=total, grace_period=every, reduction_factor=2)
    trainable = tune.with_resources(
        tune.with_parameters(_tune_trial, setup={"out": str(setup.out), "base": setup.base, "space": setup.space, "study": setup.study,
                                                  "trials": setup.trials, "seeds_per_trial": setup.seeds_per_trial, "sampler": setup.sampler,
                                                  "pruner": setup.pruner, "threads": setup.threads}),  # fmt: skip
        {"cpu": setup.threads * setup.seeds_per_trial, "gpu": gpus * setup.seeds_per_trial},
    )
    experiment = setup.out / RAY_DIR / "tune"
    _next_number[0] = 1 + max((trial_number(p.name) for p in trial_dirs(setup.out)), default=-1)
    callbacks = [_trial_end_callback(setup, on_trial)] if on_trial else []
    if resume:
        tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True, restart_errored=True)
    else:
        from optuna.samplers import RandomSampler, TPESampler

        sampler = TPESampler(seed=base.seed) if setup.sampler == "tpe" else RandomSampler(seed=base.seed)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(num_samples=setup.trials, scheduler=scheduler,
                                        search_alg=OptunaSearch(space=_distributions(setup.dimensions), metric="eval_return", mode="max", sampler=sampler),
                                        trial_name_creator=_numbered, trial_dirname_creator=_numbered),  # fmt: skip
            run_config=tune.RunConfig(name="tune", storage_path=str(setup.out / RAY_DIR), failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
                                      verbose=0, callbacks=callbacks),  # fmt: skip
        )
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is reported by us, not as Optuna's NaN warning
    results = tuner.fit()
    return _study_from_results(setup, results)


def _trial_end_callback(setup: Any, on_trial: Callable[[Any], None]) -> Any:
    return _trial_end_class()(setup.base_config.train.total_steps, setup.out, on_trial)


@functools.cache
def _trial_end_class() -> type:
    from ray.tune import Callback

    from ddpg_cli.experiments.tune import TrialOutcome, decode_params

    class TrialEnd(Callback):  # no closure: Ray pickles the class with its experiment state
        def __init__(self, total: int, out: Path, on_trial: Callable[[Any], None] | None) -> None:
            self.total, self.out, self.on_trial = total, out, on_trial

        def __getstate__(self) -> dict[str, Any]:
            return {}

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.total, self.out, self.on_trial = 0, Path("."), None

        def _tell(self, trial: Any, state: str, value: float | None, error: str | None = None, pruned_at: int | None = None) -> None:
            if self.on_trial is None:
                return
            number = _numbers.get(trial.trial_id, -1)
            run_dirs = _run_dirs(self.out, number)
            self.on_trial(TrialOutcome(number, state, value, decode_params(trial.config), run_dirs, error, pruned_at))

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            if result.get("failed"):
                self._tell(trial, "failed", None, result.get("error"))
                return
            finished = int(result.get("step", 0)) >= self.total and result.get("done")
            if finished:
                self._tell(trial, "complete", result.get("eval_return"))
            else:
                self._tell(trial, "pruned", result.get("eval_return"), pruned_at=result.get("step"))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._tell(trial, "failed", None, "see the trial's RUN/train.log")

    return TrialEnd


def _study_from_results(setup: Any, results: Any) -> Any:
    """The experiment's trials as an in-memory Optuna study (complete, pruned and failed), so that the
    report, best.yaml and the plots are made as for the local engine."""
    import optuna
    from optuna.trial import TrialState, create_trial

    distributions = _distributions(setup.dimensions)
    total = setup.base_config.train.total_steps
    study = optuna.create_study(study_name=setup.study, direction="maximize")
    rows = []
    for result in results:
        number = trial_number(Path(result.path).name) if result.path else len(rows)
        params = {key: value for key, value in (result.config or {}).items() if key in distributions}
        history = result.metrics_dataframe
        intermediate = {}
        if history is not None and "step" in history and "eval_return" in history:
            intermediate = {int(step): float(value) for step, value in zip(history["step"], history["eval_return"]) if step == step and value == value and int(step) < total}  # NaN: a result without them
        metrics = result.metrics or {}
        if result.error is not None or metrics.get("failed"):
            state, value = TrialState.FAIL, None
        elif metrics.get("done") and int(metrics.get("step", 0)) >= total:
            state, value = TrialState.COMPLETE, float(metrics["eval_return"])
        else:
            state, value = TrialState.PRUNED, (list(intermediate.values())[-1] if intermediate else None)
        run_dirs = _run_dirs(setup.out, number)
        rows.append((number, create_trial(state=state, value=value, params=params, distributions=distributions, intermediate_values=intermediate,
                                          user_attrs={"run_dirs": run_dirs, "out": str(setup.out)})))  # fmt: skip
    for _, trial in sorted(rows, key=lambda row: row[0]):
        study.add_trial(trial)
    return study


def _run_dirs(out: Path, number: int) -> list[str]:
    """The run dirs trial `number` made, as its record lists them."""
    return [str(p) for p in seed_dirs(out / trial_dir_name(number))]
