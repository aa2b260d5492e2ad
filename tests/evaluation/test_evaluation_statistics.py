"""Statistics over seeds: IQM, bootstrap intervals, curves on a budget grid, steps to a threshold."""

import numpy as np
import pytest

from forethought.evaluation.statistics import (aggregate_curves, bootstrap_interval, curve_at, efficiency_ratio,
                                               interquartile_mean, steps_to_threshold)


def test_interquartile_mean_drops_the_outer_quarters():
    assert interquartile_mean([1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert interquartile_mean([2.0, 2.0, 2.0, 2.0]) == 2.0


def test_bootstrap_interval_contains_the_point_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(0)
    few, many = rng.normal(10, 2, size=5), rng.normal(10, 2, size=200)
    a, b = bootstrap_interval(few, "mean"), bootstrap_interval(many, "mean")
    assert a.low <= a.point <= a.high and b.low <= b.point <= b.high
    assert (b.high - b.low) < 0.5 * (a.high - a.low)
    assert b.low < 10 < b.high
    assert a.point == pytest.approx(few.mean())
    # same seed, same interval
    assert bootstrap_interval(few, "iqm", seed=3) == bootstrap_interval(few, "iqm", seed=3)


def test_bootstrap_interval_of_one_value_or_equal_values_is_that_value():
    interval = bootstrap_interval([7.0])
    assert (interval.point, interval.low, interval.high) == (7.0, 7.0, 7.0)
    assert bootstrap_interval([3.0, 3.0, 3.0]).high == 3.0


def test_bad_values_and_statistics_are_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="statistic must be one of"):
        bootstrap_interval([1.0, 2.0], "mode")


def test_curve_at_reads_the_latest_record_at_or_before_each_budget():
    values = curve_at([100, 300, 600], [1.0, 2.0, 3.0], [50, 100, 299, 300, 1000])
    assert np.isnan(values[0])
    assert values[1:].tolist() == [1.0, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="non-decreasing"):
        curve_at([300, 100], [1.0, 2.0], [100])


def test_aggregate_curves_over_seeds():
    curves = [([100, 200], [0.0, 10.0]), ([100, 200], [2.0, 20.0]), ([150, 200], [4.0, 30.0])]
    agg = aggregate_curves(curves, [50, 100, 200])
    assert np.isnan(agg.mean[0]) and np.isnan(agg.iqm[0])
    assert agg.mean[1] == pytest.approx(1.0)  # only two seeds have a record at 100 steps
    assert agg.mean[2] == pytest.approx(20.0)
    assert agg.low[2] <= agg.iqm[2] <= agg.high[2]


def test_steps_to_threshold():
    assert steps_to_threshold([100, 200, 300], [-500, -190, -150], -200) == 200
    assert steps_to_threshold([100, 200], [-500, -300], -200) is None


def test_efficiency_ratio_of_medians_with_an_interval():
    sac, pets = [3400, 3600, 3400, 3800, 3300], [400, 400, 600, 400, 300]
    ratio = efficiency_ratio(sac, pets)
    assert ratio.point == pytest.approx(3400 / 400)
    assert ratio.low <= ratio.point <= ratio.high
    assert ratio.low > 4  # every resample keeps the two groups far apart
    exact = efficiency_ratio([1000], [100])
    assert (exact.point, exact.low, exact.high) == (10.0, 10.0, 10.0)
    with pytest.raises(ValueError, match="positive"):
        efficiency_ratio([100], [0])
