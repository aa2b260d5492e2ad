"""Model-predictive control: optimise an action sequence in a model, execute its first action, re-plan.

    agent = MPCAgent(model, envs.env_task_functions(env), env.action_space, PlannerConfig(horizon=15))
    agent.reset()
    action = agent.act(obs)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from forethought.envs.task_functions import TaskFunctions
from forethought.models.base import DynamicsModel
from forethought.planning import PROPAGATIONS, TrajectoryEvaluator, make_optimizer, optimizer_names


@dataclass
class PlannerConfig:
    """How an MPC agent plans.

    ``optimizer`` is one of the planning optimisers (``random``, ``cem``, ``icem``, ``mppi``,
    ``gradient``); ``settings`` are passed to it (e.g. ``{population: 350, elites: 35,
    iterations: 5}`` for CEM). ``particles`` and ``propagation`` (``ts1``, ``tsinf``,
    ``expectation``, ``all-members``) control how each candidate is scored; ``risk_penalty`` and
    ``veto_threshold`` make scoring uncertainty-aware. The plan is recomputed every
    ``replan_every`` steps. ``compute_dtype="bfloat16"`` runs an ensemble's forward passes in
    bfloat16 (several times faster on CPUs with AMX/AVX512-BF16; candidate returns stay within
    the tolerance documented in :class:`~forethought.planning.TrajectoryEvaluator`).
    """

    optimizer: str = "cem"
    horizon: int = 15
    particles: int = 20
    propagation: str = "tsinf"
    risk_penalty: float = 0.0
    veto_threshold: float | None = None
    replan_every: int = 1
    compute_dtype: str = "float32"
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"planner.horizon must be >= 1, got {self.horizon}")
        if self.optimizer not in optimizer_names():
            raise ValueError(f"planner.optimizer must be one of {optimizer_names()}, got {self.optimizer!r}")
        if self.propagation not in PROPAGATIONS:
            raise ValueError(f"planner.propagation must be one of {list(PROPAGATIONS)}, got {self.propagation!r}")
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"planner.compute_dtype must be 'float32' or 'bfloat16', got {self.compute_dtype!r}")
        if not 1 <= self.replan_every <= self.horizon:
            raise ValueError(f"planner.replan_every must be between 1 and horizon={self.horizon}, "
                             f"got {self.replan_every}")


class MPCAgent:
    """Plans in ``model`` with ``task``'s reward/termination and acts in ``action_space``.

    ``plan_ms`` holds the wall-clock milliseconds of every planning call; ``last_evaluation`` the
    planner's scoring of its final candidates (disagreement and vetoes included).
    """

    def __init__(self, model: DynamicsModel, task: TaskFunctions, action_space: gym.Space,
                 config: PlannerConfig | None = None, generator: torch.Generator | None = None) -> None:
        self.config = config or PlannerConfig()
        self.action_space = action_space
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.evaluator = TrajectoryEvaluator(model, task.reward, task.termination,
                                             particles=self.config.particles,
                                             propagation=self.config.propagation,
                                             risk_penalty=self.config.risk_penalty,
                                             veto_threshold=self.config.veto_threshold,
                                             generator=self.generator,
                                             differentiable=self.config.optimizer == "gradient",
                                             compute_dtype=self.config.compute_dtype)
        self.optimizer = make_optimizer(self.config.optimizer, action_space, self.config.horizon,
                                        generator=self.generator, **self.config.settings)
        self.plan_ms: list[float] = []
        self._plan: torch.Tensor | None = None
        self._step_in_plan = 0

    @property
    def last_evaluation(self):
        return self.evaluator.last_evaluation

    def reset(self) -> None:
        """Forget the current plan and the optimiser's warm start (call at each episode start)."""
        self.optimizer.reset()
        self._plan, self._step_in_plan = None, 0

    def act(self, obs: np.ndarray) -> np.ndarray | int:
        """The action for observation ``obs``: the next step of the current plan, re-planning when due."""
        if self._plan is None or self._step_in_plan >= self.config.replan_every:
            self._replan(torch.as_tensor(np.asarray(obs, dtype=np.float32).ravel()))
        action = self._plan[self._step_in_plan]
        self._step_in_plan += 1
        return self._to_env_action(action)

    def _replan(self, obs: torch.Tensor) -> None:
        start = time.perf_counter()
        objective = self.evaluator.objective(obs)
        k = self.config.replan_every
        if k == 1 or self._plan is None:
            plan = self.optimizer.plan(objective) if k == 1 else self.optimizer.optimize(objective)
        else:  # executed k steps of the old plan: shift it by k for the warm start
            shifted = torch.cat([self._plan[k:], self._plan[-1:].expand(k, -1)])
            plan = self.optimizer.optimize(objective, initial=shifted)
        self._plan, self._step_in_plan = plan.detach(), 0
        self.plan_ms.append(1000.0 * (time.perf_counter() - start))

    def _to_env_action(self, action: torch.Tensor) -> np.ndarray | int:
        if isinstance(self.action_space, gym.spaces.Discrete):
            return int(self.action_space.start) + int(action.round().item())
        low, high = self.action_space.low, self.action_space.high
        return np.clip(action.numpy().astype(self.action_space.dtype), low, high).reshape(self.action_space.shape)
