"""What `ddpg sweep` shows while it runs: a live Rich table of every run (setting, seed, status, step,
steps/s, last evaluation, ETA) over a total progress bar; or, with --quiet, one line per run that
ends."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ddpg_cli.experiments.local import RunProgress

MAX_ROWS = 24  # past this many runs, the table lists the running and failed ones and counts the rest
STATUS_STYLE = {"running": "cyan", "done": "green", "failed": "bold red", "interrupted": "yellow", "pending": "dim"}


class LiveSweepView:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"), TimeElapsedColumn(), console=console)
        self.task = self.progress.add_task("sweep", total=1)
        self.live = Live(console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveSweepView:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()
        self.console.line()  # what follows (the final table) starts on a line of its own

    def __call__(self, runs: list[RunProgress]) -> None:
        self.progress.update(self.task, total=sum(run.total for run in runs), completed=sum(run.step for run in runs))
        self.live.update(Group(run_table(runs), self.progress))


def run_table(runs: list[RunProgress]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (("setting", "left"), ("seed", "right"), ("status", "left"), ("step", "right"), ("steps/s", "right"), ("eval", "right"), ("ETA", "right")):
        table.add_column(name, justify=justify, overflow="fold" if name == "setting" else "ellipsis")  # type: ignore[arg-type]
    shown = runs if len(runs) <= MAX_ROWS else [run for run in runs if run.status in ("running", "failed")][:MAX_ROWS]
    for run in shown:
        eta = run.eta_seconds()
        table.add_row(
            run.spec.setting,
            str(run.spec.seed),
            f"[{STATUS_STYLE.get(run.status, '')}]{run.status}[/]",
            f"{run.step:,}/{run.total:,}",
            f"{run.steps_per_second:.0f}" if run.steps_per_second and run.status == "running" else "-",
            f"{run.last_eval:.1f}" if run.last_eval is not None else "-",
            _duration(eta) if eta is not None else "-",
        )
    if len(shown) < len(runs):
        counts = {status: sum(run.status == status for run in runs) for status in STATUS_STYLE}
        table.add_row("…", "", ", ".join(f"{count} {status}" for status, count in counts.items() if count), "", "", "", "")
    return table


class QuietSweepView:
    """One line per run that ends (done, failed or interrupted), with how many have ended so far."""

    def __init__(self, console: Console, total: int | None = None) -> None:
        self.console = console
        self.total = total  # how many runs there are, when the calls see only some of them
        self.reported: set[str] = set()
        self.started = time.monotonic()

    def __enter__(self) -> QuietSweepView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __call__(self, runs: list[RunProgress]) -> None:
        for run in runs:
            key = str(run.spec.run_dir)
            if key in self.reported or run.status in ("pending", "running"):
                continue
            self.reported.add(key)
            if run.status == "failed":  # the reason names its own step
                detail = run.error or "see its train.log"
            else:
                detail = f"{run.step:,} steps" + (f", eval {run.last_eval:.1f}" if run.status == "done" and run.last_eval is not None else "")
            self.console.print(
                f"{run.status:<11} {run.spec.setting} seed {run.spec.seed}: {detail}  ({len(self.reported)}/{self.total or len(runs)})",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
