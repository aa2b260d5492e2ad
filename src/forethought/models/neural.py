"""Neural dynamics models: deterministic / probabilistic MLPs and their bootstrap ensembles.

One implementation, :class:`MLPDynamics`, covers the four classic variants (the "D", "P", "DE"
and "PE" models of Chua et al. 2018); the named classes below only fix its two switches:

    model = ProbabilisticEnsemble(obs_dim=5, act_dim=1)     # K=5 members, 3 x 200 SiLU layers
    report = model.fit(buffer, generator=torch.Generator().manual_seed(0))
    pred = model.predict(obs, action)          # mean, aleatoric_var, epistemic_var (raw units)
    means, variances = model.predict_members(obs, action)   # [K, B, obs_dim] each
    predictor = model.frozen_member_predictor("bfloat16")   # the elites, fast, for planners

Every model predicts the change ``next_obs - obs`` from standardised obs and action, with
standardised targets; the three normalisers are refitted on the data of every ``fit``. Sizes
default to :class:`~forethought.models.config.ModelConfig`'s and training to
:class:`~forethought.models.config.TrainConfig`'s.

Ensembles: each member trains on its own bootstrap resample and minibatch order; after training
the ``elite_count`` members with the lowest validation MSE are the elites, and ``predict`` and
``sample`` use the elites only. ``elite_count`` defaults to ``min(K, 5)`` (all members of the
default 5-member ensemble, 5 of 7 as in MBPO).

Refitting: the first ``fit`` initialises the weights from its generator. A later ``fit`` (e.g.
with more data) continues from the current weights when ``warm_start=True`` (the default, as in
PETS/MBPO loops) and re-initialises from its generator when ``warm_start=False``. A fit that
diverges in its first epoch keeps the weights and normalisers the model had before it. With
``train.lr_schedule="plateau"`` the model keeps the learning-rate multiplier across fits (and in
its checkpoint), lowering it when fits stop improving the validation loss.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from forethought.data.normalizer import Normalizer
from forethought.models.base import DynamicsModel, FitReport, MemberFn, MemberPredictor, Prediction
from forethought.models.checkpointed import load_network_tensors, network_tensors
from forethought.models.config import ModelConfig, TrainConfig, train_config
from forethought.models.dropout import MCDropoutDynamics
from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork
from forethought.models.frozen import FrozenEnsemble
from forethought.models.laplace import LastLayerLaplaceDynamics
from forethought.models.schedules import PlateauScale
from forethought.models.training import train_ensemble

DEFAULT_MAX_ELITES = 5


class MLPDynamics(DynamicsModel):
    """MLP (or bootstrap ensemble of MLPs) predicting the next observation.

    Args:
        obs_dim, act_dim: observation and action lengths.
        probabilistic: predict a Gaussian (mean and soft-bounded log-std, trained by negative
            log-likelihood) instead of a point (trained by MSE).
        ensemble_size: number of members K (1 = a single network).
        hidden_size, hidden_layers: network shape.
        elite_count: members used by ``predict``/``sample``; ``None`` means ``min(K, 5)``.
        warm_start: a repeated ``fit`` continues from the current weights (else re-initialises).
        train: how to train (a :class:`~forethought.models.config.TrainConfig`; its defaults
            when omitted).
        **training: any :class:`~forethought.models.config.TrainConfig` field, overriding
            ``train`` (max_epochs, patience, batch_size, lr, weight_decay, val_fraction, ...).
    """

    kind = "mlp"

    def __init__(self, obs_dim: int, act_dim: int, probabilistic: bool, ensemble_size: int = 1,
                 hidden_size: int = ModelConfig.hidden_size, hidden_layers: int = ModelConfig.hidden_layers,
                 elite_count: int | None = None, warm_start: bool = True, train: TrainConfig | None = None,
                 **training: Any) -> None:
        super().__init__(obs_dim, act_dim)
        self.train_config = train_config(train, training, type(self).__name__)
        if int(ensemble_size) != ensemble_size or ensemble_size < 1:
            raise ValueError(f"ensemble_size must be an integer >= 1, got {ensemble_size!r}")
        if elite_count is not None and not 1 <= elite_count <= ensemble_size:
            raise ValueError(f"elite_count must be between 1 and ensemble_size={ensemble_size}, got {elite_count}")
        self.probabilistic, self.ensemble_size = bool(probabilistic), int(ensemble_size)
        self.hidden_size, self.hidden_layers = int(hidden_size), int(hidden_layers)
        self.elite_count = int(elite_count) if elite_count is not None else min(self.ensemble_size, DEFAULT_MAX_ELITES)
        self.warm_start = bool(warm_start)
        self.network = self._new_network(self.ensemble_size)
        self.network.requires_grad_(False)
        self.obs_norm, self.act_norm = Normalizer(self.obs_dim), Normalizer(self.act_dim)
        self.delta_norm = Normalizer(self.obs_dim)
        self.elites: list[int] = list(range(self.elite_count))
        t = self.train_config
        self.lr_plateau = PlateauScale(t.plateau_factor, t.plateau_patience, t.min_lr_fraction)
        self._elite_copy: tuple[tuple[int, ...], EnsembleDynamicsNetwork] | None = None

    # ------------------------------------------------------------------ fit
    def _fit(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
             generator: torch.Generator) -> FitReport:
        if not self.fitted or not self.warm_start:
            self.network.reset_parameters(generator)
        before = {prefix: norm.state_dict(prefix) for prefix, norm in self._normalizers().items()}
        self.fit_normalizers(obs, action, next_obs)
        report = self.train_network(obs, action, next_obs, self.train_config, generator)
        if not report.produced_model:  # the weights are those from before the fit: so are the normalisers
            for prefix, norm in self._normalizers().items():
                norm.load_state_dict(before[prefix], prefix)
        return report

    def fit_normalizers(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> None:
        """Fit the input (obs, action) and output (next_obs - obs) normalisers to transitions ``[N, .]``."""
        self.obs_norm.fit(obs)
        self.act_norm.fit(action)
        self.delta_norm.fit(next_obs - obs)

    def train_network(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
                      train: TrainConfig, generator: torch.Generator) -> FitReport:
        """Train the network on transitions ``[N, .]`` through the current normalisers (which are
        not re-fitted) as ``train`` says, then re-rank the elites (unless the fit diverged in its
        first epoch)."""
        delta = next_obs - obs
        inputs = torch.cat([self.obs_norm.normalize(obs), self.act_norm.normalize(action)], dim=-1)
        report = train_ensemble(self.network, inputs, self.delta_norm.normalize(delta), train, generator,
                                plateau=self.lr_plateau)
        if report.produced_model:
            ranking = sorted(range(self.ensemble_size), key=lambda k: report.member_val_loss[k])
            self.elites = sorted(ranking[:self.elite_count])
        report.elites = list(self.elites)
        return report

    # ------------------------------------------------------------------ predict
    def _members(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw per-member means and variances ``[K, B, o]`` for obs ``[B, o]`` or ``[K, B, o]``."""
        x = torch.cat([self.obs_norm.normalize(obs), self.act_norm.normalize(action)], dim=-1)
        mean, log_std = self.network(x)
        means = obs + self.delta_norm.denormalize(mean)
        if log_std is None:
            return means, None
        return means, torch.exp(2.0 * log_std) * self.delta_norm.std.pow(2)

    def _predict(self, obs: torch.Tensor, action: torch.Tensor) -> Prediction:
        means, variances = self._members(obs, action)
        if len(self.elites) < self.ensemble_size:
            means = means[self.elites]
            variances = None if variances is None else variances[self.elites]
        epistemic = means.var(dim=0, unbiased=False) if self.ensemble_size > 1 else None
        aleatoric = None if variances is None else variances.mean(dim=0)
        return Prediction(means.mean(dim=0), aleatoric, epistemic)

    def predict_members(self, obs: Any, action: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every member's prediction in raw units, member axis first: obs ``[B, obs_dim]`` (the
        same rows for every member) or ``[K, B, obs_dim]`` (member k predicts for row block k)
        and the matching actions give ``(means [K, B, obs_dim], variances [K, B, obs_dim] or
        None)``, the predicted aleatoric variances (``None`` for deterministic models). All K
        members are returned; ``self.elites`` lists the elite ones."""
        return self._members(*self._member_inputs(obs, action))

    def sample(self, obs: Any, action: Any, generator: torch.Generator) -> torch.Tensor:
        """One draw of the next observation ``[..., obs_dim]``: each row picks an elite member
        uniformly at random, then draws from its Gaussian (its mean for a deterministic model)."""
        obs_t, act_t = self._inputs(obs, action)
        lead = obs_t.shape[:-1]
        obs_t, act_t = obs_t.reshape(-1, self.obs_dim), act_t.reshape(-1, self.act_dim)
        rows = obs_t.shape[0]
        means, variances = self._members(obs_t, act_t)
        elites, row = torch.tensor(self.elites, device=self.device), torch.arange(rows, device=self.device)
        member = elites[torch.randint(len(self.elites), (rows,), generator=generator, device=self.device)]
        picked = means[member, row]
        if variances is not None:
            noise = torch.randn(picked.shape, generator=generator, dtype=picked.dtype, device=self.device)
            picked = picked + variances[member, row].sqrt() * noise
        return picked.reshape(*lead, self.obs_dim)

    # ------------------------------------------------------------------ members, for planners
    def member_predictor(self) -> MemberPredictor | None:
        """The elites as one differentiable function (float32): the network itself when every
        member is an elite, else an ``E``-member copy holding the elites' weights as they are
        now (built once per set of elites, refreshed by copying at every call of this method),
        so non-elite members cost nothing. ``None`` for a single network."""
        if self.ensemble_size <= 1:
            return None
        elites = sorted(int(k) for k in self.elites)
        network = self.network if len(elites) == self.ensemble_size else self._elite_network(elites)
        return MemberPredictor(elites, self.probabilistic, self._around(network))

    def frozen_member_predictor(self, dtype: torch.dtype | str = "float32") -> MemberPredictor | None:
        """The elites as a :class:`~forethought.models.frozen.FrozenEnsemble` computing in
        ``dtype`` (no autograd; the input normalisers folded into its first layer), wrapped to
        take and return raw units. ``None`` for a single network."""
        if self.ensemble_size <= 1:
            return None
        elites = sorted(int(k) for k in self.elites)
        norms = (self.obs_norm, self.act_norm)
        scale = torch.cat([1.0 / norm.std for norm in norms])
        network = FrozenEnsemble(self.network, elites, dtype, scale, -torch.cat([n.mean for n in norms]) * scale)
        delta_mean, delta_std = self.delta_norm.mean, self.delta_norm.std

        @torch.no_grad()
        def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            mean, log_std = network(obs, action)
            means = torch.addcmul(obs + delta_mean, mean, delta_std)
            return means, None if log_std is None else log_std.exp_().mul_(delta_std)

        return MemberPredictor(elites, self.probabilistic, predict)

    def delta_scale(self) -> torch.Tensor:
        """The delta normaliser's std ``[obs_dim]``: the spread of one-step changes in the data of the last fit."""
        return self.delta_norm.std.detach().float()

    def _around(self, network: EnsembleDynamicsNetwork) -> MemberFn:
        """:meth:`predict_members`'s computation around ``network`` (normalised inputs ``[E, B,
        o + a]`` -> normalised ``(mean, log_std)``): raw obs ``[E, B, o]`` and actions in, raw
        next-obs means and stds ``[E, B, o]`` out."""
        obs_norm, act_norm, delta_norm = self.obs_norm, self.act_norm, self.delta_norm

        def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            x = torch.cat([obs_norm.normalize(obs), act_norm.normalize(action)], dim=-1)
            mean, log_std = network(x)
            means = obs + delta_norm.denormalize(mean)
            return means, None if log_std is None else log_std.exp() * delta_norm.std.to(log_std)

        return predict

    def _elite_network(self, elites: list[int]) -> EnsembleDynamicsNetwork:
        """An ``E``-member copy of the network holding the elites' current weights (every
        parameter has the member axis first, so a member is a slice)."""
        if self._elite_copy is None or self._elite_copy[0] != tuple(elites) or \
                self._elite_copy[1].body.weights[0].device != self.device:
            copy = self._new_network(len(elites))
            self._elite_copy = (tuple(elites), copy.requires_grad_(False).to(self.device))
        copy, index = self._elite_copy[1], torch.tensor(elites, device=self.device)
        with torch.no_grad():
            for mine, theirs in zip(copy.parameters(), self.network.parameters()):
                mine.copy_(theirs.index_select(0, index))
            for mine, theirs in zip(copy.buffers(), self.network.buffers()):  # shared by every member
                mine.copy_(theirs)
        return copy

    def _new_network(self, ensemble_size: int) -> EnsembleDynamicsNetwork:
        """A fresh network of ``ensemble_size`` members for this model's sizes (a model with
        another kind of network replaces this)."""
        return EnsembleDynamicsNetwork(self.obs_dim + self.act_dim, self.obs_dim, self.probabilistic, ensemble_size,
                                       self.hidden_size, self.hidden_layers)

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {"probabilistic": self.probabilistic, "ensemble_size": self.ensemble_size,
                "hidden_size": self.hidden_size, "hidden_layers": self.hidden_layers,
                "elite_count": self.elite_count, "warm_start": self.warm_start, "train": asdict(self.train_config)}

    def _normalizers(self) -> dict[str, Normalizer]:
        return {"obs_norm": self.obs_norm, "act_norm": self.act_norm, "delta_norm": self.delta_norm}

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = network_tensors(self.network, self._normalizers())
        tensors.update(self.lr_plateau.tensors())
        return tensors, {**self._config(), "elites": list(self.elites)}

    @classmethod
    def _from_state(cls, tensors: dict[str, torch.Tensor], config: dict[str, Any], obs_dim: int,
                    act_dim: int, **kwargs: Any) -> "MLPDynamics":
        config = dict(config)
        elites, train = config.pop("elites"), TrainConfig(**config.pop("train"))
        model = cls.__new__(cls)
        MLPDynamics.__init__(model, obs_dim, act_dim, train=train, **config)
        load_network_tensors(model.network, model._normalizers(), tensors)
        model.elites = [int(k) for k in elites]
        model.lr_plateau.load_tensors(tensors)
        return model


