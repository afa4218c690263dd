"""How a run started by an engine talks to it: `ddpg train --events` prints one JSON object per line
on stdout (start, progress about once a second, each evaluation) and its human output on stderr, it
stops (saving, as on SIGTERM) when the engine that started it dies, even by kill -9, and when it fails
it writes its reason and exit code to RUN/failure.json, which the engine reads."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import IO, Any, Iterator

from ddpg_cli.errors import describe_error
from ddpg_cli.evaluate import EvalResult
from ddpg_cli.layout import write_failure
from ddpg_cli.train import TrainObserver

PROGRESS_INTERVAL_S = 1.0


class EventsObserver(TrainObserver):
    def __init__(self, stream: IO[str]) -> None:
        self.stream: IO[str] | None = stream
        self.next_progress = 0.0

    def emit(self, event: str, **fields: Any) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(json.dumps({"event": event, **fields}) + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # the engine is gone (killed): stop as if asked to
            self.stream = None
            os.kill(os.getpid(), signal.SIGTERM)

    def start(self, total_steps: int, step: int) -> None:
        self.emit("start", step=step, total=total_steps)

    def progress(self, step: int, steps_per_second: float, last_return: float | None, last_eval: float | None) -> None:
        now = time.monotonic()
        if now >= self.next_progress:
            self.next_progress = now + PROGRESS_INTERVAL_S
            self.emit("progress", step=step, sps=steps_per_second, last_return=last_return, last_eval=last_eval)

    def on_evaluation(self, step: int, result: EvalResult, best: float) -> bool:
        self.emit("evaluation", step=step, mean=result.mean, std=result.std, best=best)
        return True


def stop_when_parent_dies(poll_s: float = 0.5) -> None:
    """Send this process SIGTERM once its parent is gone (it is then re-parented, so getppid changes):
    training saves `last` and exits 143, and no run outlives the sweep that started it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@contextlib.contextmanager
def recording_failure(run_dir: Path | None) -> Iterator[None]:
    """A failure inside becomes RUN/failure.json (the same line and exit code the command reports)
    before it goes on; a stop signal is no failure. None records nothing (a run started by hand)."""
    try:
        yield
    except Exception as exc:
        if run_dir is not None:
            message, code = describe_error(exc)
            with contextlib.suppress(OSError):
                run_dir.mkdir(parents=True, exist_ok=True)
                write_failure(run_dir, code, message)
        raise
