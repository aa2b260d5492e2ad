"""Planner and learned policy together: MPC whose candidates include the policy's own plans, and a
fallback to the policy (or a safe controller) where the model is too unsure to plan in.

    agent = PolicyGuidedMPC(model, task, env.action_space, sac.policy,
                            PlannerConfig(optimizer="icem", horizon=15, particles=5),
                            HybridConfig(proposals=8, fallback_threshold=0.05))
    action = agent.act(obs)
    agent.fallback_fraction            # share of steps the policy acted instead of the plan

Each step the policy is rolled out in the model from the current observation for the planner's
horizon (``proposals`` rollouts: the first with the deterministic policy and the model's mean, the
others sampling both), and those action sequences join the planner's first population, so planning
starts from the policy's plan and improves it. With ``fallback_threshold``, the chosen plan's
epistemic disagreement (the members' spread along its expected trajectory, in units of the
model's one-step-change scale, see :class:`~forethought.planning.TrajectoryEvaluator`) is measured,
and above the threshold the fallback acts instead: early in training or off the data, where a
plan in the model means little.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from forethought.agents.mpc import MPCAgent
from forethought.envs.task_functions import TaskFunctions
from forethought.models.base import DynamicsModel
from forethought.planning import TrajectoryEvaluator
from forethought.planning.config import PlannerConfig

BatchPolicy = Callable[[torch.Tensor, bool], torch.Tensor]
"""``(obs [B, o], deterministic) -> actions [B, a]`` in environment units (e.g. ``SAC.policy``)."""


@dataclass
class HybridConfig:
    """``proposals``: policy rollouts added to the planner's first population (0: plain MPC).
    ``fallback_threshold``: disagreement of the chosen plan above which the fallback acts (None:
    never)."""

    proposals: int = 8
    fallback_threshold: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.proposals, bool) or int(self.proposals) != self.proposals or self.proposals < 0:
            raise ValueError(f"proposals must be an integer >= 0, got {self.proposals!r}")
        if self.fallback_threshold is not None and not self.fallback_threshold >= 0:
            raise ValueError(f"fallback_threshold must be None or >= 0, got {self.fallback_threshold!r}")


def policy_rollouts(model: DynamicsModel, policy: BatchPolicy, obs: torch.Tensor, horizon: int, count: int,
                    generator: torch.Generator) -> torch.Tensor:
    """Action sequences ``[count, H, a]`` the policy takes in the model from ``obs [o]``: rollout 0
    deterministic (policy mean, model mean), the others stochastic (sampled actions and next states)."""
    state = obs.expand(count, -1).clone()
    sequences = []
    with torch.no_grad():
        for _ in range(horizon):
            action = policy(state, False)
            action[0] = policy(state[:1], True)[0]
            sampled = model.sample(state, action, generator)
            sampled[0] = model.predict(state[:1], action[:1]).mean[0]
            sequences.append(action)
            state = sampled
    return torch.stack(sequences, dim=1).float()


class PolicyGuidedMPC(MPCAgent):
    """:class:`MPCAgent` seeded with ``policy``'s plans; falls back to ``fallback`` (default: the
    deterministic policy) when the chosen plan's disagreement exceeds the threshold.

    ``steps``, ``fallbacks`` and ``proposal_wins`` (steps whose executed plan was one of the
    policy's, unchanged) count what happened; ``last_disagreement`` is the latest measurement."""

    def __init__(self, model: DynamicsModel, task: TaskFunctions, action_space: gym.spaces.Box, policy: BatchPolicy,
                 config: PlannerConfig | None = None, hybrid: HybridConfig | None = None,
                 generator: torch.Generator | None = None,
                 fallback: Callable[[np.ndarray], Any] | None = None) -> None:
        super().__init__(model, task, action_space, config, generator)
        if self.config.replan_every != 1:
            raise ValueError("PolicyGuidedMPC re-plans every step (planner.replan_every must be 1), got "
                             f"{self.config.replan_every}")
        self.model, self.policy, self.hybrid = model, policy, hybrid or HybridConfig()
        self.fallback = fallback or self._policy_action
        self.judge = TrajectoryEvaluator(model, task.reward, task.termination, particles=1, propagation="expectation",
                                         measure_disagreement=True, generator=self.generator)
        self.steps = self.fallbacks = self.proposal_wins = 0
        self.last_disagreement: float | None = None

    @property
    def fallback_fraction(self) -> float:
        return self.fallbacks / self.steps if self.steps else 0.0

    def act(self, obs: np.ndarray, deterministic: bool = True) -> Any:
        """Plan from ``obs`` (seeded with the policy's rollouts) and return the plan's first action,
        or the fallback's where the plan is too uncertain; planning samples from the generator either way."""
        start = time.perf_counter()
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32).ravel(), device=self.model.device)
        proposals = None
        if self.hybrid.proposals > 0:
            proposals = policy_rollouts(self.model, self.policy, obs_t, self.config.horizon, self.hybrid.proposals,
                                        self.generator)
        plan = self.optimizer.plan(self.evaluator.objective(obs_t), proposals=proposals).detach()
        self.steps += 1
        if proposals is not None and bool((self.optimizer.bounds.project(proposals) == plan).all(dim=(1, 2)).any()):
            self.proposal_wins += 1
        too_uncertain = False
        if self.hybrid.fallback_threshold is not None:
            self.last_disagreement = float(self.judge.evaluate(obs_t, plan[None]).disagreement[0])
            too_uncertain = self.last_disagreement > self.hybrid.fallback_threshold
            self.fallbacks += too_uncertain
        self.plan_ms.append(1000.0 * (time.perf_counter() - start))
        return self.fallback(obs) if too_uncertain else self._to_env_action(plan[0])

    def _policy_action(self, obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, -1), device=self.model.device)
        action = self.policy(obs_t, True)[0]
        return self._to_env_action(action)
