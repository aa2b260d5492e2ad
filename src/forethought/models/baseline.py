"""The constant-delta baseline: predicts next_obs = obs + the mean training delta.

Any learned model worth its training time must beat it on held-out data; the fit-model report
and the tests measure that margin.
"""

from __future__ import annotations

from typing import Any

import torch

from forethought.models.base import DynamicsModel, FitReport, Prediction


class ConstantDelta(DynamicsModel):
    """next_obs = obs + mean(delta); aleatoric variance = per-dimension variance of the deltas."""

    kind = "constant"

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__(obs_dim, act_dim)
        self.delta_mean = torch.zeros(obs_dim)
        self.delta_var = torch.ones(obs_dim)

    def _fit(self, obs, action, next_obs, generator) -> FitReport:
        delta = (next_obs - obs).double()
        self.delta_mean = delta.mean(0).float()
        self.delta_var = delta.var(0, unbiased=False).float() if len(delta) > 1 else torch.zeros(self.obs_dim, device=self.device)
        mse = float(((delta - delta.mean(0)) ** 2).mean())
        return FitReport(train_loss=[mse], epochs=1)

    def _predict(self, obs, action) -> Prediction:
        return Prediction(mean=obs + self.delta_mean, aleatoric_var=self.delta_var.expand_as(obs))

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {"delta_mean": self.delta_mean, "delta_var": self.delta_var}, {}

    @classmethod
    def _from_state(cls, tensors, config, obs_dim, act_dim, **kwargs) -> "ConstantDelta":
        model = cls(obs_dim, act_dim)
        model.delta_mean, model.delta_var = tensors["delta_mean"], tensors["delta_var"]
        return model
