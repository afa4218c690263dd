"""`ddpg compare`: per setting, the final evaluation return across seeds (IQM and mean, 95% bootstrap
interval), the seeds, their status and wall time; as a Rich table or one JSON object."""

from __future__ import annotations

import re
from typing import Any

from rich.table import Table

from ddpg_cli.experiments.runs import Group, RunRecord
from ddpg_cli.experiments.stats import summarize


def final_summary(group: Group) -> dict[str, Any]:
    """The statistics of the group's finished runs' final evaluations (nulls until one has finished)."""
    finals = [run.final_eval for run in group.runs if run.final_eval is not None]
    if not finals:
        return {"iqm": None, "mean": None, "ci95": None, "n": 0}
    return summarize(finals).as_dict()


def comparison(groups: list[Group]) -> dict[str, Any]:
    """The `ddpg compare --json` object."""
    return {
        "groups": [
            {
                "setting": group.setting,
                "env_id": group.env_id,
                "overrides": group.values,
                "seeds": [run.seed for run in group.runs],
                "final": final_summary(group),
                "runs": [run.as_dict() for run in group.runs],
            }
            for group in groups
        ]
    }


def comparison_table(groups: list[Group], title: str | None = None) -> Table:
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
        final = final_summary(group)
        done = sum(run.status == "done" for run in group.runs)
        ci = final["ci95"]
        table.add_row(
            setting,
            _number(final["iqm"]),
            f"[{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "-",
            _number(final["mean"]),
            f"{done}/{len(group.runs)}",
            _wall(group.runs),
        )
    runs = [run for group in groups for run in group.runs]
    if note := _status_note(runs):
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
    walls = [run.wall_s for run in runs if run.wall_s]
    if not walls:
        return "-"
    seconds = sum(walls) / len(walls)
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
