"""Where a training session's wall time goes: warm-up, the first updates (which build the compiled
graphs), learning, evaluation and checkpoints. Written to summary.json, so that a run's speed can be
read apart from its fixed costs: a 25,000-step run spends as long compiling as learning."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

WARMUP = "warmup"
FIRST_UPDATES = "first_updates"
LEARNING = "learning"
EVALUATION = "evaluation"
CHECKPOINTS = "checkpoints"
PHASES = (WARMUP, FIRST_UPDATES, LEARNING, EVALUATION, CHECKPOINTS)


class PhaseTimes:
    """Seconds (and env steps, for the phases that step the envs) per phase of one session."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.steps = dict.fromkeys(PHASES, 0)
        self.current: str | None = None
        self.learning_in_updates = 0.0  # the share of `learning` spent sampling batches and updating

    def add_update_time(self, seconds: float) -> None:
        if self.current == LEARNING:
            self.learning_in_updates += seconds

    @contextmanager
    def phase(self, name: str, steps: int = 0) -> Iterator[None]:
        start, outer = time.monotonic(), self.current
        self.current = name
        try:
            yield
        finally:
            self.current = outer
            self.seconds[name] += time.monotonic() - start
            self.steps[name] += steps

    def steps_per_second(self, name: str) -> float | None:
        """Env steps a second in that phase; None when it had none (a session that only warmed up)."""
        seconds, steps = self.seconds[name], self.steps[name]
        return steps / seconds if steps and seconds > 0 else None

    def seconds_dict(self) -> dict[str, float]:
        """Seconds per phase, and the part of `learning` that the updates took (the rest of it steps
        the envs and stores what they return)."""
        return {**{name: round(value, 3) for name, value in self.seconds.items()}, "learning_in_updates": round(self.learning_in_updates, 3)}

    def steps_dict(self) -> dict[str, int]:
        """Env steps of the phases that step the envs."""
        return {name: self.steps[name] for name in (WARMUP, FIRST_UPDATES, LEARNING)}
