"""Learned reward and termination: MLPs of ``(obs, action, next_obs)`` for tasks whose reward or
termination is not known in closed form.

    reward_fn = RewardModel(obs_dim=5, act_dim=1)
    reward_fn.fit(buffer)                          # regresses buffer.reward
    done_fn = TerminationClassifier(obs_dim=4, act_dim=1)
    done_fn.fit(buffer)                            # classifies buffer.terminated
    TrajectoryEvaluator(model, reward_fn, done_fn) # both are batched task functions

Both are callable like :class:`~forethought.envs.TaskFunctions` members: obs ``[B, o]``, action
``[B, a]``, next_obs ``[B, o]`` (raw units) to ``[B]`` float rewards / ``[B]`` bool terminations,
differentiable w.r.t. the inputs (the reward). Inputs are standardised inside (the features are
the concatenation ``[obs, action, next_obs]``), the reward target too; the normalisers are refitted
on every ``fit``, which re-initialises the weights from its generator.

Both are one-member :class:`~forethought.models.ensemble_mlp.EnsembleDynamicsNetwork` networks
trained by :func:`~forethought.models.training.train_ensemble`, the loop the dynamics models train
with (early stopping on a held-out split, divergence reported in the :class:`FitReport`), and saved
and loaded by the dynamics models' checkpoint code
(:class:`~forethought.models.checkpointed.CheckpointedModel`). The reward model regresses by MSE; the
classifier has one logit output trained by binary cross-entropy in which each class carries half
the total weight (terminations are rare, so unweighted BCE would learn "never"), and early
stopping watches the same class-balanced loss on the held-out split.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from forethought.data.buffer import ReplayBuffer, TransitionBatch
from forethought.data.normalizer import Normalizer
from forethought.models.base import FitReport, as_tensor, transition_tensors
from forethought.models.checkpointed import CheckpointedModel, load_network_tensors, network_tensors
from forethought.models.config import TrainConfig, train_config
from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork
from forethought.models.training import TrainingLoss, train_ensemble


class _TransitionMLP(CheckpointedModel):
    """An MLP of normalised ``[obs, action, next_obs]`` with one output: shared construction, input
    checks and persistence. Subclasses set ``kind`` and ``target_field`` (the buffer field they
    learn) and implement ``_train``."""

    target_field: ClassVar[str] = ""

    def __init__(self, obs_dim: int, act_dim: int, hidden_size: int = 128, hidden_layers: int = 2,
                 train: TrainConfig | None = None, **training: Any) -> None:
        super().__init__(obs_dim, act_dim)
        self.train_config = train_config(train, training, type(self).__name__)
        self.hidden_size, self.hidden_layers = int(hidden_size), int(hidden_layers)
        self.network = EnsembleDynamicsNetwork(2 * self.obs_dim + self.act_dim, 1, False, 1, self.hidden_size,
                                               self.hidden_layers)
        self.network.requires_grad_(False)
        self.input_norm = Normalizer(2 * self.obs_dim + self.act_dim)

    # ------------------------------------------------------------------ fit
    def fit(self, data: Any, actions: Any = None, next_obs: Any = None, targets: Any = None, *,
            generator: torch.Generator | None = None) -> FitReport:
        """Fit on a :class:`ReplayBuffer` / :class:`TransitionBatch` (learning its ``reward`` or
        ``terminated`` field), or on arrays ``fit(obs [N, o], actions [N, a], next_obs [N, o],
        targets [N])``. ``generator`` drives the split, shuffling and initialisation (fixed seed
        when omitted). The weights start afresh, so a fit that diverges in its first epoch
        leaves the model unfitted."""
        if isinstance(data, ReplayBuffer):
            data = data.all()
        if isinstance(data, TransitionBatch):
            if targets is not None:
                raise TypeError(f"pass either a buffer/batch or the four arrays (obs, actions, next_obs, "
                                f"{self.target_field}), not both")
            targets = getattr(data, self.target_field)
        elif targets is None:
            raise TypeError(f"{type(self).__name__}.fit(obs, actions, next_obs, targets) needs the "
                            f"{self.target_field} targets when no buffer is given")
        obs, act, nxt = (t.to(self.device) for t in transition_tensors(data, actions, next_obs, self.obs_dim,
                                                                        self.act_dim))
        y = self._targets(targets, obs.shape[0]).to(self.device)
        generator = generator if generator is not None else torch.Generator(self.device).manual_seed(0)
        features = torch.cat([obs, act, nxt], dim=-1)
        self.input_norm.fit(features)
        self.network.reset_parameters(generator)
        report = self._train(self.input_norm.normalize(features), y, generator)
        self.fitted = report.produced_model
        return report

    def _targets(self, targets: Any, rows: int) -> torch.Tensor:
        y = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(np.asarray(targets))
        if y.shape != (rows,):
            raise ValueError(f"'{self.target_field}' targets have shape {tuple(y.shape)}, expected ({rows},)")
        y = y.float()
        if not torch.isfinite(y).all():
            row = int((~torch.isfinite(y)).nonzero()[0])
            raise ValueError(f"'{self.target_field}' has a non-finite value at row {row}")
        return y

    def _train(self, features: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> FitReport:
        """Train the network on normalised features ``[N, 2o + a]`` and targets ``[N]``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ predict
    def _output(self, obs: Any, action: Any, next_obs: Any) -> torch.Tensor:
        """The network's output ``[B]`` for obs ``[B, o]``, action ``[B, a]``, next_obs ``[B, o]``."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} has not been fitted: call fit(...) first")
        obs_t, act_t = as_tensor(obs, "obs", self.obs_dim), as_tensor(action, "action", self.act_dim)
        nxt_t = as_tensor(next_obs, "next_obs", self.obs_dim)
        obs_t, act_t, nxt_t = obs_t.to(self.device), act_t.to(self.device), nxt_t.to(self.device)
        shapes_ok = obs_t.ndim == act_t.ndim == nxt_t.ndim == 2 and obs_t.shape[0] == act_t.shape[0] == nxt_t.shape[0]
        if not shapes_ok:
            raise ValueError(f"{type(self).__name__} expects obs (B, {self.obs_dim}), action (B, {self.act_dim}), "
                             f"next_obs (B, {self.obs_dim}); got {tuple(obs_t.shape)}, {tuple(act_t.shape)}, "
                             f"{tuple(nxt_t.shape)}")
        out, _ = self.network(self.input_norm.normalize(torch.cat([obs_t, act_t, nxt_t], dim=-1)))
        return out[0, :, 0]

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "hidden_layers": self.hidden_layers,
                "train": asdict(self.train_config)}

    def _normalizers(self) -> dict[str, Normalizer]:
        return {"input_norm": self.input_norm}

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return network_tensors(self.network, self._normalizers()), self._config()

    @classmethod
    def _from_state(cls, tensors: dict[str, torch.Tensor], config: dict[str, Any], obs_dim: int,
                    act_dim: int, **kwargs: Any) -> "_TransitionMLP":
        config = dict(config)
        model = cls(obs_dim, act_dim, train=TrainConfig(**config.pop("train")), **config)
        load_network_tensors(model.network, model._normalizers(), tensors)
        return model


class RewardModel(_TransitionMLP):
    """Regression of the reward on ``(obs, action, next_obs)``; ``model(obs, action, next_obs) -> [B]``.

    Args:
        obs_dim, act_dim: observation and action lengths.
        hidden_size, hidden_layers: MLP shape (SiLU); kept small because a planner calls it on
            every particle at every step.
        train, **training: how to train, as for the dynamics models
            (:class:`~forethought.models.config.TrainConfig` and its fields as overrides).

    ``fit`` returns the :class:`FitReport` of the training loop (losses are MSE on the
    standardised reward).
    """

    kind = "reward_model"
    target_field = "reward"

    def __init__(self, obs_dim: int, act_dim: int, hidden_size: int = 128, hidden_layers: int = 2,
                 train: TrainConfig | None = None, **training: Any) -> None:
        super().__init__(obs_dim, act_dim, hidden_size, hidden_layers, train, **training)
        self.reward_norm = Normalizer(1)

    def _train(self, features: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> FitReport:
        self.reward_norm.fit(targets[:, None])
        return train_ensemble(self.network, features, self.reward_norm.normalize(targets[:, None]),
                              self.train_config, generator)

    def __call__(self, obs: Any, action: Any, next_obs: Any) -> torch.Tensor:
        """Predicted rewards ``[B]`` (raw units)."""
        return self.reward_norm.denormalize(self._output(obs, action, next_obs)[:, None])[:, 0]

    def _normalizers(self) -> dict[str, Normalizer]:
        return {"input_norm": self.input_norm, "reward_norm": self.reward_norm}


class BalancedCrossEntropy(TrainingLoss):
    """Binary cross-entropy of a one-logit network against 0/1 labels, a row of class ``c``
    weighted by ``class_weight[c]`` (``[2]``), for training and validation alike."""

    def __init__(self, class_weight: torch.Tensor) -> None:
        self.class_weight = class_weight

    def training(self, network: EnsembleDynamicsNetwork, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = network(x)[0]
        bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (self.class_weight[y.long()] * bce).mean(dim=(1, 2))

    def validation(self, network: EnsembleDynamicsNetwork, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.training(network, x, y.expand(network.ensemble_size, -1, -1))


class TerminationClassifier(_TransitionMLP):
    """Logistic MLP predicting whether a transition terminates; ``clf(obs, action, next_obs) -> [B]`` bool.

    Args:
        obs_dim, act_dim, hidden_size, hidden_layers, train, **training: as :class:`RewardModel`.
        threshold: probability above which a transition counts as terminating.

    A transition whose ``next_obs`` is not finite always counts as terminating (a model that
    diverged has left the data). ``fit`` reports the class-balanced BCE per epoch; the class
    weights give each class half the total weight over all the rows fitted on.
    """

    kind = "termination_classifier"
    target_field = "terminated"

    def __init__(self, obs_dim: int, act_dim: int, hidden_size: int = 128, hidden_layers: int = 2,
                 threshold: float = 0.5, train: TrainConfig | None = None, **training: Any) -> None:
        super().__init__(obs_dim, act_dim, hidden_size, hidden_layers, train, **training)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        self.threshold = float(threshold)

    def probability(self, obs: Any, action: Any, next_obs: Any) -> torch.Tensor:
        """Predicted probability of termination ``[B]``."""
        return torch.sigmoid(self._output(obs, action, next_obs))

    def __call__(self, obs: Any, action: Any, next_obs: Any) -> torch.Tensor:
        """``[B]`` bool: probability above ``threshold``, or a non-finite ``next_obs``."""
        diverged = ~torch.isfinite(torch.as_tensor(next_obs, device=self.device)).all(dim=-1)
        return (self.probability(obs, action, next_obs) > self.threshold) | diverged

    def _targets(self, targets: Any, rows: int) -> torch.Tensor:
        y = super()._targets(targets, rows)
        if not bool(((y == 0) | (y == 1)).all()):
            raise ValueError("'terminated' targets must be booleans or 0/1")
        return y

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "threshold": self.threshold}

    def _train(self, features: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> FitReport:
        if bool((targets == targets[0]).all()):
            return self._constant(bool(targets[0]))
        positives = float(targets.mean())
        class_weight = torch.tensor([0.5 / (1.0 - positives), 0.5 / positives], device=targets.device)
        return train_ensemble(self.network, features, targets[:, None], self.train_config, generator,
                              BalancedCrossEntropy(class_weight))

    def _constant(self, terminates: bool) -> FitReport:
        """Data of one class has nothing to separate: predict that class everywhere (logit +-20)."""
        with torch.no_grad():
            self.network.body.weights[-1].zero_()
            self.network.body.biases[-1].fill_(20.0 if terminates else -20.0)
        kind = "terminating" if terminates else "non-terminating"
        return FitReport(message=f"the training data holds only {kind} transitions; the classifier always "
                                 f"predicts {'termination' if terminates else 'no termination'}")
