"""Model-predictive control: optimise an action sequence in a model, execute its first action, re-plan.

    agent = MPCAgent(model, envs.env_task_functions(env), env.action_space, PlannerConfig(horizon=15))
    agent.reset()
    action = agent.act(obs)

Every optimiser of :class:`~forethought.planning.PlannerConfig` plans the same way here: the
evaluator turns the observation into an objective, the optimiser returns a plan ``[H, a]``
(warm-started from the previous one), and its first action is executed.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import torch

from forethought.envs.task_functions import TaskFunctions
from forethought.models.base import DynamicsModel
from forethought.models.value import StateValue
from forethought.planning import TrajectoryEvaluator, make_optimizer, optimizer_class
from forethought.planning.config import PlannerConfig
from forethought.planning.rollout import Evaluation

__all__ = ["MPCAgent"]


class MPCAgent:
    """Plans in ``model`` with ``task``'s reward/termination and acts in ``action_space``.

    ``evaluator`` scores candidate sequences (a :class:`~forethought.planning.TrajectoryEvaluator`
    set up from the config; differentiable when the optimiser needs gradients), ``optimizer`` is
    the config's trajectory optimiser; candidates are drawn on ``generator``'s device, which must
    be the model's. With a ``value`` (a :class:`~forethought.models.value.StateValue`), every
    candidate also scores the discounted value of the state it ends in, and its imagined rewards
    are discounted by the value's discount. ``plan_ms`` holds the wall-clock milliseconds of every
    planning call; ``last_evaluation`` the evaluator's scoring of the latest candidates
    (disagreement and vetoes included).
    """

    def __init__(self, model: DynamicsModel, task: TaskFunctions, action_space: gym.Space,
                 config: PlannerConfig | None = None, generator: torch.Generator | None = None,
                 value: StateValue | None = None) -> None:
        self.config = config or PlannerConfig()
        if self.config.horizon == "auto":
            raise ValueError("MPCAgent plans over a fixed horizon; horizon=auto is resolved by the agent that "
                             "owns the model (PETS), which passes the chosen horizon")
        self.action_space = action_space
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        c = self.config
        self.evaluator = TrajectoryEvaluator(model, task.reward, task.termination, particles=c.particles,
                                             propagation=c.propagation, risk_penalty=c.risk_penalty,
                                             exploration_bonus=c.exploration_bonus,
                                             disagreement_dims=c.disagreement_dims,
                                             veto_threshold=c.veto_threshold, generator=self.generator,
                                             terminal_value=value,
                                             discount=1.0 if value is None else value.discount,
                                             differentiable=optimizer_class(c.optimizer).needs_gradients,
                                             compute_dtype=c.compute_dtype)
        self.optimizer = make_optimizer(c.optimizer, action_space, c.horizon, generator=self.generator,
                                        settings=c.optimizer_settings())
        self.plan_ms: list[float] = []
        self._plan: torch.Tensor | None = None
        self._step_in_plan = 0

    @property
    def last_evaluation(self) -> Evaluation | None:
        return self.evaluator.last_evaluation

    def reset(self) -> None:
        """Forget the current plan and the optimiser's warm start (call at each episode start)."""
        self.optimizer.reset()
        self._plan, self._step_in_plan = None, 0

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        """The action for observation ``obs``: the next step of the current plan, re-planning when due.

        MPC has no exploration of its own (the planner's sampling is part of its search, not of
        the policy), so ``deterministic=False`` plans and acts exactly as ``True`` does."""
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
        return np.clip(action.cpu().numpy().astype(self.action_space.dtype), low, high).reshape(self.action_space.shape)
