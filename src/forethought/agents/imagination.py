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
from forethought.agents.base import Agent, EpisodeResult
from forethought.agents.sac import SAC
from forethought.config import build
from forethought.data.buffer import FIELDS, ReplayBuffer, TransitionBatch
from forethought.envs.coordinates import env_coordinates
from forethought.envs.task_functions import TaskFunctions
from forethought.models.base import DynamicsModel
from forethought.models.config import build_model
from forethought.models.task_model import QUALITY_KEYS, TaskModel, env_name, registered_task_functions
from forethought.planning.config import PlannerConfig
from forethought.planning.exploration import annealed_bonus, transition_spread
from forethought.seeding import derive_seed, generator, load_generators, save_generators
from forethought.serialization import atomic_write_text, read_agent_state


def imagine(model: DynamicsModel, task: TaskFunctions, policy: Callable[[torch.Tensor], torch.Tensor],
            start_obs: torch.Tensor, length: int, generator: torch.Generator,
            exploration_bonus: float = 0.0) -> TransitionBatch:
    """Transitions of ``length``-step model rollouts from ``start_obs [N, o]`` under ``policy``
    (``[B, o] -> [B, a]`` env-unit actions), rewards and terminations from ``task``, each reward
    plus ``exploration_bonus`` times the members' spread about that transition (see
    :mod:`~forethought.planning.exploration`). A rollout stops after its first terminal
    transition; at most ``N * length`` rows, step by step, on the model's device (``start_obs`` is
    moved there)."""
    obs = start_obs.to(model.device)
    alive, steps = torch.ones(obs.shape[0], dtype=torch.bool, device=obs.device), []
    with torch.no_grad():
        for _ in range(length):
            action = policy(obs)
            next_obs = model.sample(obs, action, generator)
            reward = task.reward(obs, action, next_obs)
            if exploration_bonus > 0:
                reward = reward + exploration_bonus * transition_spread(model, obs, action)
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


