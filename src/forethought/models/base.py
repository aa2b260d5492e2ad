"""The one interface every dynamics model implements, and the checkpoint code every model shares.

A model is fitted on transitions and predicts the distribution of the next observation:

    report = model.fit(buffer)                      # or model.fit(obs, actions, next_obs)
    pred = model.predict(obs, action)               # pred.mean, pred.aleatoric_var, pred.epistemic_var
    next_obs = model.sample(obs, action, generator) # one stochastic draw
    model.save("ckpt/model"); DynamicsModel.load("ckpt/model")
    model.to("cuda")                                # its tensors on a device; inputs follow it

Planners see a model only through this interface. An ensemble (``ensemble_size > 1``) also exposes
its members: ``model.elites`` (the members ``predict`` and ``sample`` use),
``model.predict_members(obs, action)`` (every member's prediction, member axis first), and the
elites as one batched function for rollouts, :meth:`DynamicsModel.member_predictor` (follows the
model, differentiable) and :meth:`DynamicsModel.frozen_member_predictor` (a fast snapshot without
autograd, in float32 or bfloat16). ``model.delta_scale()`` is the typical size of a one-step change
per dimension and ``model.linearization(obs, action)`` the local linear model ``(A, B, c)``.

Callers pass and receive raw observations; delta targets and normalisation stay inside models.
Inputs on any device are moved to the model's ``device`` (``cpu`` unless :meth:`to` moved it);
generators passed to ``fit`` and ``sample`` must be on it.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from forethought.data.buffer import ReplayBuffer, TransitionBatch
from forethought.models.frozen import compute_dtype
from forethought.models.checkpointed import CheckpointedModel

MemberFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
"""``(obs [E, B, o], action [E, B, a]) -> (means [E, B, o], stds [E, B, o] or None)``, raw units."""


@dataclass
class Prediction:
    """Next-observation distribution for a batch: every field is ``[B, obs_dim]`` (raw units).

    ``aleatoric_var`` is the predicted noise (mean of members' variances for an ensemble);
    ``epistemic_var`` is model uncertainty (variance of members' means for an ensemble, parameter
    uncertainty for the linear model). Either is ``None`` when the model does not have it.
    """

    mean: torch.Tensor
    aleatoric_var: torch.Tensor | None = None
    epistemic_var: torch.Tensor | None = None

    @property
    def variance(self) -> torch.Tensor | None:
        """Total predictive variance (aleatoric + epistemic), or ``None`` if the model has neither."""
        parts = [v for v in (self.aleatoric_var, self.epistemic_var) if v is not None]
        return sum(parts[1:], parts[0]) if parts else None

    def map(self, fn) -> "Prediction":
        """Apply ``fn`` to every tensor field (e.g. a reshape)."""
        return Prediction(*(None if t is None else fn(t) for t in (self.mean, self.aleatoric_var, self.epistemic_var)))


@dataclass
class FitReport:
    """What happened during ``fit``: per-epoch losses (validation losses are MSE on normalised
    deltas unless stated), the epoch whose weights were kept, and any warning.

    Divergence: when a training or validation loss goes non-finite the fit stops cleanly,
    ``nonfinite`` is True, ``nonfinite_epoch`` is the epoch (from 0) it happened in and
    ``nonfinite_members`` the members whose loss it was; ``epochs`` counts the finite epochs
    before it. A fit that diverged in its first epoch produced no model: the model's ``fitted``
    stays what it was (False for a fresh model).
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    epochs: int = 0
    stopped_early: bool = False
    nonfinite: bool = False
    nonfinite_epoch: int | None = None
    nonfinite_members: list[int] | None = None
    message: str = ""
    member_val_loss: list[float] | None = None
    elites: list[int] | None = None

    @property
    def best_val_loss(self) -> float | None:
        return min(self.val_loss) if self.val_loss else None

    @property
    def produced_model(self) -> bool:
        """Whether the fit left a usable model: it did not diverge before a finite epoch."""
        return not (self.nonfinite and self.epochs == 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MemberPredictor:
    """Some members of an ensemble (its elites) as one batched function, for rollouts.

    Calling it on obs ``[E, B, o]`` and action ``[E, B, a]`` (member ``e`` reads block ``e``; raw
    units) returns ``(means [E, B, o], stds [E, B, o] or None)``: each member's predicted next
    observation and, for probabilistic members, its predicted aleatoric standard deviation.

    Attributes:
        members: the model's member index of each of the ``E`` blocks.
        probabilistic: whether ``stds`` is returned.
    """

    def __init__(self, members: list[int], probabilistic: bool, fn: MemberFn) -> None:
        self.members, self.probabilistic, self._fn = list(members), bool(probabilistic), fn

    @property
    def size(self) -> int:
        return len(self.members)

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._fn(obs, action)


def as_tensor(x: Any, name: str, dim: int) -> torch.Tensor:
    """Convert ``x`` (array-like ``[..., dim]``) to float32, raising a clear error on a bad shape."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
    if t.ndim == 0 or t.shape[-1] != dim:
        raise ValueError(f"'{name}' has shape {tuple(t.shape)}, expected (..., {dim})")
    return t.float() if t.dtype != torch.float32 else t


def transition_tensors(data: Any, actions: Any = None, next_obs: Any = None,
                       obs_dim: int | None = None, act_dim: int | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalise the accepted ``fit`` inputs to ``(obs [N, o], action [N, a], next_obs [N, o])``.

    ``data`` is a :class:`ReplayBuffer`, a :class:`TransitionBatch`, or an observation array given
    together with ``actions`` and ``next_obs``.
    """
    if isinstance(data, ReplayBuffer):
        data = data.all()
    if isinstance(data, TransitionBatch):
        if actions is not None or next_obs is not None:
            raise TypeError("pass either a buffer/batch or the three arrays (obs, actions, next_obs), not both")
        obs, act, nxt = data.obs, data.action, data.next_obs
    else:
        if actions is None or next_obs is None:
            raise TypeError("fit(obs, actions, next_obs) needs all three arrays when no buffer is given")
        obs, act, nxt = data, actions, next_obs
    obs_t = as_tensor(obs, "obs", obs_dim if obs_dim is not None else np.shape(obs)[-1])
    act_t = as_tensor(act, "actions", act_dim if act_dim is not None else np.shape(act)[-1])
    nxt_t = as_tensor(nxt, "next_obs", obs_t.shape[-1])
    if obs_t.ndim != 2 or act_t.ndim != 2 or nxt_t.ndim != 2:
        raise ValueError(f"fit expects 2-D arrays, got obs {tuple(obs_t.shape)}, actions {tuple(act_t.shape)}, "
                         f"next_obs {tuple(nxt_t.shape)}")
    if not (obs_t.shape[0] == act_t.shape[0] == nxt_t.shape[0]):
        raise ValueError(f"row counts differ: obs {obs_t.shape[0]}, actions {act_t.shape[0]}, next_obs {nxt_t.shape[0]}")
    for name, t in (("obs", obs_t), ("actions", act_t), ("next_obs", nxt_t)):
        bad = ~torch.isfinite(t).all(dim=-1)
        if bad.any():
            raise ValueError(f"'{name}' has a non-finite value at row {int(bad.nonzero()[0])}")
    return obs_t, act_t, nxt_t


def require_model(model: Any, name: str = "model") -> "DynamicsModel":
    """``model`` if it implements :class:`DynamicsModel`, else a TypeError naming ``name``."""
    if not isinstance(model, DynamicsModel):
        raise TypeError(f"{name} must be a dynamics model (forethought.models.DynamicsModel), "
                        f"got {type(model).__name__}")
    return model


class DynamicsModel(CheckpointedModel):
    """Base class: validation, batching of arbitrary leading dims, sampling, the member interface
    planners use, and persistence.

    Subclasses set ``kind`` and implement ``_fit``, ``_predict``, ``_state`` and ``_from_state``.
    An ensemble also sets ``ensemble_size``, keeps ``elites`` and implements ``predict_members``
    (and may replace the member predictors with faster ones).

    Attributes:
        ensemble_size: members whose predictions :meth:`predict_members` returns (1: a single model).
        elites: the members ``predict`` and ``sample`` use, and planners roll out.
        probabilistic: whether the members predict aleatoric variance.
    """

    ensemble_size: int = 1
    probabilistic: bool = True

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__(obs_dim, act_dim)
        self.elites: list[int] = list(range(self.ensemble_size))

    # ------------------------------------------------------------------ public API
    def fit(self, data: Any, actions: Any = None, next_obs: Any = None, *,
            generator: torch.Generator | None = None) -> FitReport:
        """Fit on transitions: a :class:`ReplayBuffer`/:class:`TransitionBatch`, or arrays
        ``fit(obs [N, o], actions [N, a], next_obs [N, o])``. ``generator`` drives splits,
        shuffling and initialisation (a fixed default seed is used when omitted). A fit that
        diverged before its first finite epoch leaves ``fitted`` as it was
        (:attr:`FitReport.produced_model`)."""
        obs, act, nxt = (t.to(self.device) for t in transition_tensors(data, actions, next_obs, self.obs_dim,
                                                                        self.act_dim))
        if generator is None:
            generator = torch.Generator(self.device).manual_seed(0)
        report = self._fit(obs, act, nxt, generator)
        self.fitted = self.fitted or report.produced_model
        return report

    def predict(self, obs: Any, action: Any) -> Prediction:
        """Next-observation distribution for obs ``[..., obs_dim]`` and action ``[..., act_dim]``;
        every returned field has shape ``[..., obs_dim]``. Differentiable w.r.t. its inputs."""
        obs_t, act_t = self._inputs(obs, action)
        lead = obs_t.shape[:-1]
        pred = self._predict(obs_t.reshape(-1, self.obs_dim), act_t.reshape(-1, self.act_dim))
        return pred.map(lambda t: t.reshape(*lead, self.obs_dim))

    def sample(self, obs: Any, action: Any, generator: torch.Generator) -> torch.Tensor:
        """One draw of the next observation ``[..., obs_dim]`` from the predicted Gaussian
        (the mean for a model without predicted noise)."""
        pred = self.predict(obs, action)
        if pred.aleatoric_var is None:
            return pred.mean
        noise = torch.randn(pred.mean.shape, generator=generator, dtype=pred.mean.dtype, device=pred.mean.device)
        return pred.mean + pred.aleatoric_var.sqrt() * noise

    # ------------------------------------------------------------------ members, for planners
    def predict_members(self, obs: Any, action: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every member's prediction in raw units, member axis first.

        Args:
            obs: ``[B, obs_dim]`` (the same rows for every member) or ``[K, B, obs_dim]``
                (member k predicts for row block k).
            action: ``[B, act_dim]`` or ``[K, B, act_dim]``, matching ``obs``.

        Returns:
            ``(means [K, B, obs_dim], variances [K, B, obs_dim] or None)``, the variances the
            predicted aleatoric ones. A single model (K = 1) returns its prediction with a member
            axis of one; an ensemble implements this itself.
        """
        if self.ensemble_size != 1:
            raise NotImplementedError(f"{type(self).__name__} has {self.ensemble_size} members but does not "
                                      "implement predict_members")
        obs_t, act_t = self._inputs(obs, action)
        if obs_t.ndim == 3 and obs_t.shape[0] == 1:
            obs_t, act_t = obs_t[0], act_t[0]
        if obs_t.ndim != 2:
            raise ValueError(f"predict_members expects obs of shape (B, {self.obs_dim}) or (1, B, {self.obs_dim}), "
                             f"got {tuple(obs_t.shape)}")
        pred = self.predict(obs_t, act_t)
        variances = None if pred.aleatoric_var is None else pred.aleatoric_var.unsqueeze(0)
        return pred.mean.unsqueeze(0), variances

    def member_predictor(self) -> MemberPredictor | None:
        """The elites as one batched function (see :class:`MemberPredictor`), differentiable and
        reading the model as it is at every call; ``None`` for a model with one member, which
        planners propagate through :meth:`sample` and :meth:`predict`.

        This default calls :meth:`predict_members` on ``[K, B, .]`` blocks, the non-elite blocks
        being copies whose predictions are dropped."""
        if self.ensemble_size <= 1:
            return None
        size, elites = self.ensemble_size, sorted(int(k) for k in self.elites)
        # block of each model member: its own when it is an elite, else elite 0's (prediction dropped)
        block = torch.tensor([elites.index(k) if k in elites else 0 for k in range(size)], device=self.device)
        keep, all_members = torch.tensor(elites, device=self.device), elites == list(range(size))

        def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            if not all_members:
                obs, action = obs.index_select(0, block), action.index_select(0, block)
            means, variances = self.predict_members(obs, action)
            if not all_members:
                means = means.index_select(0, keep)
                variances = None if variances is None else variances.index_select(0, keep)
            return means, None if variances is None else variances.sqrt()

        return MemberPredictor(elites, self.probabilistic, predict)

    def frozen_member_predictor(self, dtype: torch.dtype | str = "float32") -> MemberPredictor | None:
        """The elites as one batched function for rollouts without autograd, computing in
        ``dtype`` (``"float32"`` or ``"bfloat16"``) where the model has a fast path for it; a
        snapshot: take a new one after the model changes. ``None`` for a model with one member.

        This default is :meth:`member_predictor` (float32 whatever ``dtype``); a neural ensemble
        returns a :class:`~forethought.models.frozen.FrozenEnsemble` of its elites."""
        compute_dtype(dtype)
        return self.member_predictor()

    def delta_scale(self) -> torch.Tensor:
        """Typical size of a one-step change per dimension ``[obs_dim]`` (float32): the std of
        ``next_obs - obs`` in the training data for models that normalise their targets, ones
        otherwise. Planners measure members' disagreement in these units."""
        return torch.ones(self.obs_dim, device=self.device)

    def linearization(self, obs: Any = None, action: Any = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The mean prediction linearised at ``obs [o]``, ``action [a]``: float64 ``(A [o, o],
        B [o, a], c [o])`` with ``mean(x, u) ~ A x + B u + c`` near that point (the Jacobians of
        :meth:`predict`'s mean). A linear model returns its own ``A, B, c`` and needs no point."""
        if obs is None or action is None:
            raise ValueError(f"{type(self).__name__} is not linear: linearization needs a point (obs, action)")
        obs_t, act_t = self._inputs(obs, action)
        if obs_t.shape != (self.obs_dim,):
            raise ValueError(f"linearization takes one point: obs of shape ({self.obs_dim},), got {tuple(obs_t.shape)}")
        A, B = torch.autograd.functional.jacobian(lambda x, u: self.predict(x, u).mean, (obs_t, act_t))
        A, B = A.detach().double(), B.detach().double()
        with torch.no_grad():
            c = self.predict(obs_t, act_t).mean.double() - A @ obs_t.double() - B @ act_t.double()
        return A, B, c

    # ------------------------------------------------------------------ for subclasses
    def _member_inputs(self, obs: Any, action: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_inputs` for an ensemble's ``predict_members``: obs ``[B, o]`` (the same rows for
        every member) or ``[ensemble_size, B, o]`` (one block per member), else a ValueError."""
        obs_t, act_t = self._inputs(obs, action)
        if obs_t.ndim not in (2, 3) or (obs_t.ndim == 3 and obs_t.shape[0] != self.ensemble_size):
            raise ValueError(f"predict_members expects obs of shape (B, {self.obs_dim}) or "
                             f"({self.ensemble_size}, B, {self.obs_dim}), got {tuple(obs_t.shape)}")
        return obs_t, act_t

    def _inputs(self, obs: Any, action: Any) -> tuple[torch.Tensor, torch.Tensor]:
        obs_t = as_tensor(obs, "obs", self.obs_dim).to(self.device)
        act_t = as_tensor(action, "action", self.act_dim).to(self.device)
        if obs_t.shape[:-1] != act_t.shape[:-1]:
            raise ValueError(f"obs batch shape {tuple(obs_t.shape[:-1])} differs from action batch shape "
                             f"{tuple(act_t.shape[:-1])}")
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} has not been fitted: call fit(...) first")
        return obs_t, act_t

    @abstractmethod
    def _fit(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
             generator: torch.Generator) -> FitReport:
        """Fit on validated tensors obs ``[N, o]``, action ``[N, a]``, next_obs ``[N, o]``."""

    @abstractmethod
    def _predict(self, obs: torch.Tensor, action: torch.Tensor) -> Prediction:
        """Predict for flat batches obs ``[B, o]``, action ``[B, a]``."""
