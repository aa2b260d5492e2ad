"""PETS: probabilistic ensembles with trajectory sampling (Chua et al., 2018).

A few random-action trials, then repeat: fit the model on all data so far, run one trial with the
MPC agent planning in it.

    agent = PETS(envs.make("cartpole-swingup"), PETSConfig(), seed=0)   # device="cuda" plans on a GPU
    results = agent.learn(episodes=10)          # one episode per trial
    agent.save("runs/pets/agent"); agent = PETS.load("runs/pets/agent", env)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from forethought.agents.base import Agent, EpisodeResult
from forethought.agents.mpc import MPCAgent
from forethought.data.buffer import ReplayBuffer
from forethought.data.env_loop import EnvLoop, ReplayRecorder, random_policy
from forethought.data.offline import load_npz
from forethought.data.collect import check_env_sizes, flat_dim
from forethought.envs.analytic import analytic_step
from forethought.envs.coordinates import env_coordinates
from forethought.envs.task_functions import TaskFunctions, with_state_cost
from forethought.config import build
from forethought.device import resolve_device
from forethought.models.base import DynamicsModel, FitReport
from forethought.models.config import ModelConfig, TrainConfig, build_model
from forethought.models.known import KnownDynamics
from forethought.models.task_model import (QUALITY_KEYS, TaskModel, TaskModelConfig, check_sources, env_name,
                                            registered_task_functions)
from forethought.models.value import StateValue, ValueConfig
from forethought.planning.config import PlannerConfig
from forethought.planning.exploration import annealed_bonus, check_dims
from forethought.planning.horizon import AutoHorizon
from forethought.planning.optimizer import action_bounds, optimizer_class
from forethought.seeding import derive_seed, episode_seed, generator, load_generators, save_generators
from forethought.serialization import atomic_write_text, read_agent_state


@dataclass
class PETSConfig:
    """PETS settings: the model, its training, the planner, and how many random trials come first.

    The defaults (5-member 3x200 PE ensemble, TS-infinity with 5 particles, iCEM with 100
    candidates decaying by 1.25 per iteration, 10 elites and 3 iterations over 15 steps) reach
    90 % of the oracle planner's return on the cart-pole within 3 to 4 trials (5 of 5 seeds),
    planning in under 100 ms per step on 2 cores. An epoch of model training is at least 10
    minibatches: the first trials give a few hundred rows (one minibatch of 256), and 50 epochs
    of one gradient step each leave the model undertrained (6 to 8 trials to the same return).

    With ``oracle`` the agent plans in the environment's exact dynamics instead of a learned model
    (the ceiling planners are measured against; our own environments, Gymnasium's Pendulum-v1 and
    MuJoCo tasks whose observation is their state, see :func:`~forethought.envs.analytic_step`).

    ``state_cost`` (observation index -> weight) subtracts ``weight * next_obs[index]^2`` from the
    reward the planner maximises (see :func:`~forethought.envs.with_state_cost`); the returns
    reported are always the environment's own.

    ``random_trial_steps`` ends each random trial after that many steps (None: when the
    environment ends it), for tasks whose episodes are long but whose dynamics a few random steps
    already show. ``refit_every`` also refits the model every that many steps within a planned
    trial (None: only before each trial, as in the PETS paper), so a long first trial learns from
    its own first steps.

    Offline starts: ``offline_data`` (an ``.npz`` of logged transitions, see
    :func:`~forethought.data.load_npz`) fills the buffer before the first trial, and
    ``offline_model`` (a model saved with ``DynamicsModel.save``, e.g. by ``forethought
    fit-model``) replaces the fresh model, whose fits then continue from it. With either, there are
    no random trials: the first trial already plans.

    ``reward`` and ``termination`` say where the planner's reward and termination come from:
    ``auto`` (the registered functions where the environment has them, else learned), ``known``,
    ``learned`` (refitted on all real transitions before every planned trial, with the dynamics
    model; ``task_model`` sizes and trains them) or, for the termination, ``never`` (see
    :class:`~forethought.models.task_model.TaskModel`).

    ``terminal_value`` plans past the horizon: a state value (``value`` sizes and fits it, see
    :mod:`forethought.models.value`) is fitted at every model fit, by value iteration in the model
    over the real transitions' states (or by temporal differences on them), and every candidate
    scores its imagined rewards discounted by ``value.discount`` plus the discounted value of the
    state it ends in. For sparse rewards that lie further away than the horizon reaches (a
    swing-up that takes several pumps).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(min_epoch_batches=10))
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    random_trials: int = 1
    random_trial_steps: int | None = None
    refit_every: int | None = None
    oracle: bool = False
    state_cost: dict = field(default_factory=dict)
    offline_data: str | None = None
    offline_model: str | None = None
    reward: str = "auto"
    termination: str = "auto"
    task_model: TaskModelConfig = field(default_factory=TaskModelConfig)
    terminal_value: bool = False
    value: ValueConfig = field(default_factory=ValueConfig)

    def __post_init__(self) -> None:
        check_sources(self.reward, self.termination)
        if self.random_trials < 0:
            raise ValueError(f"random_trials must be >= 0, got {self.random_trials}")
        if self.random_trial_steps is not None and self.random_trial_steps < 1:
            raise ValueError(f"random_trial_steps must be >= 1 (or None), got {self.random_trial_steps}")
        if self.refit_every is not None and self.refit_every < 1:
            raise ValueError(f"refit_every must be >= 1 (or None), got {self.refit_every}")


