"""PNG figures of prediction quality: compounding-error curves and predicted trajectories.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot state, no display needed) and
written atomically: to a temporary file beside the target, then renamed over it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from forethought.data.buffer import ReplayBuffer
from forethought.evaluation.compounding import Windows, open_loop_rollout, trajectory_windows
from forethought.evaluation.statistics import aggregate_curves
from forethought.models.base import DynamicsModel
from forethought.serialization import atomic_write_bytes


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int) -> Path:
    """Render ``fig`` to PNG at ``path`` atomically; returns the path."""
    FigureCanvasAgg(fig)
    stream = io.BytesIO()
    fig.savefig(stream, format="png", dpi=dpi)
    atomic_write_bytes(path, stream.getvalue())
    return Path(path)


def plot_compounding_error(curves: dict[str, Sequence[float]], path: str | os.PathLike, *,
                           title: str = "Open-loop prediction error vs horizon", ylabel: str = "MSE",
                           figsize: tuple[float, float] = (6.0, 4.0), dpi: int = 100) -> Path:
    """One line per model (e.g. ``rollout_error(...)["mse_per_step"]``) against horizon 1..H, on a
    log y-axis so geometric growth reads as a straight line. Non-positive values cannot be shown
    on a log axis and are left as gaps. The image is ``figsize * dpi`` pixels."""
    if not curves:
        raise ValueError("plot_compounding_error needs at least one curve")
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot()
    any_positive = False
    for name, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"curve {name!r} must be a non-empty list of floats, got shape {values.shape}")
        positive = np.where(values > 0, values, np.nan)
        any_positive |= bool(np.isfinite(positive).any())
        ax.plot(np.arange(1, values.size + 1), positive, marker="o", markersize=3, label=name)
    if not any_positive:
        raise ValueError("no curve has a positive finite value to show on a log scale")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("horizon (steps)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi)


def _one_window(data: ReplayBuffer | Windows, horizon: int, window: int) -> Windows:
    """``(obs0 [1, o], actions [1, H, a], true_obs [1, H, o])`` from a buffer or given windows."""
    if isinstance(data, ReplayBuffer):
        obs0, actions, true_obs = trajectory_windows(data, horizon)
    else:
        obs0, actions, true_obs = (torch.as_tensor(x) for x in data)
        if obs0.ndim == 1:  # a single window without the leading window axis
            obs0, actions, true_obs = obs0[None], actions[None], true_obs[None]
    if not 0 <= window < obs0.shape[0]:
        raise ValueError(f"window index {window} out of range for {obs0.shape[0]} windows")
    if actions.shape[1] < horizon or true_obs.shape[1] < horizon:
        raise ValueError(f"the window has {actions.shape[1]} steps, fewer than horizon {horizon}")
    return obs0[window:window + 1], actions[window:window + 1, :horizon], true_obs[window:window + 1, :horizon]


def plot_predicted_trajectories(model: DynamicsModel, data: ReplayBuffer | Windows, path: str | os.PathLike,
                                horizon: int, dims: Sequence[int] | None = None, *, window: int = 0,
                                panel_size: tuple[float, float] = (6.0, 2.5), dpi: int = 100) -> Path:
    """Predicted versus true trajectory of one real window, one panel per state dimension.

    The prediction is the open-loop mean rollout (:func:`open_loop_rollout`). The shaded band is
    the mean +/- 2 standard deviations of the model's one-step predictive variance (aleatoric +
    epistemic) evaluated along that mean rollout: honest about what the model reports at each
    state, but not a propagated multi-step distribution, so it understates long-horizon spread.
    Models without variance get no band.

    Args:
        data: a :class:`ReplayBuffer` (window number ``window`` of :func:`trajectory_windows`) or
            windows ``(obs0 [W, o], actions [W, H', a], true_obs [W, H', o])`` (or one window
            without the ``W`` axis).
        horizon: steps to roll out.
        dims: state dimensions to show (all when ``None``).
        panel_size: inches per panel; the image is ``panel_size[0] * dpi`` wide and
            ``len(dims) * panel_size[1] * dpi`` tall.
    """
    obs0, actions, true_obs = _one_window(data, horizon, window)
    dims = list(range(model.obs_dim)) if dims is None else list(dims)
    if not dims or any(not 0 <= d < model.obs_dim for d in dims):
        raise ValueError(f"dims must be non-empty indices in [0, {model.obs_dim}), got {dims}")
    pred = open_loop_rollout(model, obs0, actions)
    start = obs0.to(torch.float64)[:, None]
    truth = torch.cat([start, true_obs.to(torch.float64)], dim=1)[0].numpy()  # [H + 1, o]
    mean = torch.cat([start, pred.mean], dim=1)[0].numpy()
    std = None if pred.variance is None else torch.cat(
        [torch.zeros_like(start), pred.variance.clamp_min(0.0).sqrt()], dim=1)[0].numpy()
    steps = np.arange(horizon + 1)
    fig = Figure(figsize=(panel_size[0], panel_size[1] * len(dims)))
    axes = fig.subplots(len(dims), 1, sharex=True, squeeze=False)[:, 0]
    for ax, d in zip(axes, dims):
        ax.plot(steps, truth[:, d], color="black", label="true")
        ax.plot(steps, mean[:, d], color="tab:blue", linestyle="--", label="model (open loop)")
        if std is not None:
            ax.fill_between(steps, mean[:, d] - 2 * std[:, d], mean[:, d] + 2 * std[:, d], color="tab:blue",
                            alpha=0.2, label="+/- 2 sigma (one-step)")
        ax.set_ylabel(f"obs[{d}]")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    axes[0].set_title(f"Open-loop prediction over {horizon} steps")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    return save_figure(fig, path, dpi)


def plot_seed_curves(curves: dict[str, list[tuple[Sequence[int], Sequence[float]]]], path: str | os.PathLike, *,
                     title: str, target: float | None = None, last_step: int | None = None,
                     dpi: int = 100) -> Path:
    """Learning curves over seeds: per label, the interquartile mean of its seeds' ``(steps,
    returns)`` curves vs real steps, shaded between the ends of the 95 % bootstrap interval."""
    grids = [np.asarray(steps) for runs in curves.values() for steps, _ in runs]
    budgets = np.unique(np.concatenate(grids + ([np.array([last_step])] if last_step is not None else [])))
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for label, runs in curves.items():
        curve = aggregate_curves(runs, budgets)
        line, = ax.plot(curve.budgets, curve.iqm, label=f"{label} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        ax.fill_between(curve.budgets, curve.low, curve.high, color=line.get_color(), alpha=0.2)
    if target is not None:
        ax.axhline(target, color="k", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("real environment steps")
    ax.set_ylabel("return (IQM over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)
