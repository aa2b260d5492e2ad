"""Dyna (Sutton, 1990) around soft actor-critic: every real step also buys K updates on imagined
transitions.

For every real step: store it in the real buffer, refit the dynamics model on the schedule, then
make ``imagined_updates`` SAC updates on batches the model predicts, from real start states
under the current policy (``rollout_length`` steps per start; 1 is the classic one-step Dyna),
then SAC's own updates on real data. ``imagined_updates = 0`` is exactly model-free SAC: the model
work draws from its own generator, so the real learner's random stream is untouched.

    agent = Dyna(gym.make("Pendulum-v1"), DynaConfig(imagined_updates=10))
    agent.learn(steps=1500)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import gymnasium as gym
import torch

from forethought.agents.imagination import ModelBasedSAC, imagine
from forethought.agents.sac import SAC, SACConfig
from forethought.envs.task_functions import TaskFunctions
from forethought.models.config import ModelConfig, TrainConfig
from forethought.models.task_model import QUALITY_KEYS, TaskModelConfig, check_sources
from forethought.planning.exploration import check_exploration


@dataclass
class DynaConfig:
    """Dyna settings: the SAC learner, the model and its training, and how the model is used.

    The model is first fitted once ``model_warmup`` real steps are stored, then refitted every
    ``model_every`` steps. The agent's ``seed`` seeds SAC and, by name, the model work.
    ``reward`` / ``termination``: ``auto``, ``known``, ``learned`` (``never`` for the termination),
    the imagined transitions' sources (see :class:`~forethought.models.task_model.TaskModel`)."""

    sac: SACConfig = field(default_factory=SACConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    # epochs of at least 20 minibatches, as for MBPO: one pass over a few hundred rows is too few steps
    train: TrainConfig = field(default_factory=lambda: TrainConfig(min_epoch_batches=20))
    imagined_updates: int = 10
    rollout_length: int = 1
    model_every: int = 250
    model_warmup: int = 200
    reward: str = "auto"
    termination: str = "auto"
    task_model: TaskModelConfig = field(default_factory=TaskModelConfig)
    exploration_bonus: float = 0.0
    exploration_anneal_steps: int | None = None

    def __post_init__(self) -> None:
        check_sources(self.reward, self.termination)
        check_exploration(self.exploration_bonus, self.exploration_anneal_steps)
        if self.imagined_updates < 0:
            raise ValueError(f"imagined_updates must be >= 0, got {self.imagined_updates}")
        for name in ("rollout_length", "model_every", "model_warmup"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class Dyna(ModelBasedSAC):
    """Dyna-SAC in ``env`` (rewards and terminations from :func:`env_task_functions` unless
    ``task`` is given). ``sac`` is the learner, ``model`` the dynamics model, ``model_fits`` the
    real-step counts at which the model was refitted, ``model_val_loss`` its validation loss at the
    latest fit."""

    name = "dyna"
    metrics = ("model_val_loss", "model_diverged", "exploration_bonus", *QUALITY_KEYS)
    config_class = DynaConfig

    def __init__(self, env: gym.Env, config: DynaConfig | None = None, task: TaskFunctions | None = None,
                 seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(env, config or DynaConfig(), task, seed, device=device)
        self.model_fits: list[int] = []
        self.imagined_updates_done = 0

    def _after_real_step(self, sac: SAC) -> None:
        """After each stored real step: refit on the schedule, then the imagined updates."""
        c = self.config
        stored = len(sac.buffer)
        if stored >= c.model_warmup and (not self.model_fits or sac.env_steps - self.model_fits[-1] >= c.model_every):
            self._fit_model()
            self.model_fits.append(sac.env_steps)
        if not self.model_fits or c.imagined_updates == 0 or sac.stored_steps < sac.config.learning_starts:
            return
        starts = math.ceil(sac.config.batch_size / c.rollout_length)
        for _ in range(c.imagined_updates):
            start_obs = sac.buffer.sample(starts, self.generator).obs
            batch = imagine(self.model, self.task, self._policy, start_obs, c.rollout_length, self.generator,
                            self.exploration_bonus())
            sac.update(batch)
            self.imagined_updates_done += 1

    def save(self, path: str | os.PathLike) -> None:
        """Write ``sac/`` (see :meth:`SAC.save`), ``model.*`` once fitted, and ``state.json``."""
        self._save(path, bool(self.model_fits), {"model_fits": self.model_fits,
                                                 "imagined_updates_done": self.imagined_updates_done})

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env, task: TaskFunctions | None = None,
             device: str | torch.device = "cpu") -> "Dyna":
        """Rebuild an agent saved with :meth:`save` around ``env``, on ``device``."""
        agent, state = cls._load(path, env, task, DynaConfig, device)
        agent.model_fits, agent.imagined_updates_done = state["model_fits"], state["imagined_updates_done"]
        return agent