class PETS(Agent):
    """The PETS agent for one environment (its reward/termination come from
    :func:`forethought.envs.env_task_functions` unless ``task`` is given). One episode is one
    trial; its record's ``info`` holds ``model_val_loss`` (the fit before it; None for random or
    oracle trials), ``model_diverged`` (the fit's loss went non-finite), ``model_fitted`` (a model
    has been trained), ``plan_ms_per_step`` and the learned reward's and termination's held-out
    quality (:data:`~forethought.models.task_model.QUALITY_KEYS`; None where known).

    ``device`` (``cpu``, ``cuda`` or ``auto``, see :func:`~forethought.device.resolve_device`)
    holds the model, the learned task parts and the planner's candidates and generators; the
    saved agent is the same whatever it was, and :meth:`load` picks the device anew."""

    name = "pets"
    metrics = ("model_val_loss", "model_diverged", "plan_ms_per_step", "planning_horizon", "exploration_bonus",
               "value_loss", *QUALITY_KEYS)
    config_class = PETSConfig

    def __init__(self, env: gym.Env, config: PETSConfig | None = None, task: TaskFunctions | None = None,
                 seed: int = 0, device: str | torch.device = "cpu") -> None:
        self.env, self.config, self.seed = env, config or PETSConfig(), derive_seed(seed)
        self.device = resolve_device(device)
        planner = self.config.planner.optimizer
        if isinstance(env.action_space, gym.spaces.Discrete) and not optimizer_class(planner).supports_discrete:
            raise ValueError(f"PETS with the {planner!r} planner needs a Box action space, got {env.action_space}; "
                             f"for Discrete actions set agent.planner.optimizer=random or cem")
        self.obs_dim, self.act_dim = flat_dim(env.observation_space), flat_dim(env.action_space)
        outside = sorted(i for i in self.config.state_cost if not isinstance(i, int) or not 0 <= i < self.obs_dim)
        if outside:
            raise ValueError(f"agent.state_cost names observation indices {outside}; "
                             f"{type(env.unwrapped).__name__}'s observations have indices 0 to {self.obs_dim - 1}")
        check_dims(self.config.planner.disagreement_dims, self.obs_dim, "agent.planner.disagreement_dims")
        if (self.config.terminal_value and self.config.value.backup == "model" and isinstance(env.action_space, gym.spaces.Box)
                and not (np.isfinite(env.action_space.low).all() and np.isfinite(env.action_space.high).all())):
            raise ValueError(f"agent.value.backup=model draws actions within the action bounds; {env.action_space} "
                             f"is unbounded: bound it or set agent.value.backup=data")
        c = self.config
        known = task if task is not None else registered_task_functions(env)
        if c.oracle and known is None:
            raise ValueError(f"oracle mode plans with the environment's own reward and termination; none are "
                             f"registered for {type(env.unwrapped).__name__}")
        self.task_model = TaskModel(known, "known" if c.oracle else c.reward, "known" if c.oracle else c.termination,
                                    self.obs_dim, self.act_dim, c.task_model, env_name(env), self.device)
        self.task = with_state_cost(self.task_model.functions, c.state_cost)
        self.task_generator = generator(self.seed, "task", device=self.device)
        self.value_generator = generator(self.seed, "value", device=self.device)
        self.value = (StateValue(self.obs_dim, self.act_dim, c.value, self.value_generator)
                      if c.terminal_value else None)
        self.buffer = ReplayBuffer(self.obs_dim, self.act_dim)
        self.generator = torch.Generator(self.device).manual_seed(self.seed)
        self.model = self._make_model()
        self.history: list[EpisodeResult] = []
        self.agent: MPCAgent | None = None
        self._exploit: MPCAgent | None = None  # evaluation's planner when learning explores
        planner = self.config.planner
        self.auto_horizon = (AutoHorizon(planner.horizon_bounds, planner.horizon_threshold)
                             if planner.horizon == "auto" else None)
        self.rows_at_fit = 0  # buffer rows when the model was last fitted: later ones are held out
        self.offline_rows = 0  # logged transitions in the buffer, not this agent's real steps
        self._offline_start()

    def _offline_start(self) -> None:
        """Load ``offline_data`` into the buffer and ``offline_model`` as the model, checking sizes."""
        c = self.config
        if c.offline_data is not None:
            logged = load_npz(c.offline_data)
            check_env_sizes(c.offline_data, logged.obs_dim, logged.act_dim, self.env)
            self.buffer, self.offline_rows = logged, len(logged)
        if c.offline_model is not None:
            model = DynamicsModel.load(c.offline_model, device=self.device)
            check_env_sizes(c.offline_model, model.obs_dim, model.act_dim, self.env)
            self.model = model

    @property
    def random_trials(self) -> int:
        """Random trials this agent starts with: none in oracle mode or after an offline start."""
        c = self.config
        return 0 if c.oracle or c.offline_data is not None or c.offline_model is not None else c.random_trials

    def _make_model(self) -> DynamicsModel:
        if not self.config.oracle:
            return build_model(self.config.model, self.config.train, self.obs_dim, self.act_dim,
                               coordinates=env_coordinates(self.env)).to(self.device)
        step = analytic_step(self.env)
        if step is None:
            raise ValueError(f"oracle mode needs the exact dynamics of the environment (our own environments, "
                             f"Pendulum-v1 and MuJoCo tasks whose observation is their state); {type(self.env.unwrapped).__name__} "
                             f"has none")
        return KnownDynamics(step, self.obs_dim, self.act_dim).to(self.device)

    @property
    def env_steps(self) -> int:
        """Raw real environment steps this agent has taken, action repeats counted (logged offline
        transitions are not)."""
        return self.history[-1].env_steps if self.history else 0

    def advance(self, max_steps: int | None = None, render: bool = False) -> EpisodeResult:
        """One trial: random actions during the first :attr:`random_trials`, otherwise fit the
        model on all data (unless there is none yet: an offline model alone) and act with MPC.
        A trial always runs to its end (``max_steps`` does not cut it)."""
        start = time.perf_counter()
        index, fit, self._exploit, value_loss = len(self.history), None, None, None
        seed = episode_seed(self.seed, index)
        random_trial = index < self.random_trials
        quality = dict.fromkeys(QUALITY_KEYS)
        if not random_trial and not self.config.oracle and len(self.buffer) > 0:
            fit = self._fit()
            quality = self.task_model.fit(self.buffer, self.task_generator)
            value_loss = self._fit_value()
        if random_trial or not (self.config.oracle or self._can_plan()):  # nothing to plan in (yet)
            self.env.action_space.seed(seed)
            policy, self.agent = random_policy(self.env.action_space), None
        else:
            self.agent = self._mpc(explore=True)
            self.agent.reset()
            policy = self.agent.act if self.config.oracle or self.config.refit_every is None else self._refitting_policy()
        loop = EnvLoop(self.env, ReplayRecorder(self.buffer), render=render)
        episode = loop.run(policy, seed=seed, max_steps=self.config.random_trial_steps if random_trial else None)
        plan_ms = float(np.mean(self.agent.plan_ms)) if self.agent and self.agent.plan_ms else None
        diverged = quality.pop("task_diverged", None)
        info = {"model_val_loss": None if fit is None else fit.best_val_loss,
                "model_diverged": None if fit is None else fit.nonfinite or bool(diverged),
                "model_fitted": None if fit is None else self._can_plan(),
                "plan_ms_per_step": plan_ms,
                "planning_horizon": None if self.agent is None else self.agent.config.horizon,
                "exploration_bonus": None if self.agent is None else self.agent.config.exploration_bonus,
                "value_loss": value_loss, **quality}
        result = EpisodeResult(index, episode.total_reward, episode.steps, self.env_steps + episode.env_steps,
                               time.perf_counter() - start, random_trial, info, episode.frames)
        self.history.append(result)
        return result

    def _refitting_policy(self) -> Callable[[np.ndarray], np.ndarray | int]:
        """The MPC agent's ``act``, refitting the model on all data every ``refit_every`` steps first
        (the planner reads the model's weights afresh at every plan)."""
        steps = 0

        def act(obs: np.ndarray) -> np.ndarray | int:
            nonlocal steps
            if steps and steps % self.config.refit_every == 0:
                self._fit()
                self.task_model.fit(self.buffer, self.task_generator)
                self._fit_value()
                if self.planning_horizon != self.agent.config.horizon:
                    plan_ms, self.agent = self.agent.plan_ms, self._mpc(explore=True)
                    self.agent.reset()
                    self.agent.plan_ms = plan_ms
            steps += 1
            return self.agent.act(obs)
        return act

    def _fit(self) -> FitReport:
        """Fit the model on every transition; with ``horizon=auto``, first choose the horizon from
        the current model's open-loop error on the rows it has not been fitted on."""
        if self.auto_horizon is not None:
            new = self.buffer.subset(np.arange(self.rows_at_fit, len(self.buffer)))
            self.auto_horizon.measure(self.model, new, self.buffer)
        self.rows_at_fit = len(self.buffer)
        return self.model.fit(self.buffer, generator=self.generator)

    def _fit_value(self) -> float | None:
        """Fit the terminal value (if planning uses one) over every real transition's state; its loss."""
        return None if self.value is None else self.value.fit(self.buffer, self.value_generator, self.value_lookahead)

    def value_lookahead(self, obs: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """One step of the task in the current model for ``value.candidate_actions`` actions per
        state of ``obs [B, o]`` (the action bounds, then uniform draws): rewards ``[B, K]``, mean
        next observations ``[B, K, o]`` and terminations ``[B, K]``, as the planner scores them. The
        terminal value's ``"model"`` backup: ``agent.value.fit(agent.buffer, generator, agent.value_lookahead)``."""
        rows, k = obs.shape[0], self.config.value.candidate_actions
        bounds = action_bounds(self.env.action_space, obs.device)
        actions = bounds.uniform((rows, k), generator)
        actions[:, 0], actions[:, 1] = bounds.low, bounds.high
        flat_obs = obs[:, None].expand(rows, k, self.obs_dim).reshape(-1, self.obs_dim)
        flat_actions = actions.reshape(-1, self.act_dim)
        next_obs = self.model.predict(flat_obs, flat_actions).mean
        reward = self.task.reward(flat_obs, flat_actions, next_obs)
        done = (torch.zeros_like(reward, dtype=torch.bool) if self.task.termination is None
                else self.task.termination(flat_obs, flat_actions, next_obs))
        return reward.view(rows, k), next_obs.view(rows, k, self.obs_dim), done.view(rows, k)

    @property
    def planning_horizon(self) -> int:
        """The steps the planner looks ahead now: the chosen horizon under ``horizon=auto``, else the
        configured one."""
        return self.config.planner.horizon if self.auto_horizon is None else self.auto_horizon.horizon

    def _mpc(self, explore: bool) -> MPCAgent:
        """A planner in the current model; with the planner's exploration bonus (annealed to the
        real steps so far) when ``explore``, else without."""
        planner = self.config.planner
        bonus = annealed_bonus(planner.exploration_bonus, planner.exploration_anneal_steps, self.env_steps)
        if bonus != planner.exploration_bonus or not explore:
            planner = replace(planner, exploration_bonus=bonus if explore else 0.0)
        if planner.horizon != self.planning_horizon:
            planner = replace(planner, horizon=self.planning_horizon)
        if self.config.oracle:  # exact deterministic dynamics: one particle says everything
            planner = replace(planner, particles=1, propagation="expectation")
        value = self.value if self.value is not None and self.value.fitted else None
        return MPCAgent(self.model, self.task, self.env.action_space, planner, self.generator, value)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        """Plan with MPC in the current model; planning draws its candidates from the agent's
        generator either way. Before the model has been fitted (and outside oracle mode) there
        is nothing to plan in: a uniform random action, as in the random trials. With a planner
        exploration bonus, ``deterministic`` acts plan without it (evaluation) and the others with
        it (learning)."""
        if not self.config.oracle and not self._can_plan():
            return self.env.action_space.sample()
        if deterministic and self.config.planner.exploration_bonus > 0:
            if self._exploit is None:
                self._exploit = self._mpc(explore=False)
                self._exploit.reset()
            return self._exploit.act(obs)
        if self.agent is None:
            self.agent = self._mpc(explore=True)
            self.agent.reset()
        return self.agent.act(obs)

    def _can_plan(self) -> bool:
        """Whether the dynamics model and every learned part of the task have been fitted."""
        return self.model.fitted and self.task_model.fitted

    def reset(self) -> None:
        """Drop the planner's warm start (call when a new episode starts)."""
        for agent in (self.agent, self._exploit):
            if agent is not None:
                agent.reset()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the agent to folder ``path``: ``model.*`` (unless oracle), ``buffer.npz``,
        ``generator.*`` and ``state.json`` (config, seed and trial history)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if not self.config.oracle:
            self.model.save(path / "model")
        self.task_model.save(path / "task")
        if self.value is not None:
            self.value.save(path / "value")
        self.buffer.save(path / "buffer.npz")
        save_generators(path / "generator", self._generators())
        state = {"config": asdict(self.config), "seed": self.seed, "history": [r.to_dict() for r in self.history],
                 "model_fitted": self.model.fitted, "offline_rows": self.offline_rows,
                 "task_fitted_rows": self.task_model.fitted_rows, "rows_at_fit": self.rows_at_fit,
                 "auto_horizon": None if self.auto_horizon is None else self.auto_horizon.state(),
                 "value_fitted": self.value is not None and self.value.fitted}
        atomic_write_text(path / "state.json", json.dumps(state, indent=2))

    def _generators(self) -> dict[str, torch.Generator]:
        generators = {"generator": self.generator, "task": self.task_generator}
        return generators if self.value is None else {**generators, "value": self.value_generator}

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env, task: TaskFunctions | None = None,
             device: str | torch.device = "cpu") -> "PETS":
        """Rebuild an agent saved with :meth:`save` around ``env`` (the same kind of environment),
        on ``device`` (its generators' states load only on the kind of device they were saved on)."""
        path = Path(path)
        state = read_agent_state(path, "PETS")
        config = build(PETSConfig, state["config"])
        # the saved buffer and model already hold what an offline start loaded
        agent = cls(env, replace(config, offline_data=None, offline_model=None), task, seed=state["seed"],
                    device=device)
        agent.config = config
        buffer = ReplayBuffer.load(path / "buffer.npz")
        check_env_sizes(f"the agent in {path}", buffer.obs_dim, buffer.act_dim, env)
        agent.buffer, agent.offline_rows = buffer, state["offline_rows"]
        if not agent.config.oracle and state["model_fitted"]:
            agent.model = DynamicsModel.load(path / "model", device=agent.device)
        agent.task_model.load(path / "task", state["task_fitted_rows"])
        agent.rows_at_fit = state["rows_at_fit"]
        if state.get("value_fitted"):
            agent.value = StateValue.load(path / "value", device=agent.device)
        if agent.auto_horizon is not None:
            agent.auto_horizon.load_state(state["auto_horizon"])
        load_generators(path / "generator", agent._generators())
        agent.history = [EpisodeResult.from_dict(r) for r in state["history"]]
        return agent
