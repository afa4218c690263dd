"""`ddpg compare`: per setting, the final evaluation return across seeds (IQM and mean, 95% bootstrap
interval, the worst seed, the seeds that solve the task), the seeds, their status and wall time; as a
Rich table or one JSON object. `--at STEP` compares the evaluations made at that step instead (a
budget, such as 100k of a 300k run). A task is solved at the return `--solved-at` gives, else at its
preset's `# solved at:` (presets.solved_threshold)."""

from __future__ import annotations

import math
import re
from typing import Any

from rich import box
from rich.table import Table

from ddpg_cli.errors import ConfigError
from ddpg_cli.experiments.runs import Group, RunRecord
from ddpg_cli.experiments.stats import summarize
from ddpg_cli.presets import PresetInfo, SolvedThreshold, describe_presets, solved_threshold

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


def parse_threshold(text: str) -> float:
    """A `--solved-at` return: any finite number (90, -200, 2.5e3)."""
    try:
        value = float(text.strip().replace("_", ""))
    except ValueError:
        raise ConfigError(f"--solved-at takes a return such as 90 or -200, got {text!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"--solved-at takes a finite return, got {text!r}")
    return value


def thresholds(groups: list[Group], solved_at: float | None = None, presets: list[PresetInfo] | None = None) -> list[SolvedThreshold | None]:
    """Each group's solved threshold: `solved_at` for all when given, else the preset figure for its env
    id (None for an env no preset states one for)."""
    if solved_at is not None:
        return [SolvedThreshold(solved_at, "--solved-at")] * len(groups)
    presets = describe_presets() if presets is None else presets
    return [solved_threshold(group.env_id, presets) for group in groups]


def solved_count(returns: list[float], threshold: float) -> int:
    """How many seeds' returns reach `threshold` (>=)."""
    return sum(value >= threshold for value in returns)


def solved_summary(group: Group, threshold: SolvedThreshold | None, at: int | None = None) -> dict[str, Any] | None:
    """`{"threshold", "count", "of", "source"}`: of the group's seeds, those whose return (final, or at
    step `at`) reaches the threshold; None without one. A seed that has no return yet has not solved."""
    if threshold is None:
        return None
    return {"threshold": threshold.value, "count": solved_count(_returns(group, at), threshold.value), "of": len(group.runs), "source": threshold.source}


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


def comparison(groups: list[Group], at: int | None = None, solved_at: float | None = None) -> dict[str, Any]:
    """The `ddpg compare --json` object; with `at`, each group also has `at` (the statistics at that
    step) and each run `eval_at` (its evaluation there, null before it got there). `worst` and
    `solved` are of the returns compared: the final ones, or those at `at`."""
    report_groups = []
    for group, threshold in zip(groups, thresholds(groups, solved_at)):
        returns = _returns(group, at)
        report = {
            "setting": group.setting,
            "env_id": group.env_id,
            "overrides": group.values,
            "seeds": [run.seed for run in group.runs],
            "final": returns_summary(group),
            "worst": min(returns) if returns else None,
            "solved": solved_summary(group, threshold, at),
            "runs": [run.as_dict() for run in group.runs],
        }
        if at is not None:
            report["at"] = {"step": at, **returns_summary(group, at)}
            for run, run_report in zip(group.runs, report["runs"]):
                run_report["eval_at"] = row.mean if (row := run.eval_at(at)) is not None else None
        report_groups.append(report)
    return {"at": at, "groups": report_groups}


def comparison_table(groups: list[Group], title: str | None = None, at: int | None = None, solved_at: float | None = None,
                     width: int | None = None) -> Table:
    """The table `ddpg compare` prints. Given the terminal's `width`, a long setting wraps (mid-word if
    it must) rather than the table running past the edge."""
    group_thresholds = thresholds(groups, solved_at)
    shared = len(set(group_thresholds)) == 1  # one threshold (or none) for all: said once, in the caption
    settings = [_wrappable(group.setting) for group in groups]
    rows = []
    for group, threshold in zip(groups, group_thresholds):
        summary = returns_summary(group, at)
        returns = _returns(group, at)
        solved = solved_summary(group, threshold, at)
        counted = summary["n"] if at is not None else sum(run.status == "done" for run in group.runs)
        ci = summary["ci95"]
        rows.append((
            _number(summary["iqm"]),
            f"[{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "-",
            _number(summary["mean"]),
            _number(min(returns) if returns else None),
            f"{counted}/{len(group.runs)}",
            "-" if solved is None else f"{solved['count']}/{solved['of']}" + ("" if shared else f" ≥ {_figure(solved['threshold'])}"),
            _wall(group.runs) if at is None else _wall_to(group.runs, at),
        ))  # fmt: skip
    # No vertical rules and two spaces between columns (one where two would fold the settings): eight
    # columns fit 80 characters beside a setting of about 20 (`invert_gradients=false`).
    headers = ("IQM", "95% CI", "mean", "worst", "seeds", "solved", "wall/run")
    longest_value = max((len(part) for setting in settings for part in setting.split(", ")), default=0)
    setting_width = min(longest_value, 30)  # one key=value whole on a line when it fits
    gap = 2
    if width is not None:
        numbers = sum(max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers))
        if setting_width + numbers + gap * len(headers) > width:
            gap = 1
        setting_width = max(min(setting_width, width - numbers - gap * len(headers)), 8)
        if setting_width < longest_value:  # a key=value too long for the line breaks after its `=` (where the key fits)
            settings = [", ".join(_break_at_equals(part, setting_width) for part in setting.split(", ")) for setting in settings]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                  padding=(0, 1) if gap == 2 else 0)  # fmt: skip
    table.add_column("setting", overflow="fold", min_width=setting_width)
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for setting, row in zip(settings, rows):
        table.add_row(setting, *row)
    runs = [run for group in groups for run in group.runs]
    note = _status_note(runs)
    captions = []
    if at is not None:
        captions.append(f"seeds: runs evaluated at step {at:,} of all; wall/run: training time to it" + (f"; {note}" if note else ""))
    elif note:
        captions.append(f"seeds: runs done of all; {note}")
    captions.append(_solved_note(groups, group_thresholds, shared))
    table.caption = "\n".join(captions)
    table.caption_justify = "left"
    return table


def _solved_note(groups: list[Group], group_thresholds: list[SolvedThreshold | None], shared: bool) -> str:
    """The caption's line on the solved column: the threshold when one serves every group."""
    envs = " and ".join(dict.fromkeys(group.env_id for group in groups))
    first = group_thresholds[0]
    if not shared:
        return "solved: seeds ≥ the threshold shown (its env's preset's; --solved-at to change)"
    if first is None:
        return f"solved: no threshold for {envs}; --solved-at X counts the seeds ≥ X"
    if first.source == "--solved-at":
        return f"solved: seeds ≥ {_figure(first.value)} (--solved-at)"
    return f"solved: seeds ≥ {_figure(first.value)} ({envs}'s threshold; --solved-at to change)"


def _figure(value: float) -> str:
    """A threshold as written: 90, -200, 2.5."""
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _wrappable(setting: str) -> str:
    """`a=1,b=2` as `a=1, b=2`: a long setting wraps between its key=value pairs, not inside one."""
    return re.sub(r",(?=[A-Za-z_][\w.]*=)", ", ", setting)


def _break_at_equals(part: str, width: int) -> str:
    key, equals, value = part.partition("=")
    return f"{key}=\n{value}" if equals and len(part) > width and len(key) < width else part


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
