"""`ddpg compare`: per setting, the final evaluation return across seeds (IQM and mean, 95% bootstrap
interval), the seeds, their status and wall time; as a Rich table or one JSON object. `--at STEP`
compares the evaluations made at that step instead (a budget, such as 100k of a 300k run)."""

from __future__ import annotations

import math
import re
from typing import Any

from rich.table import Table

from ddpg_cli.errors import ConfigError
from ddpg_cli.experiments.runs import Group, RunRecord
from ddpg_cli.experiments.stats import summarize

STEP_SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000}


def parse_step(text: str) -> int:
    """An env step count as people write budgets: 100000, 100_000, 100k, 1.5M."""
    cleaned = text.strip().lower().replace("_", "").replace(",", "")
    suffix = cleaned[-1:] if cleaned[-1:] in ("k", "m") else ""
    try:
        step = float(cleaned[: len(cleaned) - len(suffix)]) * STEP_SUFFIXES[suffix]
    except ValueError:
        raise ConfigError(f"--at takes env steps such as 100000 or 100k, got {text!r}") from None
    if not math.isfinite(step) or step <= 0 or step != int(step):
        raise ConfigError(f"--at takes a positive whole number of env steps, got {text!r}")
    return int(step)


def check_step(groups: list[Group], step: int) -> None:
    """A step no run evaluates at would give an empty table: say so instead."""
    runs = [run for group in groups for run in group.runs]
    if not any(run.evaluates_at(step) for run in runs):
        schedules = sorted({(run.eval_every, run.total_steps) for run in runs})
        shown = "; ".join(f"every {every:,} steps to {total:,}" for every, total in schedules)
        raise ConfigError(f"no run evaluates at step {step:,} (these evaluate {shown})")


def _returns(group: Group, at: int | None) -> list[float]:
    """Each seed's final evaluation (finished runs), or its evaluation at step `at` (runs that got there)."""
    if at is None:
        return [run.final_eval for run in group.runs if run.final_eval is not None]
    return [row.mean for run in group.runs if (row := run.eval_at(at)) is not None]


def returns_summary(group: Group, at: int | None = None) -> dict[str, Any]:
    """The statistics of the group's final evaluations, or of those at step `at` (nulls until one exists)."""
    returns = _returns(group, at)
    if not returns:
        return {"iqm": None, "mean": None, "ci95": None, "n": 0}
    return summarize(returns).as_dict()


def comparison(groups: list[Group], at: int | None = None) -> dict[str, Any]:
    """The `ddpg compare --json` object; with `at`, each group also has `at` (the statistics at that
    step) and each run `eval_at` (its evaluation there, null before it got there)."""
    report_groups = []
    for group in groups:
        report = {
            "setting": group.setting,
            "env_id": group.env_id,
            "overrides": group.values,
            "seeds": [run.seed for run in group.runs],
            "final": returns_summary(group),
            "runs": [run.as_dict() for run in group.runs],
        }
        if at is not None:
            report["at"] = {"step": at, **returns_summary(group, at)}
            for run, run_report in zip(group.runs, report["runs"]):
                run_report["eval_at"] = row.mean if (row := run.eval_at(at)) is not None else None
        report_groups.append(report)
    return {"at": at, "groups": report_groups}


def comparison_table(groups: list[Group], title: str | None = None, at: int | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    settings = [_wrappable(group.setting) for group in groups]
    longest_value = max((len(part) for setting in settings for part in setting.split(", ")), default=0)
    table.add_column("setting", overflow="fold", min_width=min(longest_value, 30))  # one key=value whole on a line when it fits
    table.add_column("IQM", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("mean", justify="right")
    table.add_column("seeds", justify="right")
    table.add_column("wall/run", justify="right")
    for group, setting in zip(groups, settings):
        summary = returns_summary(group, at)
        counted = summary["n"] if at is not None else sum(run.status == "done" for run in group.runs)
        ci = summary["ci95"]
        table.add_row(
            setting,
            _number(summary["iqm"]),
            f"[{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "-",
            _number(summary["mean"]),
            f"{counted}/{len(group.runs)}",
            _wall(group.runs) if at is None else _wall_to(group.runs, at),
        )
    runs = [run for group in groups for run in group.runs]
    note = _status_note(runs)
    if at is not None:
        table.caption = f"seeds: runs evaluated at step {at:,} of all; wall/run: training time to it" + (f"; {note}" if note else "")
    elif note:
        table.caption = f"seeds: runs done of all; {note}"
    table.caption_justify = "left"
    return table


def _wrappable(setting: str) -> str:
    """`a=1,b=2` as `a=1, b=2`: a long setting wraps between its key=value pairs, not inside one."""
    return re.sub(r",(?=[A-Za-z_][\w.]*=)", ", ", setting)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _status_note(runs: list[RunRecord]) -> str:
    """`1 running, 3 pending`: the runs that are not done, by status ('' when all are)."""
    others = {status: sum(run.status == status for run in runs) for status in ("running", "failed", "interrupted", "pending")}
    return ", ".join(f"{count} {status}" for status, count in others.items() if count)


def _wall(runs: list[RunRecord]) -> str:
    return _mean_wall([run.wall_s for run in runs if run.wall_s])


def _wall_to(runs: list[RunRecord], step: int) -> str:
    return _mean_wall([row.wall_s for run in runs if (row := run.eval_at(step)) is not None and row.wall_s])


def _mean_wall(walls: list[float]) -> str:
    if not walls:
        return "-"
    seconds = sum(walls) / len(walls)
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
