"""Compounding error: how open-loop predictions drift from real trajectories as the horizon grows.

A model that is good for one step can still be useless for planning: each prediction is fed back
as the next input, so errors are amplified by the dynamics. :func:`rollout_error` measures that
drift on real data; :func:`linear_compounding_table` shows it analytically for a scalar system.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from forethought.data.buffer import ReplayBuffer
from forethought.models.base import DynamicsModel, Prediction

Windows = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def trajectory_windows(buffer: ReplayBuffer, horizon: int, max_windows: int | None = None,
                       generator: torch.Generator | None = None) -> Windows:
    """Cut the buffer's episodes into every window of ``horizon`` consecutive transitions.

    Episodes come from ``buffer.episode_starts()``, so no window crosses an episode boundary.
    When more than ``max_windows`` windows exist, a random subset is kept if ``generator`` is given,
    otherwise evenly spaced ones (deterministic); windows stay in buffer order either way.

    Returns:
        ``obs0 [W, o]`` (the state each window starts from), ``actions [W, H, a]`` and
        ``true_obs [W, H, o]`` (the real next observations after each action), float32.

    Raises:
        ValueError: ``horizon < 1``, or no episode has ``horizon`` transitions.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be >= 1 or None, got {max_windows}")
    starts = buffer.episode_starts()
    ends = np.append(starts[1:], len(buffer))
    window_starts = np.concatenate([np.arange(s, e - horizon + 1) for s, e in zip(starts, ends)] or [np.zeros(0)])
    window_starts = window_starts.astype(np.int64)
    if window_starts.size == 0:
        longest = int((ends - starts).max()) if starts.size else 0
        raise ValueError(f"no episode in the buffer has {horizon} transitions (longest has {longest}); "
                         f"use a shorter horizon")
    if max_windows is not None and window_starts.size > max_windows:
        if generator is not None:
            chosen = torch.randperm(window_starts.size, generator=generator)[:max_windows].sort().values.numpy()
        else:
            chosen = np.unique(np.linspace(0, window_starts.size - 1, max_windows).round().astype(np.int64))
        window_starts = window_starts[chosen]
    arrays = buffer.arrays()
    rows = window_starts[:, None] + np.arange(horizon)[None, :]  # [W, H]
    return (torch.from_numpy(arrays["obs"][window_starts]), torch.from_numpy(arrays["action"][rows]),
            torch.from_numpy(arrays["next_obs"][rows]))


def open_loop_rollout(model: DynamicsModel, obs0: torch.Tensor, actions: torch.Tensor) -> Prediction:
    """Roll the model forward from ``obs0 [W, o]`` under ``actions [W, H, a]``, feeding its own
    mean prediction back as the next input (no real observation after the first).

    Returns:
        A :class:`Prediction` whose fields are ``[W, H, o]`` float64: the mean at step ``t + 1`` and
        the variances of the one-step prediction made from the step-``t`` mean (they are not
        propagated through the dynamics, so they understate the spread of a long rollout); on the
        CPU whatever the model's device.
    """
    state = torch.as_tensor(obs0)
    steps = []
    with torch.no_grad():
        for t in range(actions.shape[1]):
            pred = model.predict(state, actions[:, t]).map(lambda x: x.to(torch.float64).cpu())
            steps.append(pred)
            state = pred.mean
    fields = zip(*((p.mean, p.aleatoric_var, p.epistemic_var) for p in steps))
    return Prediction(*(None if any(t is None for t in parts) else torch.stack(parts, dim=1) for parts in fields))


def rollout_error(model: DynamicsModel, buffer: ReplayBuffer | Windows, horizon: int,
                  max_windows: int | None = None, generator: torch.Generator | None = None) -> dict[str, Any]:
    """Open-loop error versus horizon (the compounding-error curve) on real trajectories.

    Args:
        model: any fitted dynamics model.
        buffer: a :class:`ReplayBuffer` (cut with :func:`trajectory_windows`) or windows already
            cut, ``(obs0 [W, o], actions [W, H', a], true_obs [W, H', o])`` with ``H' >= horizon``
            (use this to score several models on exactly the same windows).
        horizon: steps ``H`` to roll out.
        max_windows, generator: passed to :func:`trajectory_windows`.

    Returns:
        ``horizon``, ``n_windows``, ``steps`` (``[1, ..., H]``), ``mse_per_step`` (``H`` floats: mean
        squared error over windows and state dimensions after ``t`` steps) and
        ``mse_per_step_per_dim`` (``H`` lists of ``o`` floats).
    """
    if isinstance(buffer, ReplayBuffer):
        obs0, actions, true_obs = trajectory_windows(buffer, horizon, max_windows, generator)
    else:
        obs0, actions, true_obs = buffer
        if horizon < 1 or actions.shape[1] < horizon or true_obs.shape[1] < horizon:
            raise ValueError(f"windows of length {actions.shape[1]} cannot be scored at horizon {horizon}")
        actions, true_obs = actions[:, :horizon], true_obs[:, :horizon]
    pred = open_loop_rollout(model, obs0, actions)
    per_dim = (pred.mean - true_obs.to(torch.float64)).pow(2).mean(dim=0)  # [H, o]
    return {"horizon": int(horizon), "n_windows": int(obs0.shape[0]), "steps": list(range(1, horizon + 1)),
            "mse_per_step": per_dim.mean(dim=1).tolist(), "mse_per_step_per_dim": per_dim.tolist()}


def linear_compounding_table(a_true: float = 1.1, a_model: float = 1.05, b: float = 1.0, x0: float = 1.0,
                             action: float = 0.0, steps: int = 10) -> dict[str, list[float]]:
    """Open-loop drift of a slightly wrong model of the scalar system ``x' = a x + b u``.

    Both the true system (``a_true``) and the model (``a_model``) start at ``x0`` and receive the
    same constant ``action``. With the defaults the model is 4.5 % off in ``a``, yet after 5 steps
    the state is 20.8 % off and after 10 steps 37 %: the error grows geometrically.

    Returns:
        Lists of length ``steps`` for ``t = 1 .. steps``: ``step``, ``true_state``, ``model_state``,
        ``abs_error`` (``|true - model|``) and ``rel_error`` (``abs_error / |true|``, NaN where the
        true state is 0).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    table: dict[str, list[float]] = {k: [] for k in ("step", "true_state", "model_state", "abs_error", "rel_error")}
    true_state = model_state = float(x0)
    for t in range(1, steps + 1):
        true_state = a_true * true_state + b * action
        model_state = a_model * model_state + b * action
        error = abs(true_state - model_state)
        table["step"].append(t)
        table["true_state"].append(true_state)
        table["model_state"].append(model_state)
        table["abs_error"].append(error)
        table["rel_error"].append(error / abs(true_state) if true_state != 0 else math.nan)
    return table
