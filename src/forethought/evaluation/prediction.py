"""Held-out one-step prediction error of any :class:`DynamicsModel`, through ``predict`` only.

Errors are measured on the raw next observation. Because ``s'`` and ``s`` are known, the error of
the predicted next state equals the error of the implied change ``s' - s``; normalising by the
spread of the true changes therefore asks "how much of the real motion did the model miss?" in
units every state dimension shares, whatever its physical scale.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from forethought.data.buffer import ReplayBuffer, TransitionBatch
from forethought.models.base import DynamicsModel, Prediction, transition_tensors

LOG_2PI = math.log(2.0 * math.pi)


def held_out_tensors(model: DynamicsModel, data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(obs [N, o], actions [N, a], next_obs [N, o])`` from a :class:`ReplayBuffer`, a
    :class:`TransitionBatch` or a tuple of the three arrays, checked against the model's sizes."""
    if isinstance(data, (ReplayBuffer, TransitionBatch)):
        obs, act, nxt = transition_tensors(data, obs_dim=model.obs_dim, act_dim=model.act_dim)
    elif isinstance(data, (tuple, list)) and len(data) == 3:
        obs, act, nxt = transition_tensors(*data, obs_dim=model.obs_dim, act_dim=model.act_dim)
    else:
        raise TypeError(f"expected a ReplayBuffer, a TransitionBatch or (obs, actions, next_obs), got {type(data).__name__}")
    if obs.shape[0] == 0:
        raise ValueError("cannot evaluate a model on 0 transitions")
    return obs, act, nxt


def predict_batched(model: DynamicsModel, obs: torch.Tensor, actions: torch.Tensor,
                    batch_size: int = 4096) -> Prediction:
    """``model.predict`` on obs ``[N, o]`` and actions ``[N, a]`` in chunks of ``batch_size`` rows,
    without gradients; every returned field is ``[N, o]`` float64 (or ``None``)."""
    chunks = []
    with torch.no_grad():
        for start in range(0, obs.shape[0], batch_size):
            stop = start + batch_size
            chunks.append(model.predict(obs[start:stop], actions[start:stop]).map(lambda t: t.to(torch.float64).cpu()))
    fields = zip(*((p.mean, p.aleatoric_var, p.epistemic_var) for p in chunks))
    return Prediction(*(None if any(t is None for t in parts) else torch.cat(parts) for parts in fields))


def _mean_ignoring_nan(values: torch.Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else math.nan


def one_step_error(model: DynamicsModel, data: Any, *, var_floor: float = 1e-6,
                   batch_size: int = 4096) -> dict[str, Any]:
    """One-step prediction error on held-out transitions.

    Args:
        model: any fitted dynamics model.
        data: a :class:`ReplayBuffer`, a :class:`TransitionBatch`, or ``(obs [N, o], actions [N, a],
            next_obs [N, o])``.
        var_floor: added to the predicted total variance (aleatoric + epistemic) before the
            likelihood, so an overconfident zero variance gives a large but finite NLL.
        batch_size: rows per ``predict`` call.

    Returns:
        ``n``: rows evaluated.
        ``mse_per_dim`` (list of ``o`` floats) and ``mse`` (their mean): squared error of the
        predicted mean, in squared raw units.
        ``normalized_mse_per_dim`` and ``normalized_mse``: ``mse_per_dim`` divided by the
        (population) variance of the true change ``s' - s`` in that dimension, so 0 is perfect and
        1 is what always predicting the average change scores. A dimension whose true change is
        constant has no spread to normalise by: its entry is NaN and the mean skips it.
        ``nll_per_dim`` and ``nll`` (mean over dimensions, in nats per dimension): Gaussian negative
        log-likelihood of the true next observation; ``None`` when the model predicts no variance.
    """
    obs, act, nxt = held_out_tensors(model, data)
    pred = predict_batched(model, obs, act, batch_size)
    obs, nxt = obs.to(torch.float64), nxt.to(torch.float64)
    error = pred.mean - nxt
    mse = error.pow(2).mean(dim=0)
    delta_var = (nxt - obs).var(dim=0, unbiased=False)
    normalized = torch.where(delta_var > 0, mse / torch.where(delta_var > 0, delta_var, 1.0), math.nan)
    result: dict[str, Any] = {
        "n": int(obs.shape[0]),
        "mse_per_dim": mse.tolist(),
        "mse": float(mse.mean()),
        "normalized_mse_per_dim": normalized.tolist(),
        "normalized_mse": _mean_ignoring_nan(normalized),
        "nll_per_dim": None,
        "nll": None,
    }
    variance = pred.variance
    if variance is not None:
        variance = variance + var_floor
        nll = 0.5 * (LOG_2PI + variance.log() + error.pow(2) / variance).mean(dim=0)
        result["nll_per_dim"], result["nll"] = nll.tolist(), float(nll.mean())
    return result
