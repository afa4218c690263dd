"""The local engine's machinery: run specs as `ddpg train --events` child processes, a few at a time
(`ProcessPool`; `engines.LocalEngine` is the engine over it).

Each run is its own process, on the same code path as `ddpg train`: a crash, a NaN or an env error in
one never takes down the others, and exact resume, checkpoints and TensorBoard work unchanged. A
run's human output goes to RUN/train.log; a run that fails writes its reason to RUN/failure.json.

Stopping: SIGINT or SIGTERM to the engine reaches every running child, which saves `last` and exits;
the pool starts nothing new and returns once all have exited. If the engine itself is killed
(kill -9), each child notices that its parent is gone and stops the same way (events.py).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ddpg_cli.config import config_to_yaml
from ddpg_cli.experiments.sweep import RunSpec
from ddpg_cli.layout import CONFIG_FILE, LOG_FILE, clear_failure, clear_unsaved, last_checkpoint, read_failure, write_failure

SIGNAL_EXIT_CODES = {130: "SIGINT", 143: "SIGTERM"}


@dataclass
class RunProgress:
    """What the engine knows of one run while the sweep goes on (the live view reads these)."""

    spec: RunSpec
    status: str = "pending"  # pending | running | done | failed | interrupted
    step: int = 0
    total: int = 0
    steps_per_second: float | None = None
    last_eval: float | None = None
    error: str | None = None
    started: float | None = None  # monotonic time this session started it
    first_step: int = 0  # its step when this session started it (resumed runs start past 0)
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def eta_seconds(self) -> float | None:
        if self.status != "running" or not self.steps_per_second:
            return None
        return max(self.total - self.step, 0) / self.steps_per_second


class ProcessPool:
    """Starts runs as child processes and follows them. `run` is a sweep's whole schedule; a tuner
    drives `start`, `reap` and `stop_run` itself, inside `handling_signals`."""

    def __init__(self, jobs: int, python: str = sys.executable) -> None:
        self.jobs = jobs
        self.python = python
        self.stop_signal: str | None = None
        self._children: dict[Path, subprocess.Popen[str]] = {}
        self._lock = threading.Lock()
        self._active: list[RunProgress] = []

    def run(self, specs: list[RunSpec], on_change: Callable[[list[RunProgress]], None] | None = None, poll_s: float = 0.2) -> list[RunProgress]:
        """Run every spec, `jobs` at a time, until all have ended or a stop signal came. `on_change` is
        called with every run's progress each time something changes (and at least every `poll_s`)."""
        runs = [RunProgress(spec, total=spec.config.train.total_steps) for spec in specs]
        waiting = list(runs)
        with self.handling_signals():
            while True:
                while waiting and self.stop_signal is None and self.running() < self.jobs:
                    self.start(waiting.pop(0))
                self.reap()
                if on_change:
                    on_change(runs)
                if not self.running() and (not waiting or self.stop_signal is not None):
                    break
                time.sleep(poll_s)
        return runs

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM reach every running child (which saves and stops) and set stop_signal."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def running(self) -> int:
        with self._lock:
            return len(self._children)

    # --- children ----------------------------------------------------------------------------------

    def start(self, run: RunProgress) -> None:
        """Launch the run: resume it from its `last.pt`, or start it afresh."""
        spec = run.spec
        run_dir = spec.run_dir
        child = launch(spec, self.python)
        with self._lock:
            self._children[run_dir] = child
        self._active.append(run)
        run.status, run.started = "running", time.monotonic()
        threading.Thread(target=self._read_events, args=(run, child), name=f"events-{spec.setting}-{spec.seed}", daemon=True).start()

    def _read_events(self, run: RunProgress, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "start":
                run.step = run.first_step = int(event["step"])
                run.total = int(event["total"])
            elif kind == "progress":
                run.step, run.steps_per_second = int(event["step"]), event.get("sps")
                run.last_eval = event.get("last_eval", run.last_eval)
            elif kind == "evaluation":
                run.step, run.last_eval = int(event["step"]), float(event["mean"])
            run.events.append(event)

    def reap(self) -> list[RunProgress]:
        """The runs that have ended since the last call, their status set: done, interrupted (a stop
        signal, theirs or the engine's) or failed (with the reason they recorded)."""
        ended = []
        for run in list(self._active):
            child = self._children.get(run.spec.run_dir)
            if child is None or child.poll() is None:
                continue
            code = child.wait()
            with self._lock:
                del self._children[run.spec.run_dir]
            self._active.remove(run)
            if code == 0:
                run.status = "done"
                run.step = run.total
            elif code in SIGNAL_EXIT_CODES:
                run.status = "interrupted"
            else:
                run.status = "failed"
                run.error = failure_reason(run.spec.run_dir, code)
            ended.append(run)
        return ended

    def stop_run(self, run: RunProgress) -> None:
        """Ask one run to save and stop (SIGTERM); `reap` reports it once it has."""
        with self._lock:
            child = self._children.get(run.spec.run_dir)
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)

    def _on_signal(self, signum: int, frame: object) -> None:
        # Every running child saves and stops (a terminal's Ctrl-C reaches them too; a second signal
        # changes nothing for them). Nothing new starts.
        if self.stop_signal is None:
            self.stop_signal = signal.Signals(signum).name
        with self._lock:
            children = list(self._children.values())
        for child in children:
            if child.poll() is None:
                try:
                    child.send_signal(signum)
                except ProcessLookupError:
                    pass


def launch(spec: RunSpec, python: str = sys.executable) -> subprocess.Popen[str]:
    """Start `ddpg train --events` for a run spec: `--resume` from its `last.pt` when it has one, else
    afresh from its config. Its events come on the child's stdout; its human output goes to RUN/train.log."""
    run_dir = spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    clear_failure(run_dir)
    if last_checkpoint(run_dir).is_file():
        args = ["train", "--resume", str(run_dir)]
    else:
        clear_unsaved(run_dir)
        config_file = run_dir / CONFIG_FILE
        config_file.write_text(config_to_yaml(spec.config), encoding="utf-8")
        args = ["train", str(config_file), "--run-dir", str(run_dir)]
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as log:  # the child holds its own copy
        return subprocess.Popen([python, "-m", "ddpg_cli", *args, "--events"], stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, bufsize=1)


def failure_reason(run_dir: Path, exit_code: int) -> str:
    """Why a run that exited with `exit_code` failed: the reason it recorded itself (failure.json), or,
    for one killed before it could (a crash of the interpreter), a record of how it exited."""
    reason = read_failure(run_dir)
    if reason is None:
        reason = f"exited with code {exit_code}"
        write_failure(run_dir, exit_code, reason)
    return reason