class ModelBasedSAC(Agent):
    """A SAC learner in ``env`` paired with a dynamics model, for agents that train the policy on
    imagined experience. ``config`` needs ``sac``, ``model``, ``train``, ``reward``,
    ``termination`` and ``task_model``; ``device`` holds SAC's networks, the model, the learned
    task parts, the generators and every imagined batch. Imagined rewards and terminations come from ``task`` when
    given, else from the environment's registered functions or models learned with the dynamics
    model, as those settings say (:class:`~forethought.models.task_model.TaskModel`). Subclasses do
    their model work in :meth:`_after_real_step`, called after every stored real step, before
    SAC's own updates; it draws from ``self.generator`` (the run's ``"model"`` stream) only, so
    the learner's random stream is the model-free one."""

    def __init__(self, env: gym.Env, config: Any, task: TaskFunctions | None = None, seed: int = 0,
                 sac_updates_per_step: int | None = None, device: str | torch.device = "cpu") -> None:
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"{type(self).__name__} needs a Box action space (its policy is SAC's), got {env.action_space}")
        self.config, self.env, self.seed = config, env, derive_seed(seed)
        sac_config = config.sac
        if sac_updates_per_step is not None:
            sac_config = replace(sac_config, updates_per_step=sac_updates_per_step)
        self.sac = SAC(env, sac_config, seed=self.seed, device=device)
        self.device = self.sac.device
        known = task if task is not None else registered_task_functions(env)
        self.task_model = TaskModel(known, config.reward, config.termination, self.sac.obs_dim, self.sac.act_dim,
                                    config.task_model, env_name(env), self.device)
        self.task = self.task_model.functions
        self.model = build_model(config.model, config.train, self.sac.obs_dim, self.sac.act_dim,
                                 coordinates=env_coordinates(env)).to(self.device)
        self.generator = generator(self.seed, "model", device=self.device)
        self.task_generator = generator(self.seed, "task", device=self.device)
        self.model_val_loss: float | None = None
        self.model_diverged: bool | None = None
        self.task_quality: dict[str, float | None] = dict.fromkeys(QUALITY_KEYS)

    @property
    def history(self) -> list[EpisodeResult]:
        return self.sac.history

    @property
    def env_steps(self) -> int:
        return self.sac.env_steps

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        return self.sac.act(obs, deterministic)

    def guided_planner(self, planner: PlannerConfig | None = None, hybrid: HybridConfig | None = None,
                       fallback: Callable[[Any], Any] | None = None,
                       planner_generator: torch.Generator | None = None) -> PolicyGuidedMPC:
        """MPC in this agent's model whose candidates include the policy's plans, falling back to
        the policy (or ``fallback``) where the model disagrees too much (see :mod:`~forethought.agents.hybrid`).
        The model must have been fitted. Planning draws from ``planner_generator`` (default: a
        fresh ``"planner"`` stream of the agent's seed)."""
        return PolicyGuidedMPC(self.model, self.task, self.sac.env.action_space, self.sac.policy, planner, hybrid,
                               planner_generator or generator(self.seed, "planner", device=self.device), fallback)

    def advance(self, max_steps: int | None = None, render: bool = False) -> EpisodeResult | None:
        """See :meth:`SAC.advance`; the episode's ``info`` holds the model's latest validation loss,
        whether that fit's loss went non-finite (``model_diverged``) and whether a model has been
        trained at all (``model_fitted``), and the learned reward's and termination's held-out
        quality at the latest fit (:data:`~forethought.models.task_model.QUALITY_KEYS`)."""
        result = self.sac.advance(max_steps, render, before_update=self._after_real_step, behaviour=self._explore)
        if result is not None:
            fitted = self.model.fitted and self.task_model.fitted
            result.info.update({"model_val_loss": self.model_val_loss, "model_diverged": self.model_diverged,
                                "model_fitted": fitted if self.model_diverged is not None else None,
                                "exploration_bonus": self.exploration_bonus(), **self.task_quality})
        return result

    def _after_real_step(self, sac: SAC) -> None:
        raise NotImplementedError

    def exploration_bonus(self) -> float:
        """The weight of the disagreement reward on imagined transitions now: the config's
        ``exploration_bonus`` annealed over its ``exploration_anneal_steps`` real steps."""
        c = self.config
        return annealed_bonus(c.exploration_bonus, c.exploration_anneal_steps, self.env_steps)

    def _explore(self, obs: Any) -> Any:
        """The action taken in learning once SAC's ``learning_starts`` steps are stored: a sample
        of the policy."""
        return self.sac.act(obs, deterministic=False)

    def _fit_model(self) -> None:
        """Fit the model, and the learned parts of the task, on every real transition so far."""
        report = self.model.fit(self.sac.buffer, generator=self.generator)
        quality = self.task_model.fit(self.sac.buffer, self.task_generator)
        diverged = quality.pop("task_diverged")
        self.model_val_loss, self.model_diverged = report.best_val_loss, report.nonfinite or bool(diverged)
        self.task_quality = quality

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
        self.task_model.save(path / "task")
        save_generators(path / "generator", self._generators())
        state = {"agent": type(self).__name__, "config": asdict(self.config), "seed": self.seed,
                 "model_fitted": model_fitted, "task_fitted_rows": self.task_model.fitted_rows,
                 "task_quality": self.task_quality,
                 "model_val_loss": self.model_val_loss, "model_diverged": self.model_diverged, **state}
        atomic_write_text(path / "state.json", json.dumps(state))
        return path

    @classmethod
    def _load(cls, path: str | os.PathLike, env: gym.Env, task: TaskFunctions | None, config_type: type,
              device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
        """The agent :meth:`_save` wrote, around ``env``, on ``device``, and its saved ``state``."""
        path = Path(path)
        state = read_agent_state(path, cls.__name__)
        config = build(config_type, state["config"])
        # the saved SAC buffer already holds any logged offline rows
        agent = cls(env, replace(config, sac=replace(config.sac, offline_data=None)), task, seed=state["seed"],
                    device=device)
        agent.config = config
        agent.sac = SAC.load(path / "sac", env, device=agent.device)
        if state["model_fitted"]:
            agent.model = DynamicsModel.load(path / "model", device=agent.device)
        agent.model_val_loss, agent.model_diverged = state["model_val_loss"], state["model_diverged"]
        agent.task_model.load(path / "task", state["task_fitted_rows"])
        agent.task_quality = dict(state["task_quality"])
        load_generators(path / "generator", agent._generators())
        return agent, state

    def _generators(self) -> dict[str, torch.Generator]:
        """The generators a checkpoint saves, by name (SAC's own saves with it)."""
        return {"model": self.generator, "task": self.task_generator}
