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

The reward model is a one-member :class:`~forethought.models.ensemble_mlp.EnsembleDynamicsNetwork`
trained by :func:`~forethought.models.training.train_ensemble` (MSE, early stopping on a held-out
split). The classifier uses the same network with one logit output, trained by binary
cross-entropy in which each class carries half the total weight (terminations are rare, so
unweighted BCE would learn "never"); early stopping watches the same class-balanced loss on the
held-out split.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from forethought.data.buffer import ReplayBuffer, TransitionBatch
from forethought.data.normalizer import Normalizer
from forethought.models.base import FitReport, as_tensor, transition_tensors
from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork
from forethought.models.training import TrainingOptions, clip_member_gradients, train_ensemble
from forethought.progress import ProgressBar
from forethought.serialization import CheckpointError, load_checkpoint, save_checkpoint


class _TransitionMLP:
    """An MLP of normalised ``[obs, action, next_obs]`` with one output: shared construction, input
    checks and persistence. Subclasses set ``kind`` and ``target_field`` (the buffer field they
    learn) and implement ``_train``."""

    kind: ClassVar[str] = ""
    target_field: ClassVar[str] = ""

    def __init__(self, obs_dim: int, act_dim: int, hidden_size: int = 128, hidden_layers: int = 2,
                 **training: Any) -> None:
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f"obs_dim and act_dim must be >= 1, got obs_dim={obs_dim}, act_dim={act_dim}")
        unknown = sorted(set(training) - set(TrainingOptions.names()))
        if unknown:
            raise TypeError(f"unknown option(s) {unknown} for {type(self).__name__}; training options are "
                            f"{TrainingOptions.names()}")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.hidden_size, self.hidden_layers = int(hidden_size), int(hidden_layers)
        self.training_options = TrainingOptions(**training)
        self.network = EnsembleDynamicsNetwork(2 * self.obs_dim + self.act_dim, 1, False, 1, self.hidden_size,
                                               self.hidden_layers)
        self.network.requires_grad_(False)
        self.input_norm = Normalizer(2 * self.obs_dim + self.act_dim)
        self.fitted = False

    # ------------------------------------------------------------------ fit
    def fit(self, data: Any, actions: Any = None, next_obs: Any = None, targets: Any = None, *,
            generator: torch.Generator | None = None) -> FitReport:
        """Fit on a :class:`ReplayBuffer` / :class:`TransitionBatch` (learning its ``reward`` or
        ``terminated`` field), or on arrays ``fit(obs [N, o], actions [N, a], next_obs [N, o],
        targets [N])``. ``generator`` drives the split, shuffling and initialisation (fixed seed
        when omitted)."""
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
        obs, act, nxt = transition_tensors(data, actions, next_obs, self.obs_dim, self.act_dim)
        y = self._targets(targets, obs.shape[0])
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        features = torch.cat([obs, act, nxt], dim=-1)
        self.input_norm.fit(features)
        self.network.reset_parameters(generator)
        report = self._train(self.input_norm.normalize(features), y, generator)
        self.fitted = True
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
        raise NotImplementedError

    # ------------------------------------------------------------------ predict
    def _output(self, obs: Any, action: Any, next_obs: Any) -> torch.Tensor:
        """The network's output ``[B]`` for obs ``[B, o]``, action ``[B, a]``, next_obs ``[B, o]``."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} has not been fitted: call fit(...) first")
        obs_t, act_t = as_tensor(obs, "obs", self.obs_dim), as_tensor(action, "action", self.act_dim)
        nxt_t = as_tensor(next_obs, "next_obs", self.obs_dim)
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
                **asdict(self.training_options)}

    def _normalizers(self) -> dict[str, Normalizer]:
        return {"input_norm": self.input_norm}

    def save(self, path: str | os.PathLike) -> None:
        """Save to ``path.safetensors`` + ``path.json`` atomically (no pickle)."""
        tensors = {f"network.{name}": t for name, t in self.network.state_dict().items()}
        for prefix, norm in self._normalizers().items():
            tensors.update(norm.state_dict(prefix))
        save_checkpoint(path, tensors, {"kind": self.kind, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                                        "fitted": self.fitted, "config": self._config()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "_TransitionMLP":
        """Load a model of this class saved with :meth:`save`."""
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != cls.kind:
            raise CheckpointError(f"checkpoint {path} holds {meta.get('kind')!r}, not a {cls.__name__} ({cls.kind!r})")
        model = cls(meta["obs_dim"], meta["act_dim"], **meta["config"])
        network = {name[len("network."):]: t for name, t in tensors.items() if name.startswith("network.")}
        try:
            model.network.load_state_dict(network)
            for prefix, norm in model._normalizers().items():
                norm.load_state_dict(tensors, prefix)
        except (KeyError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {path} does not match a {cls.__name__}: {err}") from err
        model.fitted = bool(meta.get("fitted", True))
        return model


class RewardModel(_TransitionMLP):
    """Regression of the reward on ``(obs, action, next_obs)``; ``model(obs, action, next_obs) -> [B]``.

    Args:
        obs_dim, act_dim: observation and action lengths.
        hidden_size, hidden_layers: MLP shape (SiLU); kept small because a planner calls it on
            every particle at every step.
        **training: :class:`~forethought.models.training.TrainingOptions` fields (learning_rate,
            weight_decay, batch_size, max_epochs, patience, val_fraction, grad_clip, progress).

    ``fit`` returns the :class:`FitReport` of the training loop (losses are MSE on the
    standardised reward).
    """

    kind = "reward_model"
    target_field = "reward"

    def __init__(self, obs_dim: int, act_dim: int, hidden_size: int = 128, hidden_layers: int = 2,
                 **training: Any) -> None:
        super().__init__(obs_dim, act_dim, hidden_size, hidden_layers, **training)
        self.reward_norm = Normalizer(1)

    def _train(self, features: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> FitReport:
        self.reward_norm.fit(targets[:, None])
        return train_ensemble(self.network, features, self.reward_norm.normalize(targets[:, None]),
                              self.training_options, generator)

    def __call__(self, obs: Any, action: Any, next_obs: Any) -> torch.Tensor:
        """Predicted rewards ``[B]`` (raw units)."""
        return self.reward_norm.denormalize(self._output(obs, action, next_obs)[:, None])[:, 0]

    def _normalizers(self) -> dict[str, Normalizer]:
        return {"input_norm": self.input_norm, "reward_norm": self.reward_norm}


class TerminationClassifier(_TransitionMLP):
    """Logistic MLP predicting whether a transition terminates; ``clf(obs, action, next_obs) -> [B]`` bool.

    Args:
        obs_dim, act_dim, hidden_size, hidden_layers, **training: as :class:`RewardModel`.
        threshold: probability above which a transition counts as terminating.

    A transition whose ``next_obs`` is not finite always counts as terminating (a model that
    diverged has left the data). ``fit`` reports the class-balanced BCE per epoch.
    """

    kind = "termination_classifier"
    target_field = "terminated"

    def __init__(self, obs_dim: int, act_dim: int, hidden_size: int = 128, hidden_layers: int = 2,
                 threshold: float = 0.5, **training: Any) -> None:
        super().__init__(obs_dim, act_dim, hidden_size, hidden_layers, **training)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        self.threshold = float(threshold)

    def probability(self, obs: Any, action: Any, next_obs: Any) -> torch.Tensor:
        """Predicted probability of termination ``[B]``."""
        return torch.sigmoid(self._output(obs, action, next_obs))

    def __call__(self, obs: Any, action: Any, next_obs: Any) -> torch.Tensor:
        """``[B]`` bool: probability above ``threshold``, or a non-finite ``next_obs``."""
        diverged = ~torch.isfinite(torch.as_tensor(next_obs)).all(dim=-1)
        return (self.probability(obs, action, next_obs) > self.threshold) | diverged

    def _targets(self, targets: Any, rows: int) -> torch.Tensor:
        y = super()._targets(targets, rows)
        if not bool(((y == 0) | (y == 1)).all()):
            raise ValueError("'terminated' targets must be booleans or 0/1")
        return y

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "threshold": self.threshold}

    def _train(self, features: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> FitReport:
        return _train_classifier(self.network, features, targets, self.training_options, generator)


def _balanced_bce(network: EnsembleDynamicsNetwork, x: torch.Tensor, y: torch.Tensor,
                  class_weight: torch.Tensor) -> torch.Tensor:
    """Mean BCE of the logits for x ``[B, in]`` against 0/1 labels y ``[B]``, row ``i`` weighted by
    ``class_weight[y_i]``."""
    logits = network(x)[0][0, :, 0]
    weight = class_weight[y.long()]
    return (weight * F.binary_cross_entropy_with_logits(logits, y, reduction="none")).mean()


def _train_classifier(network: EnsembleDynamicsNetwork, x: torch.Tensor, y: torch.Tensor,
                      options: TrainingOptions, generator: torch.Generator) -> FitReport:
    """Adam on class-balanced BCE with a held-out split and early stopping; the best epoch's weights
    are kept. x ``[N, in]`` (normalised), y ``[N]`` 0/1."""
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 transitions to fit (one for training, one for validation), got {n}")
    order = torch.randperm(n, generator=generator)
    n_val = min(n - 1, max(1, int(round(options.val_fraction * n))))
    x_val, y_val, x_train, y_train = x[order[:n_val]], y[order[:n_val]], x[order[n_val:]], y[order[n_val:]]
    if bool((y == y[0]).all()):
        return _constant_classifier(network, bool(y[0]))
    positives = float(y_train.mean())
    # each class carries half the total weight (a class absent from the training part gets none)
    class_weight = torch.tensor([0.5 / (1.0 - positives) if positives < 1 else 0.0,
                                 0.5 / positives if positives > 0 else 0.0])
    weights = list(network.body.weights)
    others = [p for p in network.parameters() if all(p is not w for w in weights)]
    optimizer = torch.optim.Adam([{"params": weights, "weight_decay": options.weight_decay},
                                  {"params": others, "weight_decay": 0.0}], lr=options.learning_rate)
    report, best_state, since_improvement = FitReport(), copy.deepcopy(network.state_dict()), 0
    network.requires_grad_(True)
    try:
        with ProgressBar(options.progress, options.max_epochs, "fitting termination") as bar:
            for epoch in range(options.max_epochs):
                train_loss = _classifier_epoch(network, optimizer, x_train, y_train, class_weight, options, generator)
                with torch.no_grad():
                    val_loss = float(_balanced_bce(network, x_val, y_val, class_weight))
                if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                    report.nonfinite = True
                    report.message = (f"non-finite loss at epoch {epoch}; training stopped and the best weights so "
                                      "far were restored")
                    break
                report.train_loss.append(train_loss)
                report.val_loss.append(val_loss)
                report.epochs = epoch + 1
                bar.advance()
                if val_loss < min(report.val_loss[:-1], default=float("inf")):
                    best_state, report.best_epoch, since_improvement = copy.deepcopy(network.state_dict()), epoch, 0
                else:
                    since_improvement += 1
                if since_improvement >= options.patience:
                    report.stopped_early = True
                    report.message = (f"stopped early after {report.epochs} epochs (no improvement for "
                                      f"{options.patience})")
                    break
    finally:
        network.load_state_dict(best_state)
        network.requires_grad_(False)
    return report


def _constant_classifier(network: EnsembleDynamicsNetwork, terminates: bool) -> FitReport:
    """Data of one class has nothing to separate: predict that class everywhere (logit +-20)."""
    with torch.no_grad():
        network.body.weights[-1].zero_()
        network.body.biases[-1].fill_(20.0 if terminates else -20.0)
    kind = "terminating" if terminates else "non-terminating"
    return FitReport(message=f"the training data holds only {kind} transitions; the classifier always "
                             f"predicts {'termination' if terminates else 'no termination'}")


def _classifier_epoch(network: EnsembleDynamicsNetwork, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                      y: torch.Tensor, class_weight: torch.Tensor, options: TrainingOptions,
                      generator: torch.Generator) -> float:
    """One shuffled pass of minibatch steps; the mean training loss (NaN, without stepping, at the
    first non-finite minibatch loss)."""
    order = torch.randperm(x.shape[0], generator=generator)
    losses = []
    for start in range(0, x.shape[0], options.batch_size):
        rows = order[start:start + options.batch_size]
        loss = _balanced_bce(network, x[rows], y[rows], class_weight)
        if not torch.isfinite(loss):
            return math.nan
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if options.grad_clip is not None:
            clip_member_gradients(network, options.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
    return sum(losses) / len(losses)
