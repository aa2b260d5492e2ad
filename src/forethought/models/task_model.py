"""An environment's reward and termination as planners and imagined rollouts need them: the known
functions where the environment has them, models learned from the agent's own transitions where
it does not.

    task = TaskModel(known, reward="auto", termination="auto", obs_dim=5, act_dim=1)
    quality = task.fit(buffer, generator)    # refit the learned parts; error on rows new since the last fit
    evaluator = TrajectoryEvaluator(model, task.functions.reward, task.functions.termination)

Sources, per part (``reward`` / ``termination`` settings of the agents):

* ``"known"``: the registered function (:func:`~forethought.envs.register_task_functions`); an
  error when none is registered;
* ``"learned"``: a :class:`~forethought.models.RewardModel` / :class:`~forethought.models.TerminationClassifier`
  fitted on every real transition at each refit;
* ``"auto"``: known where registered, learned otherwise (for the termination: learned when the
  reward is not registered either, since a registration is a reward and termination pair);
* ``"never"`` (termination only): no transition terminates.

Held-out quality. Before each refit the current learned parts predict the transitions added since
the previous fit, which they have not seen: the reward's MSE and R^2 (1 - MSE / variance of those
rewards) and the termination's precision and recall. These are on-policy figures, measured on the
states the agent now visits, the ones planning depends on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from forethought.data.buffer import ReplayBuffer, TransitionBatch
from forethought.envs.analytic import env_task_functions
from forethought.envs.task_functions import TaskFunctions, never_terminates
from forethought.models.config import TrainConfig
from forethought.models.reward import RewardModel, TerminationClassifier

REWARD_SOURCES = ("auto", "known", "learned")
TERMINATION_SOURCES = ("auto", "known", "learned", "never")
QUALITY_KEYS = ("reward_mse", "reward_r2", "termination_precision", "termination_recall")


@dataclass
class TaskModelConfig:
    """The learned reward and termination models: an MLP of ``hidden_layers`` x ``hidden_size``
    SiLU layers each, trained as ``train`` says, and the probability above which a transition
    counts as terminating.

    Training runs a fixed 30 epochs of at least 10 minibatches on every row, without early
    stopping: the rewards and terminations that matter are rare (a few rows near the goal, a
    few terminal ones), and a held-out tenth of a few hundred rows rarely holds any of them, so
    its loss would stop training after an epoch or two. The held-out figures
    (:meth:`TaskModel.quality`) are measured on the next rows collected instead."""

    hidden_size: int = 200
    hidden_layers: int = 3
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=30, min_epoch_batches=10,
                                                                   early_stopping=False))
    termination_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name, low in (("hidden_size", 1), ("hidden_layers", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"task_model.{name} must be an integer >= {low}, got {value!r}")
        if not 0.0 < self.termination_threshold < 1.0:
            raise ValueError(f"task_model.termination_threshold must be in (0, 1), got {self.termination_threshold!r}")


def check_sources(reward: str, termination: str) -> None:
    """ValueError naming the setting unless ``reward`` is one of :data:`REWARD_SOURCES` and
    ``termination`` one of :data:`TERMINATION_SOURCES`."""
    if reward not in REWARD_SOURCES:
        raise ValueError(f"reward must be one of {list(REWARD_SOURCES)}, got {reward!r}")
    if termination not in TERMINATION_SOURCES:
        raise ValueError(f"termination must be one of {list(TERMINATION_SOURCES)}, got {termination!r}")


def env_name(env: gym.Env) -> str:
    """``env``'s Gymnasium id, or its class name, for messages."""
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def registered_task_functions(env: gym.Env) -> TaskFunctions | None:
    """``env``'s registered reward and termination (see :func:`~forethought.envs.env_task_functions`),
    or None when none are registered."""
    try:
        return env_task_functions(env)
    except ValueError:
        return None


