"""Statistics over seeds: interquartile mean, bootstrap confidence intervals, learning curves on a
common grid of real-step budgets, and real steps to a return threshold with the ratio between two
algorithms.

Few seeds are the norm in model-based RL, so every figure comes with a percentile-bootstrap
interval (``scipy.stats.bootstrap``) and the interquartile mean, which is robust to one run that
failed or got lucky (Agarwal et al., 2021, "Deep RL at the edge of the statistical precipice").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

Statistic = Callable[..., np.ndarray]


def interquartile_mean(values: Sequence[float], axis: int = 0) -> np.ndarray | float:
    """Mean of the middle 50 % of ``values`` along ``axis`` (25 % trimmed from each end)."""
    return stats.trim_mean(np.asarray(values, dtype=float), 0.25, axis=axis)


STATISTICS: dict[str, Statistic] = {"mean": np.mean, "iqm": interquartile_mean, "median": np.median}


def _constant(values: np.ndarray) -> bool:
    """One value, or all equal: nothing for a bootstrap to resample."""
    return values.size == 1 or bool(np.all(values == values[0]))


@dataclass
class Interval:
    """A point estimate with its confidence interval ``[low, high]``."""

    point: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.point:.4g} [{self.low:.4g}, {self.high:.4g}]"


def _statistic(name: str) -> Statistic:
    if name not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {name!r}")
    return STATISTICS[name]


def bootstrap_interval(values: Sequence[float], statistic: str = "iqm", confidence: float = 0.95,
                       resamples: int = 2000, seed: int = 0) -> Interval:
    """``statistic`` (``mean``, ``iqm`` or ``median``) of ``values`` (one per seed) with its
    percentile-bootstrap confidence interval. With one value, or all values equal, the interval
    is that value."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"values must be a non-empty 1-D sequence of finite numbers, got {values.tolist()}")
    fn = _statistic(statistic)
    point = float(fn(values))
    if _constant(values):
        return Interval(point, point, point)
    result = stats.bootstrap((values,), fn, n_resamples=resamples, confidence_level=confidence,
                             method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return Interval(point, float(result.confidence_interval.low), float(result.confidence_interval.high))


def curve_at(steps: Sequence[int], returns: Sequence[float], budgets: Sequence[int]) -> np.ndarray:
    """A learning curve read at each budget: the latest return recorded at or before that many
    real steps (NaN before the first record). ``steps`` must be increasing."""
    steps, returns = np.asarray(steps), np.asarray(returns, dtype=float)
    if steps.shape != returns.shape or steps.ndim != 1:
        raise ValueError(f"steps and returns must be 1-D of equal length, got {steps.shape} and {returns.shape}")
    if np.any(np.diff(steps) < 0):
        raise ValueError("steps must be non-decreasing")
    index = np.searchsorted(steps, np.asarray(budgets), side="right") - 1
    return np.where(index >= 0, returns[np.clip(index, 0, None)], np.nan)


@dataclass
class AggregateCurve:
    """Across seeds, per budget ``[n_budgets]``: the mean, the interquartile mean and its bootstrap
    interval (NaN where no seed has a record yet)."""

    budgets: np.ndarray
    mean: np.ndarray
    iqm: np.ndarray
    low: np.ndarray
    high: np.ndarray


def aggregate_curves(curves: Sequence[tuple[Sequence[int], Sequence[float]]], budgets: Sequence[int],
                     confidence: float = 0.95, seed: int = 0) -> AggregateCurve:
    """Aggregate several seeds' ``(steps, returns)`` learning curves on a common budget grid."""
    if not curves:
        raise ValueError("need at least one curve")
    grid = np.stack([curve_at(s, r, budgets) for s, r in curves])  # [seeds, budgets]
    columns = {"mean": [], "iqm": [], "low": [], "high": []}
    for column in grid.T:
        present = column[np.isfinite(column)]
        if present.size == 0:
            for values in columns.values():
                values.append(np.nan)
            continue
        interval = bootstrap_interval(present, "iqm", confidence, seed=seed)
        columns["mean"].append(float(present.mean()))
        columns["iqm"].append(interval.point)
        columns["low"].append(interval.low)
        columns["high"].append(interval.high)
    return AggregateCurve(np.asarray(budgets), *(np.asarray(columns[k]) for k in ("mean", "iqm", "low", "high")))


def steps_to_threshold(steps: Sequence[int], returns: Sequence[float], threshold: float) -> int | None:
    """Real steps at the first record whose return reaches ``threshold``, or None."""
    for step, value in zip(steps, returns):
        if value >= threshold:
            return int(step)
    return None


def efficiency_ratio(slower: Sequence[float], faster: Sequence[float], confidence: float = 0.95,
                     resamples: int = 2000, seed: int = 0) -> Interval:
    """How many times as many real steps ``slower`` needs as ``faster`` to reach a threshold:
    the ratio of the two medians over seeds, with a bootstrap interval that resamples each
    algorithm's seeds independently."""
    slower, faster = np.asarray(slower, dtype=float), np.asarray(faster, dtype=float)
    if slower.size == 0 or faster.size == 0 or (faster <= 0).any() or (slower <= 0).any():
        raise ValueError(f"steps must be non-empty and positive, got {slower.tolist()} and {faster.tolist()}")

    def ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(a, axis=axis) / np.median(b, axis=axis)

    point = float(ratio(slower, faster))
    if _constant(slower) and _constant(faster):
        return Interval(point, point, point)
    result = stats.bootstrap((slower, faster), ratio, n_resamples=resamples, confidence_level=confidence,
                             method="percentile", vectorized=True, paired=False, rng=np.random.default_rng(seed))
    return Interval(point, float(result.confidence_interval.low), float(result.confidence_interval.high))
