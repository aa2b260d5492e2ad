"""A physics-structured dynamics model: Lagrangian networks (see
:mod:`forethought.models.lagrangian_net`) behind the one model interface.

    model = LagrangianDynamics(obs_dim=3, act_dim=1, coordinates="cos0,sin0,dq0")  # a pendulum
    report = model.fit(buffer)       # report.message gives the step length it read from the data
    next_obs = model.predict(obs, action).mean
    energy = model.energy(obs)       # [K, B]: each member's T + V

The observation's layout (:mod:`forethought.envs.coordinates`) says which entries are positions,
angles (as cos, sin) and velocities; every entry must be one of them. The model reads ``q`` and
``dq`` from the observation, integrates the learned mechanics over the step and writes the
observation back (angles as cos, sin again, so they stay on the unit circle).

It is an :class:`~forethought.models.neural.MLPDynamics` whose network is a
:class:`~forethought.models.lagrangian_net.LagrangianNetwork`: a deterministic bootstrap ensemble
of ``ensemble_size`` members trained by MSE on normalised one-step changes with the same
training loop (validation split, early stopping, divergence report), elites, member predictors
for planners, and checkpoints. The network reads raw observations and actions (it keeps its own
scales), so the input normalisers stay the identity.

The step length ``dt`` (seconds per observation step) is ``dt`` when given, else estimated at
every fit from the data as the least-squares ``h`` in ``q' - q = h (dq + dq') / 2``; ``fit``'s
report message gives it with the share of the position changes it explains (close to 1 when the
layout is right).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from forethought.envs.coordinates import CoordinateLayout, parse_layout
from forethought.models.base import FitReport, MemberPredictor, as_tensor
from forethought.models.checkpointed import load_network_tensors
from forethought.models.config import ModelConfig, TrainConfig
from forethought.models.lagrangian_net import LagrangianNetwork
from forethought.models.neural import MLPDynamics

DEFAULT_SUBSTEPS = 4


class LagrangianDynamics(MLPDynamics):
    """An ensemble of Lagrangian networks predicting the next observation.

    Args:
        obs_dim, act_dim: observation and action lengths.
        coordinates: the observation's layout, e.g. ``"q0,dq0,cos1,sin1,dq1"`` (ValueError when
            it is not a layout of ``obs_dim`` entries with every velocity).
        ensemble_size: members K (1: a single network, which planners propagate through ``sample``).
        hidden_size, hidden_layers: the MLP of ``M``, ``V`` and ``B``.
        substeps: semi-implicit Euler steps per observation step.
        dt: seconds per observation step; None estimates it from the data at every fit.
        elite_count, warm_start, train, **training: as :class:`~forethought.models.neural.MLPDynamics`.
    """

    kind = "lagrangian"

    def __init__(self, obs_dim: int, act_dim: int, coordinates: str | CoordinateLayout,
                 ensemble_size: int = ModelConfig.ensemble_size, hidden_size: int = ModelConfig.hidden_size,
                 hidden_layers: int = ModelConfig.hidden_layers, substeps: int = DEFAULT_SUBSTEPS,
                 dt: float | None = None, **options: Any) -> None:
        layout = coordinates if isinstance(coordinates, CoordinateLayout) else parse_layout(coordinates)
        self.layout = layout.check_obs_dim(obs_dim)
        if isinstance(substeps, bool) or int(substeps) != substeps or substeps < 1:
            raise ValueError(f"model.substeps must be an integer >= 1, got {substeps!r}")
        if dt is not None and not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"model.dt must be a number of seconds > 0 (or None to read it from the data), got {dt!r}")
        self.substeps, self.dt = int(substeps), None if dt is None else float(dt)
        super().__init__(obs_dim, act_dim, probabilistic=False, ensemble_size=ensemble_size,
                         hidden_size=hidden_size, hidden_layers=hidden_layers, **options)

    def _new_network(self, ensemble_size: int) -> LagrangianNetwork:
        return LagrangianNetwork(self.layout, self.act_dim, ensemble_size, self.hidden_size, self.hidden_layers,
                                 self.substeps)

    # ------------------------------------------------------------------ fit
    def _fit(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
             generator: torch.Generator) -> FitReport:
        scales = {name: b.clone() for name, b in self.network.named_buffers()}
        report = super()._fit(obs, action, next_obs, generator)
        if not report.produced_model:  # the weights are those from before the fit: so are the scales
            for name, b in self.network.named_buffers():
                b.copy_(scales[name])
        else:
            note = (f"step {self._step_fit['dt']:.4g} s ({'given' if self.dt is not None else 'estimated'}; "
                    f"it explains {100 * self._step_fit['dt_r2']:.1f} % of the position changes)")
            report.message = f"{report.message}; {note}" if report.message else note
        return report

    def fit_normalizers(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> None:
        """Fit the output normaliser and the network's scales (step length, coordinate, action and
        delta scales) to transitions ``[N, .]``; the input normalisers stay the identity."""
        self.delta_norm.fit(next_obs - obs)
        self._step_fit = self.network.set_scales(obs, action, next_obs, self.dt)
        self.network.delta_mean.copy_(self.delta_norm.mean)
        self.network.delta_std.copy_(self.delta_norm.std)

    # ------------------------------------------------------------------ physics
    def energy(self, obs: Any) -> torch.Tensor:
        """Each member's energy ``T + V`` (the model's own units) of observations ``[B, obs_dim]``:
        ``[K, B]``. Constant along an unforced, undamped rollout of that member, up to the
        integrator's ``O(dt / substeps)`` oscillation."""
        obs_t = as_tensor(obs, "obs", self.obs_dim).to(self.device)
        if obs_t.ndim != 2:
            raise ValueError(f"energy expects obs of shape (B, {self.obs_dim}), got {tuple(obs_t.shape)}")
        with torch.no_grad():
            return self.network.energy(obs_t)

    def frozen_member_predictor(self, dtype: torch.dtype | str = "float32") -> MemberPredictor | None:
        """:meth:`member_predictor` without autograd (float32 whatever ``dtype``: the Euler–Lagrange
        solve is not run in bfloat16). ``None`` for a single network."""
        predictor = self.member_predictor()
        if predictor is None:
            return None

        @torch.no_grad()
        def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            return predictor(obs, action)

        return MemberPredictor(predictor.members, False, predict)

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        config = super()._config()
        del config["probabilistic"]
        return {**config, "coordinates": self.layout.text(), "substeps": self.substeps, "dt": self.dt}

    @classmethod
    def _from_state(cls, tensors: dict[str, torch.Tensor], config: dict[str, Any], obs_dim: int,
                    act_dim: int, **kwargs: Any) -> "LagrangianDynamics":
        config = dict(config)
        elites, train = config.pop("elites"), TrainConfig(**config.pop("train"))
        model = cls(obs_dim, act_dim, train=train, **config)
        load_network_tensors(model.network, model._normalizers(), tensors)
        model.elites = [int(k) for k in elites]
        model.lr_plateau.load_tensors(tensors)
        return model
