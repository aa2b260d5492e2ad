"""Typed configs of the dynamics models and their training, and the one function that builds a
model from them (used by every command and agent)."""

from __future__ import annotations

from dataclasses import dataclass

from forethought.models.base import DynamicsModel
from forethought.models.neural import make_model

MODEL_KINDS = ("linear", "d", "p", "de", "pe")


@dataclass
class ModelConfig:
    """Which dynamics model to fit and its size (network options are ignored by ``linear``;
    ``ridge`` is the linear model's L2 penalty on ``[A - I, B]``, which lets it fit from fewer
    transitions than it has parameters, e.g. a first trial that ended after a few steps)."""

    kind: str = "pe"
    ensemble_size: int = 5
    hidden_size: int = 200
    hidden_layers: int = 4
    ridge: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model.kind must be one of {MODEL_KINDS}, got {self.kind!r}")


@dataclass
class TrainConfig:
    """Optimisation of the neural models (Adam on minibatches with early stopping)."""

    max_epochs: int = 200
    batch_size: int = 256
    min_epoch_batches: int = 1
    lr: float = 1e-3
    weight_decay: float = 5e-5
    val_fraction: float = 0.1
    patience: int = 10


def build_model(config: ModelConfig, train: TrainConfig, obs_dim: int, act_dim: int,
                progress: bool = False) -> DynamicsModel:
    """The model a :class:`ModelConfig` names, with training options from ``train``."""
    if config.kind == "linear":
        return make_model("linear", obs_dim, act_dim, ridge=config.ridge)
    members = {"ensemble_size": config.ensemble_size} if config.kind in ("de", "pe") else {}
    return make_model(config.kind, obs_dim, act_dim, **members,
                      hidden_size=config.hidden_size, hidden_layers=config.hidden_layers,
                      max_epochs=train.max_epochs, batch_size=train.batch_size,
                      min_epoch_batches=train.min_epoch_batches, learning_rate=train.lr,
                      weight_decay=train.weight_decay, val_fraction=train.val_fraction,
                      patience=train.patience, progress=progress)
