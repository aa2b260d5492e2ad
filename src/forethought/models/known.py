"""A known simulator behind the model interface: the oracle planners are measured against.

    oracle = KnownDynamics(analytic_step(env), obs_dim=5, act_dim=1)
"""

from __future__ import annotations

from typing import Any

import torch

from forethought.models.base import DynamicsModel, FitReport, Prediction
from forethought.models.residual import Simulator, run_simulator


class KnownDynamics(DynamicsModel):
    """Deterministic model whose next observation is ``simulator(obs, action)``.

    There is nothing to learn: ``fit`` only measures the simulator's one-step MSE on the data
    (reported as the training loss) so a mismatch between simulator and system is visible.
    """

    kind = "known"
    probabilistic = False

    def __init__(self, simulator: Simulator, obs_dim: int, act_dim: int) -> None:
        super().__init__(obs_dim, act_dim)
        if not callable(simulator):
            raise TypeError(f"simulator must be callable (obs, action) -> next_obs, got {type(simulator).__name__}")
        self.simulator = simulator
        self.fitted = True

    def _fit(self, obs, action, next_obs, generator) -> FitReport:
        with torch.no_grad():
            mse = float(((self._predict(obs, action).mean - next_obs) ** 2).mean())
        return FitReport(train_loss=[mse], epochs=0, message="known dynamics: nothing to fit, loss is the simulator's MSE")

    def _predict(self, obs, action) -> Prediction:
        return Prediction(run_simulator(self.simulator, obs, action))

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {}

    @classmethod
    def _from_state(cls, tensors, config, obs_dim, act_dim, simulator: Simulator | None = None,
                    **kwargs) -> "KnownDynamics":
        if simulator is None:
            raise ValueError("known dynamics are code, not data: pass the simulator when loading, "
                             "DynamicsModel.load(path, simulator=step_fn)")
        return cls(simulator, obs_dim, act_dim)