class DeterministicMLP(MLPDynamics):
    """A single MLP trained by MSE on normalised deltas ("D")."""

    kind = "deterministic_mlp"

    def __init__(self, obs_dim: int, act_dim: int, **options: Any) -> None:
        super().__init__(obs_dim, act_dim, probabilistic=False, ensemble_size=1, **options)


class ProbabilisticMLP(MLPDynamics):
    """A single MLP predicting a Gaussian, trained by negative log-likelihood ("P")."""

    kind = "probabilistic_mlp"

    def __init__(self, obs_dim: int, act_dim: int, **options: Any) -> None:
        super().__init__(obs_dim, act_dim, probabilistic=True, ensemble_size=1, **options)


class DeterministicEnsemble(MLPDynamics):
    """A bootstrap ensemble of deterministic MLPs ("DE"), 5 members by default."""

    kind = "deterministic_ensemble"

    def __init__(self, obs_dim: int, act_dim: int, ensemble_size: int = ModelConfig.ensemble_size, **options: Any) -> None:
        super().__init__(obs_dim, act_dim, probabilistic=False, ensemble_size=ensemble_size, **options)


class ProbabilisticEnsemble(MLPDynamics):
    """A bootstrap ensemble of probabilistic MLPs ("PE", the PETS model), 5 members by default."""

    kind = "probabilistic_ensemble"

    def __init__(self, obs_dim: int, act_dim: int, ensemble_size: int = ModelConfig.ensemble_size, **options: Any) -> None:
        super().__init__(obs_dim, act_dim, probabilistic=True, ensemble_size=ensemble_size, **options)


MODEL_KINDS: dict[str, type[DynamicsModel]] = {
    "d": DeterministicMLP, "p": ProbabilisticMLP, "de": DeterministicEnsemble, "pe": ProbabilisticEnsemble,
    "dropout": MCDropoutDynamics, "laplace": LastLayerLaplaceDynamics,
}


def make_model(kind: str, obs_dim: int, act_dim: int, **options: Any) -> DynamicsModel:
    """Build a model by its short name: ``"d"``, ``"p"``, ``"de"``, ``"pe"``, ``"dropout"``,
    ``"laplace"`` (see :data:`MODEL_KINDS`) or ``"linear"``
    (:class:`forethought.models.linear.LinearGaussian`). ``options`` go to the class's constructor."""
    if kind == "linear":
        try:
            from forethought.models.linear import LinearGaussian
        except ImportError as err:
            raise ValueError(f"model kind 'linear' needs forethought.models.linear, which failed to import: "
                             f"{err}") from err
        return LinearGaussian(obs_dim, act_dim, **options)
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {sorted([*MODEL_KINDS, 'linear'])}")
    return MODEL_KINDS[kind](obs_dim, act_dim, **options)
