"""MBPO: model-based policy optimisation (Janner et al., 2019).

An ensemble trained on the real buffer every ``model_every`` steps; every ``rollout_every`` steps,
short branched rollouts of length h from real start states under the current policy, each step
predicted by a random elite member, go into a model buffer that keeps the last
``model_retain`` rounds of rollouts; after every real step, ``policy_updates`` SAC updates on
batches that are ``real_fraction`` real and the rest imagined. h grows linearly from
``min_rollout_length`` to ``max_rollout_length`` between real steps ``rollout_schedule``, or, with
``rollout_length="auto"``, is read off the model's held-out compounding error before every fit
(:mod:`forethought.planning.horizon`).

    agent = MBPO(gym.make("InvertedPendulum-v5"), MBPOConfig())
    agent.learn(steps=5000)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from forethought.agents.base import EpisodeResult
from forethought.agents.imagination import ModelBasedSAC, imagine, mixed_batch
from forethought.agents.sac import SAC, SACConfig
from forethought.data.buffer import ReplayBuffer
from forethought.envs.task_functions import TaskFunctions
from forethought.models.config import ModelConfig, TrainConfig
from forethought.models.task_model import QUALITY_KEYS, TaskModelConfig, check_sources
from forethought.planning.exploration import check_exploration
from forethought.planning.horizon import DEFAULT_THRESHOLD, AutoHorizon, check_threshold


@dataclass
class MBPOConfig:
    """MBPO settings. ``sac.learning_starts`` real steps of random actions come first (the model
    is first fitted then); ``sac.updates_per_step`` is ignored (``policy_updates`` replaces it).
    ``reward`` / ``termination``: ``auto``, ``known``, ``learned`` (``never`` for the termination),
    the imagined rollouts' sources (see :class:`~forethought.models.task_model.TaskModel`).
    ``rollout_length``: ``schedule`` (the linear schedule above) or ``auto``: before every model
    fit, the longest h within ``[min_rollout_length, max_rollout_length]`` whose open-loop error on
    the real steps since the previous fit stays under ``rollout_threshold`` (relative to the state's
    spread, see :mod:`forethought.planning.horizon`), ``min_rollout_length`` until then."""

    sac: SACConfig = field(default_factory=lambda: SACConfig(learning_starts=250))
    model: ModelConfig = field(default_factory=lambda: ModelConfig(ensemble_size=7))
    # an epoch of at least 20 minibatches: with one pass over ~1000 rows (4 steps) the model is
    # too rough for Pendulum-v1 to reach -200 within 1500 real steps
    train: TrainConfig = field(default_factory=lambda: TrainConfig(min_epoch_batches=20))
    model_every: int = 250
    rollout_every: int = 250
    rollout_starts: int = 2000
    min_rollout_length: int = 1
    max_rollout_length: int = 10
    rollout_schedule: tuple[int, int] = (1000, 10000)
    model_retain: int = 5
    policy_updates: int = 20
    real_fraction: float = 0.05
    reward: str = "auto"
    termination: str = "auto"
    task_model: TaskModelConfig = field(default_factory=TaskModelConfig)
    exploration_bonus: float = 0.0
    exploration_anneal_steps: int | None = None
    rollout_length: str = "schedule"
    rollout_threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        check_sources(self.reward, self.termination)
        check_exploration(self.exploration_bonus, self.exploration_anneal_steps)
        if self.rollout_length not in ("schedule", "auto"):
            raise ValueError(f"rollout_length must be 'schedule' or 'auto', got {self.rollout_length!r}")
        check_threshold(self.rollout_threshold, "rollout_threshold")
        for name in ("model_every", "rollout_every", "rollout_starts", "min_rollout_length", "model_retain"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_rollout_length < self.min_rollout_length:
            raise ValueError(f"max_rollout_length ({self.max_rollout_length}) must be >= min_rollout_length "
                             f"({self.min_rollout_length})")
        if len(self.rollout_schedule) != 2 or not 0 <= self.rollout_schedule[0] <= self.rollout_schedule[1]:
            raise ValueError(f"rollout_schedule must be (first step, last step) with 0 <= first <= last, "
                             f"got {self.rollout_schedule}")
        if self.policy_updates < 0:
            raise ValueError(f"policy_updates must be >= 0, got {self.policy_updates}")
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ValueError(f"real_fraction must be in [0, 1], got {self.real_fraction}")

    def model_buffer_capacity(self, rollout_length: int) -> int:
        """Imagined transitions kept: ``model_retain`` rounds of ``rollout_starts`` rollouts."""
        return self.model_retain * self.rollout_starts * rollout_length

    def scheduled_rollout_length(self, env_steps: int) -> int:
        """h after ``env_steps`` real steps: linear from the min to the max over the schedule."""
        first, last = self.rollout_schedule
        progress = 1.0 if last == first else min(max((env_steps - first) / (last - first), 0.0), 1.0)
        return int(self.min_rollout_length + progress * (self.max_rollout_length - self.min_rollout_length))


class MBPO(ModelBasedSAC):
    """MBPO with SAC in ``env`` (rewards and terminations from :func:`env_task_functions` unless
    ``task`` is given). ``model_buffer`` holds the imagined transitions; ``log`` one row per
    rollout round (real steps, h, rows added, rows dropped as non-finite, model validation loss)."""

    name = "mbpo"
    metrics = ("model_val_loss", "model_diverged", "rollout_length", "exploration_bonus", *QUALITY_KEYS)
    config_class = MBPOConfig

    def __init__(self, env: gym.Env, config: MBPOConfig | None = None, task: TaskFunctions | None = None,
                 seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(env, config or MBPOConfig(), task, seed, sac_updates_per_step=0, device=device)
        self.model_buffer = self._model_buffer(self.config.min_rollout_length)
        self.model_fitted_at: int | None = None
        self.log: list[dict] = []
        c = self.config
        self.auto_length = (AutoHorizon((c.min_rollout_length, c.max_rollout_length), c.rollout_threshold,
                                        start=c.min_rollout_length) if c.rollout_length == "auto" else None)
        self.stored_at_fit = 0  # real steps stored at the last fit: later ones are held out

    def _model_buffer(self, length: int, keep: ReplayBuffer | None = None) -> ReplayBuffer:
        """A model buffer for ``model_retain`` rounds of rollouts of ``length`` steps, holding the
        newest rows of ``keep``."""
        buffer = ReplayBuffer(self.sac.obs_dim, self.sac.act_dim, capacity=self.config.model_buffer_capacity(length))
        if keep is not None and len(keep):
            buffer.add_batch(**keep.arrays())
        return buffer

    def _after_real_step(self, sac: SAC) -> None:
        c, steps = self.config, sac.env_steps
        if sac.stored_steps < sac.config.learning_starts:
            return
        if self.model_fitted_at is None or steps - self.model_fitted_at >= c.model_every:
            if self.auto_length is not None:
                new = min(sac.stored_steps - self.stored_at_fit, len(sac.buffer))
                self.auto_length.measure(self.model, sac.buffer.subset(np.arange(len(sac.buffer) - new,
                                                                                 len(sac.buffer))), sac.buffer)
            self.stored_at_fit = sac.stored_steps
            self._fit_model()
            self.model_fitted_at = steps
        if not self.log or (sac.stored_steps - sac.config.learning_starts) % c.rollout_every == 0:
            self._rollouts(steps)
        for _ in range(c.policy_updates):
            sac.update(mixed_batch(sac.buffer, self.model_buffer, sac.config.batch_size, c.real_fraction,
                                   self.generator))

    def _rollouts(self, steps: int) -> None:
        """One round of branched rollouts from real states into the model buffer."""
        length = self.current_rollout_length()
        if self.model_buffer.capacity != self.config.model_buffer_capacity(length):
            self.model_buffer = self._model_buffer(length, keep=self.model_buffer)
        start_obs = self.sac.buffer.sample(self.config.rollout_starts, self.generator).obs
        batch = imagine(self.model, self.task, self._policy, start_obs, length, self.generator,
                        self.exploration_bonus())
        finite = torch.isfinite(batch.next_obs).all(dim=-1) & torch.isfinite(batch.reward)
        kept = batch[finite]
        kept = kept.to("cpu")
        self.model_buffer.add_batch(kept.obs.numpy(), kept.action.numpy(), kept.reward.numpy(), kept.next_obs.numpy(),
                                    kept.terminated.numpy(), kept.truncated.numpy())
        self.log.append({"env_steps": steps, "rollout_length": length, "rows": len(kept),
                         "non_finite_rows": int((~finite).sum()), "model_val_loss": self.model_val_loss})

    def current_rollout_length(self) -> int:
        """h now: the schedule's at the real steps so far, or the ``auto`` choice."""
        if self.auto_length is not None:
            return self.auto_length.horizon
        return self.config.scheduled_rollout_length(self.env_steps)

    def advance(self, max_steps: int | None = None, render: bool = False) -> EpisodeResult | None:
        """See :meth:`ModelBasedSAC.advance`; ``info`` also holds the rollout length h now."""
        result = super().advance(max_steps, render)
        if result is not None:
            result.info["rollout_length"] = self.current_rollout_length()
        return result

    def save(self, path: str | os.PathLike) -> None:
        """Write ``sac/`` (see :meth:`SAC.save`), ``model.*`` once fitted, ``model_buffer.npz`` and
        ``state.json``."""
        path = self._save(path, self.model_fitted_at is not None, self._state())
        self.model_buffer.save(path / "model_buffer.npz")

    def _state(self) -> dict:
        """What ``state.json`` holds beyond the shared fields."""
        return {"model_fitted_at": self.model_fitted_at, "log": self.log, "stored_at_fit": self.stored_at_fit,
                "auto_length": None if self.auto_length is None else self.auto_length.state()}

    def _restore_state(self, state: dict) -> None:
        self.model_fitted_at, self.log, self.stored_at_fit = state["model_fitted_at"], state["log"], state["stored_at_fit"]
        if self.auto_length is not None:
            self.auto_length.load_state(state["auto_length"])

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env, task: TaskFunctions | None = None,
             device: str | torch.device = "cpu") -> "MBPO":
        """Rebuild an agent saved with :meth:`save` around ``env``, on ``device``."""
        agent, state = cls._load(path, env, task, cls.config_class, device)
        saved = ReplayBuffer.load(Path(path) / "model_buffer.npz")
        length = state["log"][-1]["rollout_length"] if state["log"] else agent.config.min_rollout_length
        agent.model_buffer = agent._model_buffer(length, keep=saved)
        agent._restore_state(state)
        return agent
