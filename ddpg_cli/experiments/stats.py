"""Statistics across seeds: the interquartile mean and percentile-bootstrap confidence intervals.

Agarwal et al. (2021), "Deep RL at the Edge of the Statistical Precipice", recommend the IQM (the mean
of the middle 50% of runs) with bootstrap intervals over few seeds. The `rliable` package computes
them, but pulls arch and statsmodels for it; these few lines of numpy do the same for one task:
IQM as `scipy.stats.trim_mean(x, 0.25)`, intervals by resampling the seeds with replacement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

TRIM = 0.25  # the IQM drops this share of runs at each end
BOOTSTRAP_RESAMPLES = 2000


def iqm(values: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean: drop floor(n / 4) values at each end, average the rest (trim_mean(x, 0.25))."""
    array = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = array.shape[axis]
    if n == 0:
        raise ValueError("the IQM of no values is undefined")
    cut = int(TRIM * n)
    kept = np.take(array, np.arange(cut, n - cut), axis=axis)
    result = kept.mean(axis=axis)
    return float(result) if np.ndim(result) == 0 else result


def mean(values: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray | float:
    result = np.asarray(values, dtype=np.float64).mean(axis=axis)
    return float(result) if np.ndim(result) == 0 else result


STATISTICS: dict[str, Callable[..., np.ndarray | float]] = {"iqm": iqm, "mean": mean}


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[..., np.ndarray | float] = iqm,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of `statistic` over `values` (the seeds): resample the seeds with
    replacement `resamples` times, compute the statistic on each resample, take the central
    `confidence` share of those. One value gives the interval [value, value]. Seeded: the same input
    gives the same interval."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("a confidence interval of no values is undefined")
    if data.size == 1:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    samples = data[rng.integers(0, data.size, size=(resamples, data.size))]
    estimates = np.asarray(statistic(samples, axis=1))
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Summary:
    """One group's figure across its seeds."""

    iqm: float
    mean: float
    ci95: tuple[float, float]  # of the statistic the summary was asked for
    n: int

    def as_dict(self) -> dict[str, object]:
        return {"iqm": self.iqm, "mean": self.mean, "ci95": list(self.ci95), "n": self.n}


def summarize(values: Sequence[float], statistic: str = "iqm") -> Summary:
    return Summary(float(iqm(values)), float(mean(values)), bootstrap_ci(values, STATISTICS[statistic]), len(values))


def interpolate_onto(steps: Sequence[int], values: Sequence[float], grid: np.ndarray) -> np.ndarray:
    """A run's curve at the grid's steps (linear between its evaluations); NaN outside its range."""
    xs, ys = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    out = np.interp(grid, xs, ys)
    out[(grid < xs[0]) | (grid > xs[-1])] = np.nan
    return out


@dataclass(frozen=True)
class Band:
    """A group's curve: the statistic across seeds at each step of the grid, and its 95% interval."""

    steps: np.ndarray
    center: np.ndarray
    low: np.ndarray
    high: np.ndarray
    runs: np.ndarray  # how many runs contribute at each step


def band(curves: Sequence[tuple[Sequence[float], Sequence[float]]], statistic: str = "iqm", allow_partial: bool = False) -> Band:
    """Align runs evaluated at different steps on one grid (the union of their evaluation steps) and
    summarise them at each step. The band stops where the shortest run stops, unless `allow_partial`,
    where it goes on with the runs that went further."""
    if not curves:
        raise ValueError("a band needs at least one run")
    grid = np.unique(np.concatenate([np.asarray(xs, dtype=np.float64) for xs, _ in curves]))
    if not allow_partial:
        grid = grid[grid <= min(float(xs[-1]) for xs, _ in curves)]
    values = np.stack([interpolate_onto(xs, ys, grid) for xs, ys in curves])  # [runs, steps]
    function = STATISTICS[statistic]
    rows = []  # (center, low, high, runs) at each step
    for column in values.T:
        present = column[~np.isnan(column)]
        if present.size == 0:
            rows.append((np.nan, np.nan, np.nan, 0))
        else:
            rows.append((float(function(present)), *bootstrap_ci(present, function), present.size))
    center, low, high, counts = (np.asarray(part) for part in zip(*rows))
    return Band(grid, center, low, high, counts.astype(int))
