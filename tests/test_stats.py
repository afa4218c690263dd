"""Statistics across seeds: the IQM, percentile-bootstrap intervals, and curves aligned on one grid."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ddpg_cli.experiments.stats import band, bootstrap_ci, interpolate_onto, iqm, mean, summarize


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 10, 101])
def test_iqm_is_the_25_percent_trimmed_mean(n):
    values = np.random.default_rng(n).normal(size=n) * 100
    assert iqm(values) == pytest.approx(scipy_stats.trim_mean(values, 0.25), abs=1e-12)


def test_iqm_by_hand_and_along_an_axis():
    assert iqm([1, 2, 3, 4, 100, -50, 7, 8]) == pytest.approx((3 + 4 + 7 + 2) / 4)  # drops -50, 1 and 8, 100
    rows = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 0.0, 5.0, 5.0]])
    assert np.allclose(iqm(rows, axis=1), [2.5, 5.0])
    with pytest.raises(ValueError):
        iqm([])


def test_bootstrap_interval_matches_scipy():
    values = np.random.default_rng(0).normal(-170, 20, size=10)
    for statistic in (mean, iqm):
        ours = bootstrap_ci(values, statistic, resamples=20_000)
        theirs = scipy_stats.bootstrap((values,), lambda x, axis: statistic(x, axis=axis), method="percentile",
                                       confidence_level=0.95, n_resamples=20_000, random_state=1).confidence_interval  # fmt: skip
        width = theirs.high - theirs.low
        assert ours[0] == pytest.approx(theirs.low, abs=0.05 * width)
        assert ours[1] == pytest.approx(theirs.high, abs=0.05 * width)


def test_bootstrap_interval_by_hand():
    # Two values: each resample's mean is a, b or (a + b) / 2, with probabilities 1/4, 1/4, 1/2; the
    # central 95% of those spans [a, b].
    assert bootstrap_ci([0.0, 10.0], mean) == (0.0, 10.0)
    assert bootstrap_ci([5.0], mean) == (5.0, 5.0)  # one seed: no spread to resample
    assert bootstrap_ci([3.0, 3.0, 3.0], iqm) == (3.0, 3.0)
    assert bootstrap_ci([1.0, 2.0, 9.0], mean) == bootstrap_ci([1.0, 2.0, 9.0], mean)  # seeded
    low, high = bootstrap_ci(list(range(20)), mean)
    assert low < 9.5 < high


def test_summary():
    summary = summarize([-100.0, -120.0, -110.0, -500.0])
    assert summary.n == 4 and summary.mean == pytest.approx(-207.5) and summary.iqm == pytest.approx(-115.0)
    assert summary.ci95[0] <= summary.iqm <= summary.ci95[1]


def test_curves_evaluated_at_different_steps_are_aligned_on_one_grid():
    a = ([1000, 2000, 3000, 4000], [0.0, 10.0, 20.0, 30.0])
    b = ([1500, 3000], [5.0, 20.0])  # another eval.every, and shorter
    grid = np.array([1000.0, 1500.0, 2000.0, 3000.0, 4000.0])
    assert np.allclose(interpolate_onto(*a, grid), [0.0, 5.0, 10.0, 20.0, 30.0])
    assert np.isnan(interpolate_onto(*b, grid)[[0, 4]]).all()

    short = band([a, b], "mean")  # stops where the shortest run stops
    assert list(short.steps) == [1000, 1500, 2000, 3000]  # the union of their evaluation steps
    assert list(short.runs) == [1, 2, 2, 2]
    assert short.center[-1] == pytest.approx(20.0)
    partial = band([a, b], "mean", allow_partial=True)
    assert partial.steps[-1] == 4000 and partial.runs[-1] == 1 and partial.center[-1] == pytest.approx(30.0)
    assert partial.low[-1] == partial.high[-1] == pytest.approx(30.0)  # one run there: no band
