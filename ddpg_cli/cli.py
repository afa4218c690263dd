"""The `ddpg` command line: thin Typer commands over the core.

This is the only module that turns domain errors into messages and exit codes:
0 success; 1 runtime failure; 2 usage, config or input error; 130 / 143 stopped by SIGINT / SIGTERM
(after saving a checkpoint).
"""

from __future__ import annotations

import os
import sys
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer
from rich.console import Console

from ddpg_cli import __version__
from ddpg_cli.errors import ConfigError, DdpgError, describe_error, one_line

app = typer.Typer(
    name="ddpg",
    help="Train, evaluate, render and export DDPG agents on continuous-control Gymnasium environments.",
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)  # long paths stay whole, for terminals and for scripts
err_console = Console(stderr=True, soft_wrap=True)
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Domain errors become one line on stderr and their exit code; nothing prints a traceback unless
    DDPG_DEBUG=1 asks for it."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):  # Typer's own flow and usage errors
            raise
        except DdpgError as exc:
            _fail(*describe_error(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - the edge of the program: report, do not dump
            if os.environ.get("DDPG_DEBUG"):
                raise
            _fail(*describe_error(exc))

    return wrapper  # type: ignore[return-value]


def _fail(message: str, code: int) -> None:
    from rich.markup import escape  # the message is text: 'ddpg-cli[render]' must not read as markup

    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _complete_config(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion of CONFIG: preset names, and YAML files (presets.complete_config)."""
    from ddpg_cli.presets import complete_config

    return complete_config(incomplete)


def _version(value: bool) -> None:
    if value:
        console.print(f"ddpg-cli {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Train, evaluate, render and export DDPG agents on continuous-control Gymnasium environments."""


# --- train -----------------------------------------------------------------------------------------


@app.command()
@reports_errors
def train(
    config: Annotated[Optional[Path], typer.Argument(help="A YAML config file or a preset's name (ddpg configs lists them). Without one, the built-in default (Pendulum-v1) is used.", show_default=False, autocompletion=_complete_config)] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a dotted config key, e.g. --set agent.actor_lr=1e-3 (repeatable).", show_default=False)] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="Where the run is written (default: runs/<env>-seed<seed>-<time>).", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this directory to its configured total steps.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; only the summary.")] = False,
    events: Annotated[bool, typer.Option("--events", hidden=True, help="For engines: JSON events on stdout, the rest on stderr; stop when the parent dies.")] = False,
) -> None:
    """Train a DDPG agent; checkpoints and TensorBoard logs go into the run directory."""
    from ddpg_cli.api import prepare_run, train_prepared
    from ddpg_cli.experiments.events import recording_failure

    out = err_console if events else console  # with --events, stdout carries only the events
    failure_dir = (resume or run_dir) if events else None  # an engine reads why its run failed
    with recording_failure(failure_dir):
        prepared = prepare_run(config, overrides or [], run_dir, resume, announce=_announce_precision_timing)
    for warning in prepared.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if prepared.finished is not None:
        out.print(prepared.finished)
        return
    cfg, target, threads = prepared.config, prepared.run_dir, prepared.threads
    observer = _train_observer(events, quiet)
    action = "resuming" if prepared.resume else "training"
    count = f"{threads.threads} thread{'s' if threads.threads != 1 else ''} ({threads.reason})"
    out.print(f"{action} [bold]{cfg.env.id}[/] for {cfg.train.total_steps:,} steps, seed {cfg.seed}, {count}, {prepared.precision.describe()} -> {target}", highlight=False, soft_wrap=True)
    with recording_failure(failure_dir):
        result = train_prepared(prepared, observer)
    _report_training(result, out)


def _train_observer(events: bool, quiet: bool) -> Any:
    if events:
        from ddpg_cli.experiments.events import EventsObserver, stop_when_parent_dies

        stop_when_parent_dies()
        return EventsObserver(sys.stdout)
    if not quiet:
        from ddpg_cli.progress import RichTrainView

        return RichTrainView(console)
    return None


def _report_training(result: Any, out: Console) -> None:
    from ddpg_cli.layout import last_checkpoint

    target = result.run_dir
    if result.stopped_by:
        out.print(
            f"[yellow]stopped by {result.stopped_by}[/] at step {result.steps:,}; checkpoint saved to {last_checkpoint(target)}\n"
            f"resume with: ddpg train --resume {target}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_CODES[result.stopped_by])
    final = result.final_eval
    out.print(f"[bold green]done[/] in {_duration(result.wall_seconds)}: {result.steps:,} steps -> {target}", highlight=False, soft_wrap=True)
    if final is not None:
        out.print(f"final eval return {final.mean:.2f} ± {final.std:.2f} over {len(final.returns)} episodes; best eval {result.best_eval:.2f}", highlight=False)


# --- eval ------------------------------------------------------------------------------------------

CheckpointOption = Annotated[str, typer.Option("--checkpoint", "-c", help="In a run dir: best, last, or a checkpoint file name.")]
PolicyPathArgument = Annotated[Path, typer.Argument(help="A run directory or a checkpoint file.", show_default=False)]
SeedOption = Annotated[Optional[int], typer.Option("--seed", min=0, help="Episode i resets with seed+i (default: the run's eval.seed).", show_default=False)]


@app.command("eval")
@reports_errors
def eval_command(
    path: PolicyPathArgument,
    episodes: Annotated[Optional[int], typer.Option("--episodes", "-n", min=1, help="Episodes to run (default: the run's eval.episodes).", show_default=False)] = None,
    seed: SeedOption = None,
    checkpoint: CheckpointOption = "last",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout and nothing else there.")] = False,
    min_return: Annotated[Optional[float], typer.Option("--min-return", help="Exit 1 when the mean return falls below this (a CI gate).", show_default=False)] = None,
) -> None:
    """Evaluate a trained policy deterministically (no noise) on fresh envs."""
    import json

    from ddpg_cli.envs import make_env
    from ddpg_cli.evaluate import evaluate
    from ddpg_cli.policy import load_policy

    loaded = load_policy(path, checkpoint)
    episodes = episodes or loaded.config.eval.episodes
    seed = loaded.config.eval.seed if seed is None else seed
    env = make_env(loaded.config.env)
    try:
        result = evaluate(loaded.policy, env, episodes, seed)
    finally:
        env.close()

    if as_json:
        payload = {**result.as_dict(), "checkpoint": str(loaded.checkpoint), "step": loaded.step, "env_id": loaded.config.env.id}
        typer.echo(json.dumps(payload))
    else:
        from rich.table import Table

        table = Table(title=f"{loaded.config.env.id} · {loaded.checkpoint} · step {loaded.step:,}", title_justify="left")
        table.add_column("episode", justify="right")
        table.add_column("seed", justify="right")
        table.add_column("return", justify="right")
        table.add_column("length", justify="right")
        for i, (episode_return, length) in enumerate(zip(result.returns, result.lengths)):
            table.add_row(str(i), str(seed + i), f"{episode_return:.2f}", str(length))
        console.print(table)
        console.print(f"mean return {result.mean:.2f} ± {result.std:.2f} over {len(result.returns)} episodes", highlight=False)
    if min_return is not None and result.mean < min_return:
        err_console.print(f"[bold red]failed:[/] mean return {result.mean:.2f} is below --min-return {min_return:g}", highlight=False)
        raise typer.Exit(1)


# --- render ----------------------------------------------------------------------------------------


@app.command("render")
@reports_errors
def render_command(
    path: PolicyPathArgument,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The video to write: FILE.gif or FILE.mp4.", show_default=False)] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes to record, back to back.")] = 1,
    fps: Annotated[Optional[float], typer.Option("--fps", min=1, max=240, help="Frames per second (default: the env's render_fps, else 30).", show_default=False)] = None,
    seed: SeedOption = None,
    checkpoint: CheckpointOption = "last",
    human: Annotated[bool, typer.Option("--human", help="Show the episodes in a window instead of writing a video (needs a display).")] = False,
    every: Annotated[int, typer.Option("--every", min=1, metavar="N", help="Keep one frame in N: a lighter, faster video that still plays in real time (the default fps is divided by N).")] = 1,
    width: Annotated[Optional[int], typer.Option("--width", min=16, max=4096, metavar="PIXELS", help="Scale the frames to this width, the height in proportion (MuJoCo renders 480 wide).", show_default=False)] = None,
) -> None:
    """Record deterministic episodes to a GIF or MP4 (headless), or watch them with --human."""
    from ddpg_cli.policy import load_policy
    from ddpg_cli.render import render_video, render_window

    if human and out is not None:
        raise ConfigError("--human shows the episodes in a window and writes no file; drop --out, or drop --human to write the video")
    if not human and out is None:
        raise ConfigError("render needs --out FILE.gif or FILE.mp4 (or --human to watch in a window)")
    if human and (every != 1 or width is not None):
        raise ConfigError("--every and --width shape the video file; --human shows every frame in the env's window")
    loaded = load_policy(path, checkpoint)
    seed = loaded.config.eval.seed if seed is None else seed
    if human:
        result = render_window(loaded, episodes, seed)
        console.print(f"showed {episodes} episode{'s' if episodes > 1 else ''} of {loaded.config.env.id} in a window", highlight=False, markup=False)
    else:
        from ddpg_cli.progress import RichRenderView

        view = RichRenderView(err_console, out.suffix.lower().lstrip(".").upper()) if err_console.is_terminal else None
        result = render_video(loaded, out, episodes, seed, fps, every, width, view)
        each = "one per step" if every == 1 else f"one every {every} steps"
        console.print(f"wrote {result.out}: {result.frames} frames at {result.fps:g} fps (per episode: the reset frame, then {each})", highlight=False, markup=False)
    for i, (episode_return, length) in enumerate(zip(result.eval.returns, result.eval.lengths)):
        console.print(f"episode {i} (seed {seed + i}): return {episode_return:.2f}, {length} steps", highlight=False, markup=False)


