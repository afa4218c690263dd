"""`ddpg plot`: evaluation return against env steps (or wall time), one line per group (its IQM or
mean across seeds) with a shaded 95% bootstrap interval; one panel per env when runs of several envs
are given. matplotlib comes with the `plot` extra."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddpg_cli.errors import ConfigError, MissingExtraError, OutputError
from ddpg_cli.experiments.runs import Group
from ddpg_cli.experiments.stats import Band, band
from ddpg_cli.outputs import commit_output, prepare_output

FORMATS = (".png", ".svg", ".pdf")


@dataclass
class PlottedGroup:
    group: Group
    band: Band
    seeds: int


def group_bands(groups: list[Group], x: str = "steps", statistic: str = "iqm", allow_partial: bool = False) -> list[PlottedGroup]:
    """Each group's curve across its seeds, from runs that have evaluated at least once."""
    plotted = []
    for group in groups:
        curves = []
        for run in group.runs:
            if run.evaluations:
                xs = [row.step if x == "steps" else row.wall_s for row in run.evaluations]
                curves.append((xs, [row.mean for row in run.evaluations]))
        if curves:
            plotted.append(PlottedGroup(group, band(curves, statistic, allow_partial), len(curves)))
    if not plotted:
        raise ConfigError("no evaluations yet in these runs (a run appends one to RUN/evaluations.csv every eval.every steps)")
    return plotted


def parse_reference(text: str) -> tuple[str, float]:
    """`--reference "TD3 paper @300k=2410"` -> ("TD3 paper @300k", 2410.0): the value after the last '='."""
    label, sep, value = text.rpartition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not label.strip() or not math.isfinite(number):
        raise ConfigError(f"--reference takes LABEL=VALUE with a finite number, e.g. 'TD3 paper=2410'; got {text!r}")
    return label.strip(), number


REFERENCE_STYLES = ("--", ":", "-.")


def draw(plotted: list[PlottedGroup], out: Path, x: str = "steps", statistic: str = "iqm", title: str | None = None,
         references: list[tuple[str, float]] | None = None) -> object:  # fmt: skip
    """Write the figure to `out` (its extension picks the format); returns the matplotlib figure.
    `references` are (label, return) drawn as grey horizontal lines: published figures to compare with."""
    if out.suffix.lower() not in FORMATS:
        raise OutputError(f"cannot write {out}: plot writes {', '.join(FORMATS)} files")
    envs = list(dict.fromkeys(p.group.env_id for p in plotted))
    if references and len(envs) > 1:
        raise ConfigError(f"--reference is for a plot of one env; these runs cover {len(envs)}: {', '.join(envs)}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("ddpg plot needs matplotlib: pip install 'ddpg-cli[plot]'") from None

    columns = min(len(envs), 2)
    rows = math.ceil(len(envs) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(7.5 * columns, 4.6 * rows), squeeze=False)
    colors = plt.get_cmap("tab10" if len(plotted) <= 10 else "tab20")
    for panel, env_id in zip(axes.flat, envs):
        for index, item in enumerate(p for p in plotted if p.group.env_id == env_id):
            color = colors(index % colors.N)
            b = item.band
            label = f"{item.group.setting} ({item.seeds} seed{'s' if item.seeds != 1 else ''})"
            panel.plot(b.steps, b.center, color=color, linewidth=1.8, label=label)
            if item.seeds > 1:
                panel.fill_between(b.steps, b.low, b.high, color=color, alpha=0.2, linewidth=0)
        for index, (label, value) in enumerate(references or []):
            panel.axhline(value, color="0.35", linestyle=REFERENCE_STYLES[index % len(REFERENCE_STYLES)], linewidth=1.2, label=label)
        panel.set_title(title or env_id if len(envs) == 1 else env_id)
        panel.set_xlabel("env steps" if x == "steps" else "wall time (s)")
        panel.set_ylabel(f"evaluation return ({'IQM' if statistic == 'iqm' else 'mean'}, 95% CI)")
        panel.grid(True, alpha=0.3)
        panel.legend(loc="lower right", fontsize="small")
        if x == "steps":
            panel.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_steps_label))
    for panel in list(axes.flat)[len(envs) :]:
        panel.set_visible(False)
    figure.tight_layout()
    temp = prepare_output(out)
    try:
        figure.savefig(temp, dpi=110)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    commit_output(temp, out)
    plt.close(figure)
    return figure


def _steps_label(value: float, _: object) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def text_summary(plotted: list[PlottedGroup], statistic: str = "iqm", x: str = "steps") -> list[str]:
    """One line per group: where its curve ends and its value there, with the interval."""
    lines = []
    for item in plotted:
        b = item.band
        last = int(np.flatnonzero(~np.isnan(b.center))[-1])
        where = f"{b.steps[last]:,.0f} steps" if x == "steps" else f"{b.steps[last]:,.0f} s"
        best = int(np.nanargmax(b.center))
        lines.append(
            f"{item.group.setting}: {statistic.upper() if statistic == 'iqm' else 'mean'} {b.center[last]:.1f} "
            f"[{b.low[last]:.1f}, {b.high[last]:.1f}] at {where} over {b.runs[last]} run{'s' if b.runs[last] != 1 else ''}; "
            f"best {b.center[best]:.1f} at {b.steps[best]:,.0f}"
        )
    return lines