class TaskModel:
    """Reward and termination for one environment, known or learned part by part.

    Args:
        known: the environment's registered functions, or None when it has none.
        reward, termination: the sources (see the module docstring).
        obs_dim, act_dim: flat observation and action lengths.
        config: the learned models' size and training.
        env_name: the environment's name, for the error when a known part is missing.
        device: where the learned parts live (the planner's tensors must be there too).

    ``functions`` is a :class:`~forethought.envs.TaskFunctions` whose members call the current
    parts (batched ``(obs [B, o], action [B, a], next_obs [B, o])`` to ``[B]``), so planners built
    once see every refit.
    """

    def __init__(self, known: TaskFunctions | None, reward: str, termination: str, obs_dim: int, act_dim: int,
                 config: TaskModelConfig | None = None, env_name: str = "this environment",
                 device: torch.device | str = "cpu") -> None:
        check_sources(reward, termination)
        self.config, self.device = config or TaskModelConfig(), torch.device(device)
        c = self.config
        if known is None and "known" in (reward, termination):
            part = "reward" if reward == "known" else "termination"
            raise ValueError(f"agent.{part}=known, but no reward and termination functions are registered for "
                             f"{env_name}; use agent.{part}=auto or learned, or register them with "
                             f"forethought.envs.register_task_functions")
        self.learns_reward = reward == "learned" or (reward == "auto" and known is None)
        self.learns_termination = termination == "learned" or (termination == "auto" and known is None)
        self.reward_model = RewardModel(obs_dim, act_dim, c.hidden_size, c.hidden_layers, c.train).to(self.device) \
            if self.learns_reward else None
        self.termination_model = TerminationClassifier(obs_dim, act_dim, c.hidden_size, c.hidden_layers,
                                                       c.termination_threshold, c.train).to(self.device) \
            if self.learns_termination else None
        self._known_reward = None if self.learns_reward else known.reward
        if self.learns_termination:
            self._known_termination = None
        else:
            self._known_termination = never_terminates if termination == "never" else known.termination
        self.functions = TaskFunctions(self._reward, self._termination)
        self.fitted_rows = 0  # buffer rows at the latest fit

    @property
    def fitted(self) -> bool:
        """Whether every learned part has been fitted (always True when nothing is learned)."""
        return all(model.fitted for model in (self.reward_model, self.termination_model) if model is not None)

    @property
    def learns(self) -> bool:
        """Whether any part is learned (and :meth:`fit` does work)."""
        return self.learns_reward or self.learns_termination

    def _reward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        if self.reward_model is not None:
            return self.reward_model(obs, action, next_obs)
        return self._known_reward(obs, action, next_obs)

    def _termination(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        if self.termination_model is not None:
            return self.termination_model(obs, action, next_obs)
        return self._known_termination(obs, action, next_obs)

    # ------------------------------------------------------------------ fitting
    def fit(self, buffer: ReplayBuffer, generator: torch.Generator) -> dict[str, Any]:
        """Measure the learned parts on the rows added since the previous fit, then refit them on
        every row of ``buffer``. Returns :data:`QUALITY_KEYS` (None where not learned, not yet
        fitted, or undefined on the new rows) plus ``task_diverged`` (a learned part's loss went
        non-finite). Draws only from ``generator``; does nothing when no part is learned."""
        quality: dict[str, Any] = dict.fromkeys(QUALITY_KEYS)
        quality["task_diverged"] = None
        if not self.learns or len(buffer) == 0:
            return quality
        new_rows = len(buffer) - self.fitted_rows
        if self.fitted_rows > 0 and new_rows > 0:
            quality.update(self.quality(buffer.all()[-new_rows:]))
        diverged = False
        for model in (self.reward_model, self.termination_model):
            if model is not None:
                diverged |= model.fit(buffer, generator=generator).nonfinite
        self.fitted_rows = len(buffer)
        quality["task_diverged"] = diverged
        return quality

    def quality(self, batch: TransitionBatch) -> dict[str, float | None]:
        """:data:`QUALITY_KEYS` of the fitted learned parts on ``batch`` (None where a part is not
        learned or not fitted, R^2 where the rewards are constant, precision where nothing is
        predicted to terminate, recall where nothing terminates)."""
        out: dict[str, float | None] = dict.fromkeys(QUALITY_KEYS)
        batch = batch.to(self.device)
        with torch.no_grad():
            if self.reward_model is not None and self.reward_model.fitted:
                error = self.reward_model(batch.obs, batch.action, batch.next_obs) - batch.reward
                mse, variance = float(error.pow(2).mean()), float(batch.reward.var(unbiased=False))
                out["reward_mse"] = mse
                out["reward_r2"] = 1.0 - mse / variance if variance > 0 and math.isfinite(mse) else None
            if self.termination_model is not None and self.termination_model.fitted:
                predicted = self.termination_model(batch.obs, batch.action, batch.next_obs)
                actual = batch.terminated.bool()
                hits = int((predicted & actual).sum())
                out["termination_precision"] = hits / int(predicted.sum()) if predicted.any() else None
                out["termination_recall"] = hits / int(actual.sum()) if actual.any() else None
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted learned parts to folder ``path`` (``reward.*``, ``termination.*``)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, model in (("reward", self.reward_model), ("termination", self.termination_model)):
            if model is not None and model.fitted:
                model.save(path / name)

    def load(self, path: str | os.PathLike, fitted_rows: int) -> None:
        """Restore the parts :meth:`save` wrote to ``path`` (a part not saved stays unfitted) and
        the row count of the fit they came from."""
        path = Path(path)
        if self.reward_model is not None and (path / "reward.json").is_file():
            self.reward_model = RewardModel.load(path / "reward", device=self.device)
        if self.termination_model is not None and (path / "termination.json").is_file():
            self.termination_model = TerminationClassifier.load(path / "termination", device=self.device)
        self.fitted_rows = int(fitted_rows)
