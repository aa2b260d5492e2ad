"""Boundary checks shared by our environments: an action must have the right shape, be finite and
lie inside the action space, or ``step`` refuses it with a message that names the offending value;
``reset`` options must name start values the environment has and be finite."""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

# Bounds are stored as float32 in the action space; an action computed in float64 from the same
# bound can differ from it by one float32 rounding step, which is not a real violation.
_ROUNDING_SLACK = 1e-6


def validate_action(action: object, space: spaces.Box) -> np.ndarray:
    """Return ``action`` as a float64 array of ``space.shape``, clipped into ``space``.

    Raises:
        ValueError: if the shape differs from ``space.shape``, an entry is NaN or infinite, or an
            entry lies outside ``[space.low, space.high]`` by more than float32 rounding.
    """
    try:
        array = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"action {action!r} is not a numeric array of shape {space.shape}") from error
    if array.shape != space.shape:
        raise ValueError(
            f"action has shape {array.shape}, expected {space.shape} (action={array.tolist()})"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"action must be finite, got action={array.tolist()}")
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    slack = _ROUNDING_SLACK * (1.0 + np.maximum(np.abs(low), np.abs(high)))
    outside = (array < low - slack) | (array > high + slack)
    if np.any(outside):
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(
            f"action[{', '.join(map(str, index))}]={float(array[index])!r} is outside the allowed bounds "
            f"[{float(low[index])!r}, {float(high[index])!r}] (action={array.tolist()}, "
            f"low={low.tolist()}, high={high.tolist()})"
        )
    return np.clip(array, low, high)


def check_episode_running(started: bool, steps: int, max_episode_steps: int) -> None:
    """Refuse a ``step`` before ``reset`` or after the episode's last step (RuntimeError)."""
    if not started:
        raise RuntimeError("call reset() before step()")
    if steps >= max_episode_steps:
        raise RuntimeError(f"the episode ended after {max_episode_steps} steps; call reset()")


def start_from_options(defaults: dict[str, float], options: dict | None) -> dict[str, float]:
    """``defaults`` (start value by name) with ``options`` applied, as floats.

    Raises:
        ValueError: an option names no start value, or a value is not finite.
    """
    unknown = sorted(set(options or {}) - set(defaults))
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; expected some of {sorted(defaults)}")
    start = {**defaults, **{key: float(value) for key, value in (options or {}).items()}}
    if not all(math.isfinite(value) for value in start.values()):
        raise ValueError(f"reset options must be finite numbers, got {options}")
    return start