# --- export ----------------------------------------------------------------------------------------


@app.command("export")
@reports_errors
def export_command(
    path: PolicyPathArgument,
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="onnx|torchscript", help="onnx (run it with onnxruntime) or torchscript (torch.jit.load).", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="File to write (default: <run_dir>/export/policy.onnx or .pt); a JSON sidecar goes to FILE.json.", show_default=False)] = None,
    checkpoint: CheckpointOption = "last",
) -> None:
    """Export the policy to ONNX or TorchScript (obs -> actions), verified after writing."""
    from ddpg_cli.export import TOLERANCE, export_policy
    from ddpg_cli.policy import load_policy

    loaded = load_policy(path, checkpoint)
    result = export_policy(loaded, fmt, out)
    console.print(f"exported {loaded.checkpoint} (step {loaded.step:,}) as {result.format} to {result.out}", highlight=False, markup=False)
    console.print(f"sidecar {result.sidecar}", highlight=False, markup=False)
    console.print(
        f"verified on {result.observations} observations from {loaded.config.env.id}: max abs difference {result.max_abs_diff:.1e} (tolerance {TOLERANCE:g})",
        highlight=False,
        markup=False,
    )


# --- many runs: sweep, compare, plot --------------------------------------------------------------

GpusOption = Annotated[Optional[float], typer.Option("--gpus-per-run", min=0, help="With --engine ray: GPUs each run asks Ray for (a fraction shares one; default 1 when train.device is cuda, else 0).", show_default=False)]
EngineOption = Annotated[str, typer.Option("--engine", metavar="local|ray", help="local: processes on this machine; ray: trials of Ray Tune, on a Ray cluster.")]
AddressOption = Annotated[Optional[str], typer.Option("--address", help="With --engine ray: the cluster to join (auto, or HOST:PORT; default: RAY_ADDRESS, else a new local one).", show_default=False)]
OverridesOption = Annotated[Optional[list[str]], typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a dotted config key for every run (repeatable).", show_default=False)]
RunPathsArgument = Annotated[list[Path], typer.Argument(help="Sweep directories, run directories, or folders holding them.", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout and nothing else there.")]


def _announce_precision_timing() -> None:
    err_console.print("choosing the precision: timing fp32 against bf16 updates on this machine (once; later runs read the result)", highlight=False, soft_wrap=True)


@app.command("sweep")
@reports_errors
def sweep_command(
    config: Annotated[Optional[Path], typer.Argument(help="A YAML config file or a preset's name (default: the built-in Pendulum-v1 config).", show_default=False, autocompletion=_complete_config)] = None,
    overrides: OverridesOption = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", metavar="SPEC", help="Seeds to run: 0-4, or 0,3,7 (default: the config's seed).", show_default=False)] = None,
    grid: Annotated[Optional[list[str]], typer.Option("--grid", metavar="KEY=V1,V2,...", help="Values of one config key to try, read as YAML like --set (repeatable: every combination runs).", show_default=False)] = None,
    jobs: Annotated[Optional[str], typer.Option("--jobs", "-j", metavar="N|auto", help="Runs at once; auto fits them to the CPUs this process may use, one torch thread each. --resume keeps the sweep's last choice.  [default: auto]", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The sweep directory (default: runs/sweeps/<env>-<time>).", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the sweep in this directory: unfinished runs resume, failed ones retry.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live table; one line per run that ends.")] = False,
    as_json: JsonOption = False,
    engine_name: EngineOption = "local",
    address: AddressOption = None,
    gpus_per_run: GpusOption = None,
) -> None:
    """Train many runs at once, each seed of each --grid setting in its own process.

    Every run is an ordinary run directory under --out; Ctrl-C, a crash or kill -9 leaves each resumable with --resume."""
    from ddpg_cli.api import get_engine, open_sweep, run_sweep
    from ddpg_cli.experiments.sweep_view import LiveSweepView, QuietSweepView

    engine = get_engine(engine_name, address, gpus_per_run)
    plan = open_sweep(config, overrides or [], seeds, grid or [], out, jobs, resume)
    show = err_console if as_json else console
    sweep, settings, shown = plan.sweep, len(plan.sweep.settings()), _relative(plan.sweep.out)
    show.print(
        f"sweep {shown}: {settings} setting{'s' if settings != 1 else ''} x {len(sweep.seeds)} seed{'s' if len(sweep.seeds) != 1 else ''} = {len(plan.specs)} runs; "
        f"{len(plan.todo)} to run, {plan.jobs} at once, {sweep.threads} torch thread{'s' if sweep.threads != 1 else ''} each"
        + (f"; {plan.busy} being trained by another process, left alone" if plan.busy else ""),
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    if not plan.todo:
        show.print(f"every run of {shown} is done; nothing to do", highlight=False, soft_wrap=True)
    with (LiveSweepView(show) if engine.reports_progress and not (quiet or as_json) else QuietSweepView(show)) as view:
        outcome = run_sweep(plan, engine, on_change=view, announce=_announce_precision_timing)
    _report_comparison(outcome.groups, as_json, show, title=f"{' · '.join(dict.fromkeys(g.env_id for g in outcome.groups))} · {shown}")
    ended = outcome.result
    if ended.stop_signal is not None:
        show.print(f"[yellow]stopped by {ended.stop_signal}[/]: {ended.saved} running run{'s' if ended.saved != 1 else ''} saved\nresume with: ddpg sweep --resume {shown}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_CODES[ended.stop_signal])
    if ended.failed:
        for run in ended.failed:
            err_console.print(f"[bold red]failed:[/] {run.spec.setting} seed {run.spec.seed}: {run.error}", highlight=False, soft_wrap=True)
        err_console.print(f"{len(ended.failed)} run{'s' if len(ended.failed) != 1 else ''} failed; retry with: ddpg sweep --resume {shown}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command("compare")
@reports_errors
def compare_command(
    paths: RunPathsArgument,
    at: Annotated[Optional[str], typer.Option("--at", metavar="STEPS", help="Compare the evaluations made at this env step (100000, 100k) instead of the final ones: a budget inside longer runs, or runs still going.", show_default=False)] = None,
    solved_at: Annotated[Optional[str], typer.Option("--solved-at", metavar="RETURN", help="Count the seeds whose return is at least this (default: the threshold in the header of the env's preset, # solved at:).", show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare settings: final return across seeds (IQM, mean, 95% CI, worst seed), seeds done, seeds that solve the task, wall time.

    Runs that share a config but the seed form one setting; a sweep's settings are its grid values."""
    from ddpg_cli.experiments.compare import check_step, parse_step, parse_threshold
    from ddpg_cli.experiments.runs import collect_runs, group_runs

    step = parse_step(at) if at is not None else None
    threshold = parse_threshold(solved_at) if solved_at is not None else None
    groups = group_runs(collect_runs(paths))
    if step is not None:
        check_step(groups, step)
    title = " · ".join(dict.fromkeys(group.env_id for group in groups)) + (f" · at {step:,} steps" if step is not None else "")
    _report_comparison(groups, as_json, console, title=title, at=step, solved_at=threshold)


@app.command("plot")
@reports_errors
def plot_command(
    paths: RunPathsArgument,
    out: Annotated[Path, typer.Option("--out", "-o", help="The figure: .png, .svg or .pdf.")] = Path("curves.png"),
    x: Annotated[str, typer.Option("--x", metavar="steps|time", help="The x axis: env steps, or training wall time.")] = "steps",
    stat: Annotated[str, typer.Option("--stat", metavar="iqm|mean", help="The line: interquartile mean or mean across seeds.")] = "iqm",
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Draw each line as far as its longest run (default: its shortest).")] = False,
    title: Annotated[Optional[str], typer.Option("--title", help="The title (default: the env id).", show_default=False)] = None,
    reference: Annotated[Optional[list[str]], typer.Option("--reference", metavar="LABEL=VALUE", help="A published figure as a dashed line, e.g. 'TD3 paper @300k=2410' (repeatable).", show_default=False)] = None,
) -> None:
    """Plot learning curves: return vs env steps, a line and 95% CI band per setting.

    Runs that share a config but the seed form one setting; a sweep's settings are its grid values."""
    from ddpg_cli.experiments.plot import draw, group_bands, parse_reference, text_summary
    from ddpg_cli.experiments.runs import collect_runs, group_runs

    references = [parse_reference(text) for text in reference or []]
    if x not in ("steps", "time"):
        raise ConfigError(f"--x must be steps or time, got {x!r}")
    if stat not in ("iqm", "mean"):
        raise ConfigError(f"--stat must be iqm or mean, got {stat!r}")
    plotted = group_bands(group_runs(collect_runs(paths)), x, stat, allow_partial)
    draw(plotted, out, x, stat, title, references)
    for line in text_summary(plotted, stat, x):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(f"wrote {out}", highlight=False, markup=False, soft_wrap=True)


def _report_comparison(groups: list[Any], as_json: bool, show: Console, title: str, at: int | None = None, solved_at: float | None = None) -> None:
    import json

    from ddpg_cli.experiments.compare import comparison, comparison_table

    if as_json:
        typer.echo(json.dumps(comparison(groups, at, solved_at)))
    else:
        show.print(comparison_table(groups, title=title, at=at, solved_at=solved_at, width=show.width))


def _relative(path: Path) -> Path:
    """`path` as seen from the working directory when it lies below it (shorter to read and to paste)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


# --- tune ------------------------------------------------------------------------------------------


@app.command("tune")
@reports_errors
def tune_command(
    config: Annotated[Optional[Path], typer.Argument(help="A YAML config file or a preset's name (default: the built-in Pendulum-v1 config).", show_default=False, autocompletion=_complete_config)] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", "-s", metavar="KEY=VALUE", help="Fix a dotted config key for every trial, e.g. a shorter train.total_steps (repeatable).", show_default=False)] = None,
    space: Annotated[Optional[Path], typer.Option("--space", help="Search space YAML: dotted keys, each {low, high, log} or {choices: [...]} (default: the shipped DDPG space).", show_default=False)] = None,
    trials: Annotated[Optional[int], typer.Option("--trials", "-n", help="Finished trials the study should reach (with --resume: this many more).  [default: 20]", show_default=False)] = None,
    seeds_per_trial: Annotated[int, typer.Option("--seeds-per-trial", help="Seeds each trial trains; its value is their mean final return.")] = 1,
    jobs: Annotated[Optional[str], typer.Option("--jobs", "-j", metavar="N|auto", help="Runs at once, as processes; auto fits them to the CPUs, one torch thread each. --resume keeps the search's last choice.  [default: auto]", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The tuning directory (default: runs/tune/<env>-<time>).", show_default=False)] = None,
    storage: Annotated[Optional[str], typer.Option("--storage", help="An Optuna database URL shared by several machines, or a journal file (default: OUT/optuna-journal.log).", show_default=False)] = None,
    study: Annotated[Optional[str], typer.Option("--study", help="The study's name; workers with the same --storage and --study share it (default: OUT's name).", show_default=False)] = None,
    pruner: Annotated[str, typer.Option("--pruner", metavar="median|halving|none", help="Stops unpromising trials at their evaluations.")] = "median",
    sampler: Annotated[str, typer.Option("--sampler", metavar="tpe|random", help="How settings are drawn (seeded by the config's seed).")] = "tpe",
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the search in this directory; trials cut off by a crash are retried.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per trial; only the final table.")] = False,
    as_json: JsonOption = False,
    engine_name: EngineOption = "local",
    address: AddressOption = None,
    gpus_per_run: GpusOption = None,
) -> None:
    """Search hyperparameters with Optuna, each trial's seeds as ordinary runs (processes).

    Pruned trials stop cleanly with their checkpoints; OUT/best.yaml is the best trial's config."""
    from ddpg_cli.api import open_search, run_search

    plan = open_search(config, overrides or [], space, trials, seeds_per_trial, jobs, out, storage, study, pruner, sampler, resume, engine_name, address, gpus_per_run)
    show = err_console if as_json else console
    setup, shown, url = plan.setup, _relative(plan.setup.out), plan.setup.storage_url()
    if plan.retried:
        show.print(f"trials {', '.join(map(str, plan.retried))} were cut off; marked failed, their settings queued again", highlight=False)
    show.print(
        f"study {setup.study!r} in {_relative(Path(url)) if '://' not in url else url}: "
        f"{plan.finished_before} of {plan.target} trials finished; {setup.seeds_per_trial} seed{'s' if setup.seeds_per_trial != 1 else ''} a trial, "
        f"{plan.jobs} run{'s' if plan.jobs != 1 else ''} at once, {setup.threads} torch thread{'s' if setup.threads != 1 else ''} each; {len(setup.dimensions)} hyperparameters",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    outcome = run_search(plan, on_trial=None if quiet or as_json else lambda trial: _print_trial(trial, show))
    if outcome.report is None:  # stopped before any trial reported
        show.print(f"[yellow]stopped by {outcome.stop_signal}[/]; resume with: ddpg tune --resume {shown}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_CODES[outcome.stop_signal or "SIGINT"])
    if as_json:
        import json

        typer.echo(json.dumps(outcome.report))
    else:
        _print_search(outcome, setup, show)
    if outcome.stop_signal is not None:
        show.print(f"[yellow]stopped by {outcome.stop_signal}[/]; the runs saved; resume with: ddpg tune --resume {shown}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_CODES[outcome.stop_signal])
    if outcome.failed:
        raise typer.Exit(1)


def _print_trial(outcome: Any, show: Console) -> None:
    value = f"{outcome.value:.2f}" if outcome.value is not None else (outcome.error or "-")
    if outcome.pruned_at is not None:
        value += f" at {outcome.pruned_at:,} steps"
    params = "  ".join(f"{key.rsplit('.', 1)[-1]}={_short(val)}" for key, val in outcome.params.items())
    show.print(f"trial {outcome.number:>4} {outcome.state:<8} {value}  {params}", highlight=False, markup=False, soft_wrap=True)


def _print_search(outcome: Any, setup: Any, show: Console) -> None:
    report = outcome.report
    show.print(_trials_table(report))
    if outcome.best_config is not None:
        best = _relative(outcome.best_config)
        show.print(f"best: trial {report['best']['number']}, {report['best']['value']:.2f}; its config: {best} (ddpg train {best})", highlight=False, soft_wrap=True)
    for plot in outcome.plots:
        show.print(f"wrote {_relative(plot)}", highlight=False, soft_wrap=True)
    if (journal := setup.journal_file()) is not None:  # a search on Ray keeps its own results, not an Optuna storage
        show.print(f"live view: optuna-dashboard {_relative(journal)}", highlight=False, soft_wrap=True)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace(" ", "")


def _trials_table(report: dict[str, Any], top: int = 10) -> Any:
    from rich.table import Table

    trials = report["trials"]
    ranked = sorted((t for t in trials if t["value"] is not None), key=lambda t: t["value"], reverse=True)[:top]
    counts = {state: sum(t["state"] == state for t in trials) for state in ("complete", "pruned", "failed", "running")}
    title = f"study {report['study']}: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n) + (f"; the best {len(ranked)}" if ranked else "")
    table = Table(title=title, title_justify="left")
    table.add_column("trial", justify="right")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("state")
    table.add_column("settings", overflow="fold")
    for trial in ranked:  # a pruned trial's value is its last reported evaluation
        settings = "  ".join(f"{key.rsplit('.', 1)[-1]}={_short(value)}" for key, value in trial["params"].items())
        table.add_row(str(trial["number"]), f"{trial['value']:.2f}", trial["state"], settings)
    return table


# --- presets ---------------------------------------------------------------------------------------


@app.command("configs")
@reports_errors
def configs_command(as_json: JsonOption = False) -> None:
    """List the presets, the tuned configs that `ddpg train NAME` takes from any directory."""
    import json

    from ddpg_cli.presets import describe_presets, measured_summary

    presets = describe_presets()
    if as_json:
        items = [{"name": p.name, "env_id": p.env_id, "total_steps": p.total_steps, "measured": p.measured, "measured_detail": p.measured_detail, "from": p.source, "solved_at": p.solved_at, "path": str(p.path)} for p in presets]
        typer.echo(json.dumps({"presets": items}))
        return
    from rich import box
    from rich.table import Table

    def presets_table(measured: Callable[[str], str]) -> Table:
        # No vertical rules, env ids whole.
        table = Table(title="presets (ddpg train NAME)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column("name", no_wrap=True)
        table.add_column("env", no_wrap=True)
        table.add_column("steps", justify="right", no_wrap=True)
        table.add_column("measured here")
        for preset in presets:
            table.add_row(preset.name, preset.env_id, f"{preset.total_steps:,}", measured(preset.measured) if preset.measured else "-")
        return table

    table = presets_table(str)
    if console.measure(table, options=console.options.update_width(10_000)).maximum > console.width:  # the full text would wrap: each preset's last figure instead
        console.print(presets_table(measured_summary))
        console.print(f"(shortened to fit {console.width} columns; the full text: a wider terminal, or --json)", highlight=False)
    else:
        console.print(table)


# --- config ----------------------------------------------------------------------------------------

config_app = typer.Typer(help="Inspect configs: the resolved config of a run, and the reference of every key.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
@reports_errors
def config_show(
    config: Annotated[Optional[Path], typer.Argument(help="YAML config file. Without one, the built-in default (Pendulum-v1) is shown.", show_default=False, autocompletion=_complete_config)] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a dotted config key, as in `ddpg train` (repeatable).", show_default=False)] = None,
) -> None:
    """Print, as YAML, the full config `ddpg train` would use: defaults < file < --set."""
    from ddpg_cli.config import config_to_yaml, load_config

    typer.echo(config_to_yaml(load_config(config, overrides or [])), nl=False)


@config_app.command("reference")
@reports_errors
def config_reference_command() -> None:
    """Print the Markdown reference of every config key, generated from the schema (docs/configuration.md)."""
    from ddpg_cli.config_reference import config_reference

    typer.echo(config_reference(), nl=False)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h{minutes:02d}m{secs:04.1f}s" if hours else (f"{minutes}m{secs:04.1f}s" if minutes else f"{secs:.1f}s")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # outside a command (e.g. during imports): no traceback either
        sys.exit(130)
