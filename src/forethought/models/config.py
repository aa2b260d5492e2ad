"""Typed configs of the dynamics models and their training, and the one function that builds a
model from them (used by every command and agent).

The defaults are what the agents use: a 5-member probabilistic ensemble of 3 x 200 SiLU layers,
trained by Adam for at most 50 epochs with early stopping after 5 epochs without improvement.
Agents override only what differs (PETS: epochs of at least 10 minibatches; MBPO and Dyna: 20).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from forethought.envs.coordinates import ROLES_HELP, parse_layout
from forethought.models.base import DynamicsModel
from forethought.models.schedules import LR_SCHEDULES, schedule_errors

MODEL_KINDS = ("linear", "d", "p", "de", "pe", "dropout", "laplace", "lagrangian")


@dataclass
class ModelConfig:
    """Which dynamics model to fit and its size (network options are ignored by ``linear``;
    ``ridge`` is the linear model's L2 penalty on ``[A - I, B]``, which lets it fit from fewer
    transitions than it has parameters, e.g. a first trial that ended after a few steps).

    ``dropout`` (MC dropout) and ``laplace`` (last-layer Laplace) are one network each whose
    ``mc_samples`` sampled versions (dropout masks, or posterior draws of the last layer) are
    its members; ``ensemble_size`` applies to ``de``, ``pe`` and ``lagrangian`` only. ``dropout_rate`` is the
    share of hidden units ``dropout`` drops, ``prior_precision`` the precision of ``laplace``'s
    Gaussian prior on its last layer.

    ``lagrangian`` is a Lagrangian network (learned mass matrix and potential, accelerations by
    the Euler–Lagrange equations; :mod:`forethought.models.lagrangian`), an ensemble of
    ``ensemble_size``; ``coordinates`` is the observation's layout (the role of each entry, e.g.
    ``"q0,dq0,cos1,sin1,dq1"``; None: the one registered for the environment, see
    :mod:`forethought.envs.coordinates`), ``substeps`` its integration steps per observation step
    and ``dt`` the seconds per observation step (None: read from the data at every fit)."""

    kind: str = "pe"
    ensemble_size: int = 5
    hidden_size: int = 200
    hidden_layers: int = 3
    ridge: float = 0.0
    coordinates: str | None = None
    substeps: int = 4
    dt: float | None = None
    dropout_rate: float = 0.05
    mc_samples: int = 10
    prior_precision: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model.kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        for name, low in (("ensemble_size", 1), ("hidden_size", 1), ("hidden_layers", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"model.{name} must be an integer >= {low}, got {value!r}")
        if not (math.isfinite(self.ridge) and self.ridge >= 0):
            raise ValueError(f"model.ridge must be a finite number >= 0, got {self.ridge!r}")
        if self.coordinates is not None:
            parse_layout(self.coordinates)  # a ValueError naming model.coordinates and the roles allowed
        if not _is_int(self.substeps, 1):
            raise ValueError(f"model.substeps must be an integer >= 1, got {self.substeps!r}")
        if self.dt is not None and not (_is_number(self.dt) and self.dt > 0):
            raise ValueError(f"model.dt must be None (read from the data) or seconds > 0, got {self.dt!r}")
        if not (_is_number(self.dropout_rate) and 0 <= self.dropout_rate < 1):
            raise ValueError(f"model.dropout_rate must be a number in [0, 1), got {self.dropout_rate!r}")
        if not _is_int(self.mc_samples, 2):
            raise ValueError(f"model.mc_samples must be an integer >= 2, got {self.mc_samples!r}")
        if not (_is_number(self.prior_precision) and self.prior_precision > 0):
            raise ValueError(f"model.prior_precision must be a finite number > 0, got {self.prior_precision!r}")


@dataclass
class TrainConfig:
    """Training of the neural models (dynamics, reward, termination): Adam on minibatches with a
    held-out validation split and early stopping (see :func:`~forethought.models.training.train_ensemble`).

    Attributes:
        max_epochs: upper bound on epochs.
        patience: stop after this many epochs without any member's validation loss improving.
        batch_size: rows per member per minibatch.
        min_epoch_batches: when one pass over the training rows makes fewer minibatches than
            this, an epoch is this many full minibatches (from repeated shuffled passes), so that
            a small dataset (the first trials of PETS: a few dozen rows) still gets enough
            gradient steps between validations.
        lr: Adam step size.
        weight_decay: L2 penalty on the weight matrices (not biases or log-std bounds), added to
            the gradients by Adam.
        val_fraction: share of rows held out for validation (at least one row is).
        grad_clip: maximum gradient norm per member; ``None`` disables clipping.
        bound_penalty: weight of the log-std bound regulariser (probabilistic networks).
        bootstrap: give each member of an ensemble (K > 1) its own bootstrap resample.
        frozen_layers: the first this many weight layers (weights and biases) keep their values,
            for fine-tuning a trained network on a changed system.
        progress: show a live progress bar (rich) while training.
        early_stopping: hold out ``val_fraction`` of the rows, keep each member's weights of its
            best validation epoch and stop after ``patience`` epochs without improvement. False:
            train on every row for ``max_epochs`` and keep the last weights (the reported
            validation losses are then in-sample), for data too small or too imbalanced for a
            held-out split to say anything (a few rare rewards or terminations).
        lr_schedule: ``constant`` (``lr`` at every step); ``warmup_cosine`` (every fit: a linear
            warm-up over ``warmup_steps`` minibatches, then a half cosine down to
            ``min_lr_fraction * lr`` at the fit's last possible step, ``max_epochs`` epochs);
            ``plateau`` (across fits of one model: the rate is multiplied by ``plateau_factor``
            after ``plateau_patience`` fits in a row whose validation loss did not beat the best
            earlier fit, never below ``min_lr_fraction * lr``). See :mod:`forethought.models.schedules`.
        warmup_steps: minibatches of linear warm-up (``warmup_cosine``).
        min_lr_fraction: the floor of both schedules, a share of ``lr``.
        plateau_factor: multiplier of the rate at each reduction (``plateau``).
        plateau_patience: fits without improvement before a reduction (``plateau``).
    """

    max_epochs: int = 50
    patience: int = 5
    batch_size: int = 256
    min_epoch_batches: int = 1
    lr: float = 1e-3
    weight_decay: float = 5e-5
    val_fraction: float = 0.1
    grad_clip: float | None = 10.0
    bound_penalty: float = 0.01
    bootstrap: bool = True
    frozen_layers: int = 0
    progress: bool = False
    early_stopping: bool = True
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_fraction: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 1

    def __post_init__(self) -> None:
        errors = schedule_errors("train", self.lr_schedule, self.warmup_steps, None, self.min_lr_fraction,
                                 LR_SCHEDULES, ("lr_schedule", "warmup_steps", "", "min_lr_fraction"))
        if errors:
            raise ValueError(errors[0])
        rules = {
            "max_epochs": ("an integer >= 1", _is_int(self.max_epochs, 1)),
            "patience": ("an integer >= 1", _is_int(self.patience, 1)),
            "batch_size": ("an integer >= 1", _is_int(self.batch_size, 1)),
            "min_epoch_batches": ("an integer >= 1", _is_int(self.min_epoch_batches, 1)),
            "frozen_layers": ("an integer >= 0", _is_int(self.frozen_layers, 0)),
            "lr": ("a finite number > 0", _is_number(self.lr) and self.lr > 0),
            "weight_decay": ("a finite number >= 0", _is_number(self.weight_decay) and self.weight_decay >= 0),
            "val_fraction": ("a number in (0, 1)", _is_number(self.val_fraction) and 0 < self.val_fraction < 1),
            "grad_clip": ("None or a finite number > 0",
                          self.grad_clip is None or (_is_number(self.grad_clip) and self.grad_clip > 0)),
            "bound_penalty": ("a finite number >= 0", _is_number(self.bound_penalty) and self.bound_penalty >= 0),
            "bootstrap": ("true or false", isinstance(self.bootstrap, bool)),
            "progress": ("true or false", isinstance(self.progress, bool)),
            "early_stopping": ("true or false", isinstance(self.early_stopping, bool)),
            "plateau_factor": ("a number in (0, 1)", _is_number(self.plateau_factor) and 0 < self.plateau_factor < 1),
            "plateau_patience": ("an integer >= 1", _is_int(self.plateau_patience, 1)),
        }
        for name, (allowed, ok) in rules.items():
            if not ok:
                raise ValueError(f"train.{name} must be {allowed}, got {getattr(self, name)!r}")

    @classmethod
    def names(cls) -> list[str]:
        """The field names, the keyword arguments models accept for their training."""
        return [f.name for f in fields(cls)]


def _is_int(value: object, low: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= low


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def train_config(train: TrainConfig | None, overrides: dict, owner: str) -> TrainConfig:
    """``train`` (default :class:`TrainConfig`) with ``overrides`` (field names) applied, for the
    model class ``owner``; an unknown override is a TypeError listing the fields."""
    unknown = sorted(set(overrides) - set(TrainConfig.names()))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for {owner}; training options (TrainConfig fields) are "
                        f"{TrainConfig.names()}")
    base = train if train is not None else TrainConfig()
    return TrainConfig(**{**{name: getattr(base, name) for name in TrainConfig.names()}, **overrides})


def build_model(config: ModelConfig, train: TrainConfig, obs_dim: int, act_dim: int,
                progress: bool = False, coordinates: str | None = None) -> DynamicsModel:
    """The model a :class:`ModelConfig` names, trained as ``train`` says (``progress`` shows a
    progress bar while it fits). ``coordinates`` is the layout the environment declares (see
    :func:`~forethought.envs.coordinates.env_coordinates`), which ``lagrangian`` uses unless
    ``config.coordinates`` is set; a ValueError when it has neither or it does not fit ``obs_dim``."""
    from forethought.models.neural import make_model  # neural.py builds on the configs defined here

    if config.kind == "linear":
        return make_model("linear", obs_dim, act_dim, ridge=config.ridge)
    if config.kind == "lagrangian":
        from forethought.models.lagrangian import LagrangianDynamics

        layout = config.coordinates if config.coordinates is not None else coordinates
        if layout is None:
            raise ValueError(f"model.kind=lagrangian reads positions and velocities from the observation, but no "
                             f"layout is known for this environment's {obs_dim} observation entries: set "
                             f"model.coordinates to one role per entry ({ROLES_HELP})")
        return LagrangianDynamics(obs_dim, act_dim, layout, ensemble_size=config.ensemble_size,
                                  hidden_size=config.hidden_size, hidden_layers=config.hidden_layers,
                                  substeps=config.substeps, dt=config.dt, train=train,
                                  progress=progress or train.progress)
    members = {"de": {"ensemble_size": config.ensemble_size}, "pe": {"ensemble_size": config.ensemble_size},
               "dropout": {"mc_samples": config.mc_samples, "dropout_rate": config.dropout_rate},
               "laplace": {"mc_samples": config.mc_samples, "prior_precision": config.prior_precision}}
    return make_model(config.kind, obs_dim, act_dim, **members.get(config.kind, {}), hidden_size=config.hidden_size,
                      hidden_layers=config.hidden_layers, train=train, progress=progress or train.progress)
