"""A planning horizon (or imagined-rollout length) read off the model's compounding error.

"Cap rollouts at the horizon where validation error stays bounded." After each model fit, the
model is rolled out open-loop (its own mean predictions fed back, see
:func:`~forethought.evaluation.compounding.rollout_error`) along real trajectories it was not
fitted on, and its error after ``t`` steps is measured relative to the spread of the state:

    error_t = sqrt( mean over windows and dimensions d of ((prediction_t - real_t)_d / spread_d)^2 )

with ``spread_d`` the standard deviation of dimension ``d`` over every observation collected so far
(dimensions that never vary are left out). The horizon chosen is the longest ``H`` within
``[low, high]`` whose errors ``error_1 .. error_H`` all stay at or below ``threshold`` (``low``
when even the first step's does not). The default threshold, 0.5, lets a prediction drift by half
the state's typical spread, RMS over dimensions: past that, a plan is scored on states the system
will not be in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from forethought.data.buffer import ReplayBuffer
from forethought.evaluation.compounding import open_loop_rollout, trajectory_windows
from forethought.models.base import DynamicsModel

__all__ = ["AutoHorizon", "HorizonChoice", "check_auto_horizon", "check_threshold", "choose_horizon",
           "relative_rollout_error"]

DEFAULT_THRESHOLD = 0.5


def check_auto_horizon(bounds: tuple[int, int] | list[int], threshold: float, prefix: str) -> None:
    """ValueError naming ``{prefix}horizon_bounds`` unless it is ``(low, high)`` with
    ``1 <= low <= high``, or ``{prefix}horizon_threshold`` unless it is a finite number > 0."""
    ok = (isinstance(bounds, (tuple, list)) and len(bounds) == 2
          and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds) and 1 <= bounds[0] <= bounds[1])
    if not ok:
        raise ValueError(f"{prefix}horizon_bounds must be [low, high] with integers 1 <= low <= high, got {bounds!r}")
    check_threshold(threshold, f"{prefix}horizon_threshold")


def check_threshold(threshold: float, key: str) -> None:
    """ValueError naming ``key`` unless ``threshold`` is a finite number > 0."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or threshold <= 0:
        raise ValueError(f"{key} must be a finite number > 0 (the open-loop error allowed, relative to the "
                         f"state's spread), got {threshold!r}")


def choose_horizon(errors: list[float], threshold: float, low: int, high: int) -> int:
    """The longest ``H`` in ``[low, high]`` with ``errors[0 .. H-1]`` all ``<= threshold``
    (``errors[t-1]`` is the error after ``t`` steps); ``low`` when the first already exceeds it.
    Steps beyond ``len(errors)`` are unmeasured and never chosen unless ``low`` requires them."""
    within = 0
    for error in errors[:high]:
        if not error <= threshold:  # NaN counts as over
            break
        within += 1
    return max(low, min(within, high))


def relative_rollout_error(model: DynamicsModel, buffer: ReplayBuffer, horizon: int, spread: torch.Tensor,
                           max_windows: int = 256) -> list[float]:
    """``error_t`` for ``t = 1 .. horizon`` (see the module docstring) on ``buffer``'s trajectories,
    the state's spread ``[o]`` given; an evenly spaced ``max_windows`` of its windows. The horizon
    is cut to the longest episode in ``buffer``; an empty list when it has no transition."""
    if len(buffer) == 0:
        return []
    starts = buffer.episode_starts()
    longest = int(np.max(np.diff(np.append(starts, len(buffer)))))
    obs0, actions, real = trajectory_windows(buffer, min(horizon, longest), max_windows)
    predicted = open_loop_rollout(model, obs0, actions).mean  # [W, H, o] float64
    varies = spread > 0
    scaled = (predicted - real.to(torch.float64))[..., varies.cpu()] / spread[varies].cpu().to(torch.float64)
    return scaled.pow(2).mean(dim=(0, 2)).sqrt().tolist()


@dataclass
class HorizonChoice:
    """One choice: the horizon, the errors it was read from (``error_t``, t = 1, 2, ...) and the
    number of real transitions they were measured on."""

    horizon: int
    errors: list[float]
    rows: int


class AutoHorizon:
    """Chooses a horizon in ``bounds`` from held-out open-loop error, keeping ``start`` (clipped to
    the bounds) until there is held-out data.

    Call :meth:`measure` with the model *before* it is refitted on the transitions ``new`` it has
    not seen (a trial's, or the steps since the last fit) and ``all_rows`` (every transition, for the
    state's spread); :attr:`horizon` is the choice, ``history`` every :class:`HorizonChoice`."""

    def __init__(self, bounds: tuple[int, int], threshold: float = DEFAULT_THRESHOLD, start: int = 15) -> None:
        check_auto_horizon(bounds, threshold, prefix="")
        self.low, self.high = int(bounds[0]), int(bounds[1])
        self.threshold = float(threshold)
        self.horizon = min(max(int(start), self.low), self.high)
        self.history: list[HorizonChoice] = []

    def measure(self, model: DynamicsModel, new: ReplayBuffer, all_rows: ReplayBuffer) -> int:
        """Measure ``model`` on ``new`` and choose the horizon; unchanged when ``model`` is not
        fitted or ``new`` is empty."""
        if not model.fitted or len(new) == 0:
            return self.horizon
        spread = torch.as_tensor(all_rows.arrays()["next_obs"]).std(dim=0)
        errors = relative_rollout_error(model, new, self.high, spread)
        self.horizon = choose_horizon(errors, self.threshold, self.low, self.high)
        self.history.append(HorizonChoice(self.horizon, errors, len(new)))
        return self.horizon

    def state(self) -> dict:
        """What a checkpoint keeps: the current horizon and the history."""
        return {"horizon": self.horizon, "history": [vars(c) for c in self.history]}

    def load_state(self, state: dict) -> None:
        self.horizon = int(state["horizon"])
        self.history = [HorizonChoice(**c) for c in state["history"]]
