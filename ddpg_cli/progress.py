"""The Rich progress bar `ddpg train` shows: steps, steps/s, last episode return, last evaluation."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RichTrainView:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[sps]:>6.0f} steps/s"),
            TextColumn("return {task.fields[last_return]}"),
            TextColumn("eval {task.fields[last_eval]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self.task: TaskID | None = None

    def start(self, total_steps: int, step: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, completed=step, sps=0.0, last_return="-", last_eval="-")

    def update(self, step: int, steps_per_second: float, last_return: float | None, last_eval: float | None) -> None:
        if self.task is not None:
            self.progress.update(
                self.task,
                completed=step,
                sps=steps_per_second,
                last_return=_fmt(last_return),
                last_eval=_fmt(last_eval),
            )

    def message(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()
            self.task = None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
