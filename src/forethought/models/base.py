"""The one interface every dynamics model implements.

A model is fitted on transitions and predicts the distribution of the next observation:

    report = model.fit(buffer)                      # or model.fit(obs, actions, next_obs)
    pred = model.predict(obs, action)               # pred.mean, pred.aleatoric_var, pred.epistemic_var
    next_obs = model.sample(obs, action, generator) # one stochastic draw
    model.save("ckpt/model"); DynamicsModel.load("ckpt/model")

Callers pass and receive raw observations; delta targets and normalisation stay inside models.
Planners and agents depend only on this interface.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from forethought.data.buffer import ReplayBuffer, TransitionBatch
from forethought.serialization import CheckpointError, load_checkpoint, save_checkpoint

_MODEL_CLASSES: dict[str, type["DynamicsModel"]] = {}


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
    deltas unless stated), the epoch whose weights were kept, and any warning."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    epochs: int = 0
    stopped_early: bool = False
    nonfinite: bool = False
    message: str = ""
    member_val_loss: list[float] | None = None
    elites: list[int] | None = None

    @property
    def best_val_loss(self) -> float | None:
        return min(self.val_loss) if self.val_loss else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


class DynamicsModel(ABC):
    """Base class: validation, batching of arbitrary leading dims, sampling and persistence.

    Subclasses set ``kind`` (the name stored in checkpoints) and implement ``_fit``, ``_predict``,
    ``_state`` and ``_from_state``.
    """

    kind: ClassVar[str] = ""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f"obs_dim and act_dim must be >= 1, got obs_dim={obs_dim}, act_dim={act_dim}")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.fitted = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):  # only a class that names its own kind owns that checkpoint kind
            _MODEL_CLASSES[cls.kind] = cls

    # ------------------------------------------------------------------ public API
    def fit(self, data: Any, actions: Any = None, next_obs: Any = None, *,
            generator: torch.Generator | None = None) -> FitReport:
        """Fit on transitions: a :class:`ReplayBuffer`/:class:`TransitionBatch`, or arrays
        ``fit(obs [N, o], actions [N, a], next_obs [N, o])``. ``generator`` drives splits,
        shuffling and initialisation (a fixed default seed is used when omitted)."""
        obs, act, nxt = transition_tensors(data, actions, next_obs, self.obs_dim, self.act_dim)
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        report = self._fit(obs, act, nxt, generator)
        self.fitted = True
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
        noise = torch.randn(pred.mean.shape, generator=generator, dtype=pred.mean.dtype)
        return pred.mean + pred.aleatoric_var.sqrt() * noise

    def save(self, path: str | os.PathLike) -> None:
        """Save to ``path.safetensors`` + ``path.json`` atomically (no pickle)."""
        tensors, config = self._state()
        save_checkpoint(path, tensors, {"kind": self.kind, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                                        "fitted": self.fitted, "config": config})

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> "DynamicsModel":
        """Load a model saved with :meth:`save`; on the base class, the stored ``kind`` picks the
        class. Extra ``kwargs`` go to models that need non-tensor parts (e.g. a residual model's
        simulator)."""
        tensors, meta = load_checkpoint(path)
        kind = meta.get("kind")
        target = _MODEL_CLASSES.get(kind)
        if target is None:
            raise CheckpointError(f"checkpoint {path} holds model kind {kind!r}; known kinds: {sorted(_MODEL_CLASSES)}")
        if cls is not DynamicsModel and not issubclass(target, cls):
            raise CheckpointError(f"checkpoint {path} holds a {kind!r} model, not a {cls.__name__}")
        model = target._from_state(tensors, meta["config"], meta["obs_dim"], meta["act_dim"], **kwargs)
        model.fitted = bool(meta.get("fitted", True))
        return model

    # ------------------------------------------------------------------ for subclasses
    def _inputs(self, obs: Any, action: Any) -> tuple[torch.Tensor, torch.Tensor]:
        obs_t, act_t = as_tensor(obs, "obs", self.obs_dim), as_tensor(action, "action", self.act_dim)
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

    @abstractmethod
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON-serialisable constructor config that fully describe the model."""

    @classmethod
    @abstractmethod
    def _from_state(cls, tensors: dict[str, torch.Tensor], config: dict[str, Any], obs_dim: int,
                    act_dim: int, **kwargs: Any) -> "DynamicsModel":
        """Rebuild a model from what :meth:`_state` returned."""
