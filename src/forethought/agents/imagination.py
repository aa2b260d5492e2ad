"""Experience imagined in a learned model: branched rollouts under a policy, batches that mix real
and imagined transitions, and the SAC-plus-model pairing Dyna and MBPO share."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import torch

from forethought.agents.hybrid import HybridConfig, PolicyGuidedMPC
from forethought.agents.mpc import PlannerConfig
from forethought.agents.sac import SAC, EpisodeRecord
from forethought.config import build
from forethought.data.buffer import FIELDS, ReplayBuffer, TransitionBatch
from forethought.envs.analytic import env_task_functions
from forethought.envs.task_functions import TaskFunctions
from forethought.models.base import DynamicsModel
from forethought.models.config import build_model
from forethought.serialization import atomic_write_text, read_agent_state

MODEL_SEED_OFFSET = 1_000_003  # the model work's generator is seeded apart from SAC's


def imagine(model: DynamicsModel, task: TaskFunctions, policy: Callable[[torch.Tensor], torch.Tensor],
            start_obs: torch.Tensor, length: int, generator: torch.Generator) -> TransitionBatch:
    """Transitions of ``length``-step model rollouts from ``start_obs [N, o]`` under ``policy``
    (``[B, o] -> [B, a]`` env-unit actions), rewards and terminations from ``task``. A rollout stops
    after its first terminal transition; at most ``N * length`` rows, step by step."""
    obs, alive, steps = start_obs, torch.ones(start_obs.shape[0], dtype=torch.bool), []
    with torch.no_grad():
        for _ in range(length):
            action = policy(obs)
            next_obs = model.sample(obs, action, generator)
            reward = task.reward(obs, action, next_obs)
            terminated = task.termination(obs, action, next_obs)
            steps.append(TransitionBatch(obs, action, reward, next_obs, terminated, torch.zeros_like(terminated))[alive])
            alive = alive & ~terminated
            if not alive.any():
                break
            obs = next_obs
    return concatenate(*steps)


def concatenate(*batches: TransitionBatch) -> TransitionBatch:
    """One batch holding the rows of ``batches`` in order."""
    return TransitionBatch(*(torch.cat([getattr(b, name) for b in batches]) for name in FIELDS))


def mixed_batch(real: ReplayBuffer, imagined: ReplayBuffer, size: int, real_fraction: float,
                generator: torch.Generator) -> TransitionBatch:
    """``size`` transitions: ``round(size * real_fraction)`` drawn from ``real``, the rest from
    ``imagined`` (all from ``real`` while ``imagined`` is empty)."""
    real_rows = size if len(imagined) == 0 else round(size * real_fraction)
    parts = [real.sample(real_rows, generator)] if real_rows else []
    if real_rows < size:
        parts.append(imagined.sample(size - real_rows, generator))
    return concatenate(*parts)


class ModelBasedSAC:
    """A SAC learner in ``env`` paired with a dynamics model, for agents that train the policy on
    imagined experience. ``config`` needs ``sac``, ``model``, ``train`` and ``seed`` (which
    overrides ``sac.seed``); rewards and terminations come from :func:`env_task_functions` unless
    ``task`` is given. Subclasses do their model work in :meth:`_after_real_step`, called after
    every stored real step, before SAC's own updates; it draws from ``self.generator`` only, so
    the learner's random stream is the model-free one."""

    def __init__(self, env: gym.Env, config: Any, task: TaskFunctions | None = None,
                 sac_updates_per_step: int | None = None) -> None:
        self.config = config
        sac_config = replace(config.sac, seed=config.seed)
        if sac_updates_per_step is not None:
            sac_config = replace(sac_config, updates_per_step=sac_updates_per_step)
        self.sac = SAC(env, sac_config)
        self.task = task or env_task_functions(env)
        self.model = build_model(config.model, config.train, self.sac.obs_dim, self.sac.act_dim)
        self.generator = torch.Generator().manual_seed(config.seed + MODEL_SEED_OFFSET)
        self.model_val_loss: float | None = None

    @property
    def history(self) -> list[EpisodeRecord]:
        return self.sac.history

    @property
    def env_steps(self) -> int:
        return self.sac.env_steps

    def act(self, obs: Any, deterministic: bool = False) -> Any:
        return self.sac.act(obs, deterministic)

    def guided_planner(self, planner: PlannerConfig | None = None, hybrid: HybridConfig | None = None,
                       fallback: Callable[[Any], Any] | None = None) -> PolicyGuidedMPC:
        """MPC in this agent's model whose candidates include the policy's plans, falling back to
        the policy (or ``fallback``) where the model disagrees too much (see :mod:`~forethought.agents.hybrid`).
        The model must have been fitted."""
        return PolicyGuidedMPC(self.model, self.task, self.sac.env.action_space, self.sac.policy, planner, hybrid,
                               torch.Generator().manual_seed(self.config.seed), fallback)

    def learn(self, steps: int, callback: Callable[[EpisodeRecord], None] | None = None) -> list[EpisodeRecord]:
        """Take ``steps`` more real steps; ``callback`` sees every finished episode."""
        return self.sac.learn(steps, callback, before_update=self._after_real_step)

    def restore_episode(self) -> None:
        """See :meth:`SAC.restore_episode`."""
        self.sac.restore_episode()

    def _after_real_step(self, sac: SAC) -> None:
        raise NotImplementedError

    def _fit_model(self) -> None:
        """Fit the model on every real transition so far."""
        self.model_val_loss = self.model.fit(self.sac.buffer, generator=self.generator).best_val_loss

    def _policy(self, obs: torch.Tensor) -> torch.Tensor:
        """The current stochastic policy ``[B, o] -> [B, a]`` (env units), sampling from the model
        work's generator."""
        action, _ = self.sac.actor(obs, self.generator)
        return self.sac.to_env_action(action)

    def _save(self, path: str | os.PathLike, model_fitted: bool, state: dict[str, Any]) -> Path:
        """Write ``sac/`` (see :meth:`SAC.save`), ``model.*`` when fitted, and ``state.json`` holding
        the config, the model's loss, the generator and ``state``; returns the folder."""
        path = Path(path)
        self.sac.save(path / "sac")
        if model_fitted:
            self.model.save(path / "model")
        state = {"config": asdict(self.config), "model_fitted": model_fitted, "model_val_loss": self.model_val_loss,
                 "generator": self.generator.get_state().tolist(), **state}
        atomic_write_text(path / "state.json", json.dumps(state))
        return path

    @classmethod
    def _load(cls, path: str | os.PathLike, env: gym.Env, task: TaskFunctions | None, config_type: type
              ) -> tuple[Any, dict[str, Any]]:
        """The agent :meth:`_save` wrote, around ``env``, and its saved ``state``."""
        path = Path(path)
        state = read_agent_state(path, cls.__name__)
        config = build(config_type, state["config"])
        # the saved SAC buffer already holds any logged offline rows
        agent = cls(env, replace(config, sac=replace(config.sac, offline_data=None)), task)
        agent.config = config
        agent.sac = SAC.load(path / "sac", env)
        if state["model_fitted"]:
            agent.model = DynamicsModel.load(path / "model")
        agent.model_val_loss = state["model_val_loss"]
        agent.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        return agent, state
