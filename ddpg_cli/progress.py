"""What `ddpg train` shows while it trains: a Rich progress bar (steps, steps/s, last episode return,
last evaluation) and a line per evaluation; or, with --quiet, nothing. And `ddpg render`'s bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ddpg_cli.evaluate import EvalResult
from ddpg_cli.render import RenderObserver
from ddpg_cli.train import TrainObserver


class RichTrainView(TrainObserver):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress_bar = _bar(
            console,
            "[bold]train",
            TextColumn("{task.fields[sps]:>6.0f} steps/s"),
            TextColumn("return {task.fields[last_return]}"),
            TextColumn("eval {task.fields[last_eval]}"),
        )
        self.task: TaskID | None = None

    def start(self, total_steps: int, step: int) -> None:
        self.progress_bar.start()
        self.task = self.progress_bar.add_task("train", total=total_steps, completed=step, sps=0.0, last_return="-", last_eval="-")

    def progress(self, step: int, steps_per_second: float, last_return: float | None, last_eval: float | None) -> None:
        if self.task is not None:
            self.progress_bar.update(self.task, completed=step, sps=steps_per_second, last_return=_fmt(last_return), last_eval=_fmt(last_eval))

    def on_evaluation(self, step: int, result: EvalResult, best: float) -> bool:
        self.progress_bar.console.print(f"step {step:>9,}  eval return {result.mean:9.2f} ± {result.std:.2f}  (best {best:.2f})", highlight=False)
        return True

    def stop(self) -> None:
        if self.task is not None:
            self.progress_bar.stop()
            self.task = None


class RichRenderView(RenderObserver):
    """The env steps rendered so far (each reset counts as one) against the episodes' limit, then the
    file being written: a GIF is encoded only once every frame is in."""

    def __init__(self, console: Console, what: str) -> None:
        self.what = what
        self.progress_bar = _bar(console, "[bold]{task.description}", TextColumn("steps"), transient=True)
        self.task: TaskID | None = None

    def start(self, total_steps: int | None) -> None:
        self.progress_bar.start()
        self.task = self.progress_bar.add_task("render", total=total_steps)

    def progress(self, steps: int) -> None:
        if self.task is not None:
            self.progress_bar.update(self.task, completed=steps)

    def writing(self) -> None:
        if self.task is not None:
            self.progress_bar.update(self.task, description=f"writing {self.what}", completed=self.progress_bar.tasks[0].total or 0)

    def stop(self) -> None:
        if self.task is not None:
            self.progress_bar.stop()
            self.task = None


def _bar(console: Console, label: str, *fields: TextColumn, transient: bool = False) -> Progress:
    """A bar with its count, then `fields`, then the time taken and the time left."""
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), *fields, TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, refresh_per_second=4, transient=transient)  # fmt: skip


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
