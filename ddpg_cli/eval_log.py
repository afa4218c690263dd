"""RUN/evaluations.csv: every evaluation of a run, one row each, right across interruptions.

`ddpg plot` and `ddpg compare` read these files rather than TensorBoard's event files, whose reader
keeps only a sample of each tag. A row is appended (and flushed to disk) as each evaluation ends.
A run that is killed may have evaluated past its last checkpoint; its resume drops those rows
(`truncate_after`) and evaluates those steps again, so that each step appears once, in order.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ddpg_cli.evaluate import EvalResult
from ddpg_cli.layout import EVALUATIONS_FILE, temp_path
COLUMNS = ("step", "wall_s", "mean", "std", "min", "max", "episodes", "returns", "lengths")


@dataclass(frozen=True)
class EvaluationRow:
    step: int  # env steps when the evaluation ran
    wall_s: float  # training wall seconds by then, over every session of the run
    mean: float
    std: float
    min: float
    max: float
    returns: tuple[float, ...]
    lengths: tuple[int, ...]

    @classmethod
    def of(cls, step: int, wall_s: float, result: EvalResult) -> "EvaluationRow":
        return cls(step, wall_s, result.mean, result.std, min(result.returns), max(result.returns), tuple(result.returns), tuple(result.lengths))


def evaluations_path(run_dir: Path) -> Path:
    return run_dir / EVALUATIONS_FILE


def append_evaluation(run_dir: Path, step: int, wall_s: float, result: EvalResult) -> None:
    path = evaluations_path(run_dir)
    _write(path, [EvaluationRow.of(step, wall_s, result)], mode="a", header=not path.exists() or path.stat().st_size == 0)


def truncate_after(run_dir: Path, step: int) -> None:
    """Drop the rows of evaluations made after `step` (the checkpoint a resume starts from)."""
    if evaluations_path(run_dir).exists():
        replace_evaluations(run_dir, [row for row in read_evaluations(run_dir) if row.step <= step])


def replace_evaluations(run_dir: Path, rows: list[EvaluationRow]) -> None:
    """Write `rows` as the run's evaluations.csv, atomically (a kill leaves the old file or the new)."""
    path = evaluations_path(run_dir)
    temp = temp_path(path)
    _write(temp, rows, mode="w", header=True)
    os.replace(temp, path)


def _write(path: Path, rows: list[EvaluationRow], mode: str, header: bool) -> None:
    with open(path, mode, newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([row.step, f"{row.wall_s:.3f}", repr(row.mean), repr(row.std), repr(row.min), repr(row.max),
                             len(row.returns), json.dumps(list(row.returns)), json.dumps(list(row.lengths))])  # fmt: skip
        handle.flush()
        os.fsync(handle.fileno())


def read_evaluations(run_dir: Path) -> list[EvaluationRow]:
    """The rows of RUN/evaluations.csv in step order; [] when there is none yet. A last line torn by
    a kill in the middle of a write is skipped."""
    path = evaluations_path(run_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    rows = []
    for record in csv.DictReader(text.splitlines()):
        try:
            row = EvaluationRow(
                step=int(record["step"]),
                wall_s=float(record["wall_s"]),
                mean=float(record["mean"]),
                std=float(record["std"]),
                min=float(record["min"]),
                max=float(record["max"]),
                returns=tuple(float(v) for v in json.loads(record["returns"])),
                lengths=tuple(int(v) for v in json.loads(record["lengths"])),
            )
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(row.mean):
            rows.append(row)
    return sorted(rows, key=lambda row: row.step)
