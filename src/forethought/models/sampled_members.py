"""One probabilistic network whose epistemic uncertainty comes from ``T`` sampled versions of it.

MC dropout (:class:`~forethought.models.dropout.MCDropoutDynamics`) and the last-layer Laplace
network (:class:`~forethought.models.laplace.LastLayerLaplaceDynamics`) train one Gaussian-head
MLP and represent its parameter uncertainty by ``T = mc_samples`` draws: fixed dropout masks, or
fixed weight samples of the output layer. Those draws are the model's *members*: they are drawn
from the fit's generator at the end of every ``fit`` (and saved with the model), so a member is a
deterministic function, the same at every call until the next fit. Every planner, propagation
mode (TS-inf keeps one member per particle), the disagreement and risk code and MBPO's
``sample`` then work exactly as with an ensemble:

    model = MCDropoutDynamics(obs_dim=5, act_dim=1, dropout_rate=0.1, mc_samples=10)
    model.fit(buffer, generator=torch.Generator().manual_seed(0))
    means, variances = model.predict_members(obs, action)     # [T, B, o] each
    pred = model.predict(obs, action)                         # mean, aleatoric_var, epistemic_var

Like :class:`~forethought.models.neural.MLPDynamics`, the network predicts the standardised
change ``next_obs - obs`` from standardised inputs, the normalisers are refitted on every
``fit``'s data, and a repeated ``fit`` continues from the current weights when ``warm_start``.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import asdict
from typing import Any

import torch

from forethought.data.normalizer import Normalizer
from forethought.models.base import DynamicsModel, FitReport, MemberPredictor, Prediction
from forethought.models.checkpointed import load_network_tensors, network_tensors
from forethought.models.config import ModelConfig, TrainConfig, train_config
from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork
from forethought.models.frozen import FrozenEnsemble, compute_dtype
from forethought.models.schedules import PlateauScale
from forethought.models.training import train_ensemble


class SampledMemberDynamics(DynamicsModel):
    """Base of the single-network models with ``T`` sampled members (see the module docstring).

    Subclasses build ``self.network`` (a one-member
    :class:`~forethought.models.ensemble_mlp.EnsembleDynamicsNetwork`) in :meth:`_build_network`,
    draw the members in :meth:`_draw_members` and compute them in :meth:`_member_outputs`.

    Args:
        obs_dim, act_dim: observation and action lengths.
        mc_samples: number of members ``T`` (>= 2: the epistemic variance is their spread).
        hidden_size, hidden_layers: network shape.
        warm_start: a repeated ``fit`` continues from the current weights (else re-initialises).
        train, **training: as :class:`~forethought.models.neural.MLPDynamics`.
    """

    probabilistic = True

    def __init__(self, obs_dim: int, act_dim: int, mc_samples: int = ModelConfig.mc_samples,
                 hidden_size: int = ModelConfig.hidden_size, hidden_layers: int = ModelConfig.hidden_layers,
                 warm_start: bool = True, train: TrainConfig | None = None, **training: Any) -> None:
        super().__init__(obs_dim, act_dim)
        self.train_config = train_config(train, training, type(self).__name__)
        if isinstance(mc_samples, bool) or int(mc_samples) != mc_samples or mc_samples < 2:
            raise ValueError(f"mc_samples must be an integer >= 2 (the epistemic variance is the spread of the "
                             f"samples), got {mc_samples!r}")
        self.ensemble_size = int(mc_samples)
        self.elites = list(range(self.ensemble_size))
        self.hidden_size, self.hidden_layers, self.warm_start = int(hidden_size), int(hidden_layers), bool(warm_start)
        self.network = self._build_network()
        self.network.requires_grad_(False)
        self.obs_norm, self.act_norm = Normalizer(self.obs_dim), Normalizer(self.act_dim)
        self.delta_norm = Normalizer(self.obs_dim)
        self._frozen: dict[tuple[torch.dtype, torch.device], MemberPredictor] = {}
        t = self.train_config
        self.lr_plateau = PlateauScale(t.plateau_factor, t.plateau_patience, t.min_lr_fraction)

    @property
    def mc_samples(self) -> int:
        return self.ensemble_size

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _build_network(self) -> EnsembleDynamicsNetwork:
        """The one-member network: inputs ``o + a``, a mean and a log-std head of ``o`` each."""

    @abstractmethod
    def _draw_members(self, inputs: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> None:
        """Draw the ``T`` members after a fit on normalised inputs ``[N, o + a]`` and targets ``[N, o]``."""

    @abstractmethod
    def _member_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's normalised ``(mean, log_std)`` ``[T, B, o]`` for normalised inputs
        ``[B, o + a]`` (shared by the members) or ``[T, B, o + a]`` (member t reads block t)."""

    def _train(self, inputs: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> FitReport:
        """Train the network on normalised inputs ``[N, o + a]`` and targets ``[N, o]``."""
        return train_ensemble(self.network, inputs, targets, self.train_config, generator, plateau=self.lr_plateau)

    # ------------------------------------------------------------------ fit
    def _fit(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
             generator: torch.Generator) -> FitReport:
        if not self.fitted or not self.warm_start:
            self.network.reset_parameters(generator)
        before = {prefix: norm.state_dict(prefix) for prefix, norm in self._normalizers().items()}
        self.obs_norm.fit(obs)
        self.act_norm.fit(action)
        self.delta_norm.fit(next_obs - obs)
        inputs = torch.cat([self.obs_norm.normalize(obs), self.act_norm.normalize(action)], dim=-1)
        targets = self.delta_norm.normalize(next_obs - obs)
        report = self._train(inputs, targets, generator)
        if report.produced_model:
            self._draw_members(inputs, targets, generator)
            self._members_changed()
        else:  # the weights are those from before the fit: so are the normalisers and the members
            for prefix, norm in self._normalizers().items():
                norm.load_state_dict(before[prefix], prefix)
        report.elites = list(self.elites)
        return report

    # ------------------------------------------------------------------ predict
    def _members(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw per-member means and variances ``[T, B, o]`` for obs ``[B, o]`` or ``[T, B, o]``."""
        x = torch.cat([self.obs_norm.normalize(obs), self.act_norm.normalize(action)], dim=-1)
        mean, log_std = self._member_outputs(x)
        return obs + self.delta_norm.denormalize(mean), torch.exp(2.0 * log_std) * self.delta_norm.std.pow(2)

    def _predict(self, obs: torch.Tensor, action: torch.Tensor) -> Prediction:
        """Mean over the members, mean of their predicted variances (aleatoric) and the population
        variance of their means (epistemic). Deviations are taken from member 0, so members that
        agree bit for bit give an epistemic variance of exactly zero."""
        means, variances = self._members(obs, action)
        deviation = means - means[:1]
        return Prediction(means[0] + deviation.mean(dim=0), variances.mean(dim=0),
                          deviation.var(dim=0, unbiased=False))

    def predict_members(self, obs: Any, action: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's prediction in raw units: obs ``[B, obs_dim]`` (the same rows for every
        member) or ``[T, B, obs_dim]`` (member t predicts for block t) and the matching actions
        give ``(means [T, B, obs_dim], aleatoric variances [T, B, obs_dim])``."""
        return self._members(*self._member_inputs(obs, action))

    def sample(self, obs: Any, action: Any, generator: torch.Generator) -> torch.Tensor:
        """One draw of the next observation ``[..., obs_dim]``: each row picks a member uniformly
        at random, then draws from its Gaussian."""
        obs_t, act_t = self._inputs(obs, action)
        lead = obs_t.shape[:-1]
        obs_t, act_t = obs_t.reshape(-1, self.obs_dim), act_t.reshape(-1, self.act_dim)
        rows = torch.arange(obs_t.shape[0], device=self.device)
        member = torch.randint(self.ensemble_size, (obs_t.shape[0],), generator=generator, device=self.device)
        means, variances = self._members(obs_t, act_t)
        picked = means[member, rows]
        noise = torch.randn(picked.shape, generator=generator, dtype=picked.dtype, device=self.device)
        return (picked + variances[member, rows].sqrt() * noise).reshape(*lead, self.obs_dim)

    # ------------------------------------------------------------------ members, for planners
    def member_predictor(self) -> MemberPredictor:
        """All ``T`` members as one differentiable function, raw units in and out, reading the
        model as it is at every call."""

        def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            means, variances = self._members(obs, action)
            return means, variances.sqrt()

        return MemberPredictor(self.elites, True, predict)

    def frozen_member_predictor(self, dtype: torch.dtype | str = "float32") -> MemberPredictor:
        """The members as a :class:`~forethought.models.frozen.FrozenEnsemble` computing in
        ``dtype`` (the fast path of the neural ensembles: each member written out as a network of
        its own by :meth:`_member_network`, the input normalisers folded into its first layer),
        wrapped to take and return raw units. Built once per fit (or load) and dtype."""
        key = (compute_dtype(dtype), self.device)
        if key not in self._frozen:
            norms = (self.obs_norm, self.act_norm)
            scale = torch.cat([1.0 / norm.std for norm in norms])
            network = FrozenEnsemble(self._member_network(), self.elites, key[0], scale,
                                     -torch.cat([n.mean for n in norms]) * scale)
            delta_mean, delta_std = self.delta_norm.mean, self.delta_norm.std

            @torch.no_grad()
            def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                mean, log_std = network(obs, action)
                return torch.addcmul(obs + delta_mean, mean, delta_std), log_std.exp_().mul_(delta_std)

            self._frozen[key] = MemberPredictor(self.elites, True, predict)
        return self._frozen[key]

    def _member_network(self) -> EnsembleDynamicsNetwork:
        """The ``T`` members as a ``T``-member ensemble network holding each member's own
        weights (normalised inputs ``[T, B, o + a]`` to normalised ``(mean, log_std)``)."""
        raise NotImplementedError

    def _members_changed(self) -> None:
        """Forget the frozen predictors: the members, normalisers or device have changed."""
        self._frozen.clear()

    def to(self, device: torch.device | str) -> "SampledMemberDynamics":
        self._members_changed()
        return super().to(device)

    def delta_scale(self) -> torch.Tensor:
        """The delta normaliser's std ``[obs_dim]``: the spread of one-step changes in the data of the last fit."""
        return self.delta_norm.std.detach().float()

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        """The constructor arguments (JSON), subclasses adding theirs."""
        return {"mc_samples": self.ensemble_size, "hidden_size": self.hidden_size,
                "hidden_layers": self.hidden_layers, "warm_start": self.warm_start,
                "train": asdict(self.train_config)}

    def _member_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors that hold the drawn members (and anything else beyond the network), by name."""
        return {}

    def _load_member_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put back what :meth:`_member_tensors` returned (the names may be absent for an unfitted model)."""

    def _normalizers(self) -> dict[str, Normalizer]:
        return {"obs_norm": self.obs_norm, "act_norm": self.act_norm, "delta_norm": self.delta_norm}

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = network_tensors(self.network, self._normalizers())
        tensors.update(self._member_tensors())
        tensors.update(self.lr_plateau.tensors())
        return tensors, self._config()

    @classmethod
    def _from_state(cls, tensors: dict[str, torch.Tensor], config: dict[str, Any], obs_dim: int,
                    act_dim: int, **kwargs: Any) -> "SampledMemberDynamics":
        config = dict(config)
        model = cls(obs_dim, act_dim, train=TrainConfig(**config.pop("train")), **config)
        load_network_tensors(model.network, model._normalizers(), tensors)
        model._load_member_tensors(tensors)
        model.lr_plateau.load_tensors(tensors)
        model._members_changed()
        return model
