"""Transfer: adapt a neural dynamics model trained on one variant of a system (one pole length, one
cart mass) to another from a few of the new system's transitions.

    source = ProbabilisticEnsemble(5, 1, ...); source.fit(old_buffer)
    model = copy.deepcopy(source)
    fine_tune(model, few_new_transitions, mode="freeze", frozen_layers=2)

Modes:

- ``all``: every weight trains; the normalisers stay those of the source data (the network's
  features were learned in their units).
- ``freeze``: the first ``frozen_layers`` layers keep their weights (the features of the state),
  the rest trains.
- ``output``: only the output layer (and the log-std bounds) trains.
- ``normalizer``: no gradient steps; the input and output normalisers are re-fitted to the new
  transitions (enough when the new system mostly moves on another scale).
"""

from __future__ import annotations

from typing import Any

import torch

from forethought.models.base import FitReport, transition_tensors
from forethought.models.config import train_config
from forethought.models.neural import MLPDynamics

FINE_TUNE_MODES = ("all", "freeze", "output", "normalizer")


def fine_tune(model: MLPDynamics, data: Any, mode: str = "all", frozen_layers: int = 1,
              generator: torch.Generator | None = None, **training: Any) -> FitReport:
    """Adapt fitted ``model`` in place to ``data`` (a buffer, batch, or ``(obs, action, next_obs)``
    arrays of the new system) as ``mode`` says; ``training`` overrides the model's training for
    this fit (:class:`~forethought.models.config.TrainConfig` fields, e.g. ``max_epochs=100``,
    ``lr=3e-4``). Returns the training report (for ``normalizer``: one holding only a message)."""
    if mode not in FINE_TUNE_MODES:
        raise ValueError(f"mode must be one of {FINE_TUNE_MODES}, got {mode!r}")
    if not isinstance(model, MLPDynamics):
        raise TypeError(f"fine_tune adapts neural models (MLPDynamics); got {type(model).__name__}")
    if not model.fitted:
        raise ValueError("fine_tune needs a fitted model to start from; fit it on the source system first")
    if isinstance(data, tuple):
        obs, action, next_obs = transition_tensors(*data, model.obs_dim, model.act_dim)
    else:
        obs, action, next_obs = transition_tensors(data, None, None, model.obs_dim, model.act_dim)
    if mode == "normalizer":
        model.fit_normalizers(obs, action, next_obs)
        return FitReport(message=f"re-fitted the normalisers on {obs.shape[0]} transitions (no gradient steps)")
    frozen = {"all": 0, "freeze": frozen_layers, "output": model.hidden_layers}[mode]
    train = train_config(model.train_config, {**training, "frozen_layers": frozen}, "fine_tune")
    return model.train_network(obs, action, next_obs, train, generator or torch.Generator().manual_seed(0))
