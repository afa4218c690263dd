"""What `ddpg train` shows while it trains: a Rich progress bar (steps, steps/s, last episode return,
last evaluation) and a line per evaluation; or, with --quiet, nothing."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ddpg_cli.evaluate import EvalResult
from ddpg_cli.train import TrainObserver


class RichTrainView(TrainObserver):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress_bar = Progress(
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


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
