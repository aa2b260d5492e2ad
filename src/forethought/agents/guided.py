"""Policy-guided MPC as a learning agent: MBPO trains the model and the SAC policy, and once the
model is fitted every action, in learning and in evaluation, is planned in the model with the
policy's own rollouts among the candidates (see :class:`~forethought.agents.hybrid.PolicyGuidedMPC`).

    agent = GuidedMPC(gym.make("InvertedPendulum-v5"), GuidedMPCConfig(), seed=0)
    agent.learn(steps=5000)
    agent.act(obs)                     # a plan's first action (the policy's before the first fit)

Before the model's first fit (SAC's ``learning_starts`` random steps) it acts as MBPO does. The
planner draws from its own ``"planner"`` stream, so MBPO's model work and SAC's learner keep
theirs. The planner's warm start is not saved: an episode continued after :meth:`load` re-plans
from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from forethought.agents.base import EpisodeResult
from forethought.agents.hybrid import HybridConfig, PolicyGuidedMPC
from forethought.agents.mbpo import MBPO, MBPOConfig
from forethought.envs.task_functions import TaskFunctions
from forethought.models.task_model import QUALITY_KEYS
from forethought.planning import optimizer_names
from forethought.planning.config import PlannerConfig
from forethought.seeding import generator


@dataclass
class GuidedMPCConfig(MBPOConfig):
    """MBPO's settings (how the model and the policy learn) plus how the agent plans: ``planner``
    (a sampling optimiser re-planning every step) and ``hybrid`` (policy proposals per plan, the
    disagreement above which the policy acts instead)."""

    planner: PlannerConfig = field(default_factory=PlannerConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        sampling = optimizer_names()
        if self.planner.optimizer not in sampling:
            raise ValueError(f"planner.optimizer must be one that takes policy proposals, one of {sampling}, "
                             f"got {self.planner.optimizer!r}")
        if self.planner.exploration_bonus > 0:
            raise ValueError("planner.exploration_bonus is PETS's; policy-guided MPC explores through MBPO's "
                             "exploration_bonus on imagined rewards (agent.exploration_bonus)")
        if self.planner.horizon == "auto":
            raise ValueError("planner.horizon=auto is chosen by PETS; policy-guided MPC needs a fixed planner.horizon "
                             "(rollout_length=auto chooses MBPO's imagined rollout length)")
        if self.planner.replan_every != 1:
            raise ValueError(f"planner.replan_every must be 1 (policy-guided MPC re-plans every step), "
                             f"got {self.planner.replan_every}")


_COUNTS = ("planned", "fallbacks", "proposal_wins", "plan_ms")


class GuidedMPC(MBPO):
    """MBPO whose actions are planned by policy-guided MPC once its model is fitted. An episode's
    ``info`` adds ``plan_ms_per_step``, ``fallback_fraction`` (steps where the policy acted because
    the plan's disagreement passed ``hybrid.fallback_threshold``) and ``proposal_win_fraction``
    (steps whose executed plan was one of the policy's rollouts, unchanged); None before any planning."""

    name = "guided"
    metrics = ("model_val_loss", "model_diverged", "plan_ms_per_step", "fallback_fraction", "proposal_win_fraction",
               *QUALITY_KEYS)
    config_class = GuidedMPCConfig

    def __init__(self, env: gym.Env, config: GuidedMPCConfig | None = None, task: TaskFunctions | None = None,
                 seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(env, config or GuidedMPCConfig(), task, seed, device=device)
        self.planner_generator = generator(self.seed, "planner", device=self.device)
        self.controller: PolicyGuidedMPC | None = None
        self._explore_now = False
        self.episode_counts = dict.fromkeys(_COUNTS, 0)

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """The first action of a plan in the model seeded with the policy's rollouts (or the
        policy's own where the plan is too uncertain: its mean, or with ``deterministic=False``
        a sample); before the model is fitted, the policy's."""
        if self.model_fitted_at is None:
            return self.sac.act(obs, deterministic)
        if self.controller is None:
            self.controller = self.guided_planner(self.config.planner, self.config.hybrid, self._fallback,
                                                  self.planner_generator)
            self.controller.reset()
        self._explore_now = not deterministic
        return self.controller.act(obs)

    def _fallback(self, obs: np.ndarray) -> np.ndarray:
        return self.sac.act(obs, deterministic=not self._explore_now)

    def reset(self) -> None:
        """Drop the planner's warm start (call when a new episode starts)."""
        if self.controller is not None:
            self.controller.reset()

    def _explore(self, obs: Any) -> Any:
        controller = self.controller
        before = (0, 0, 0, 0) if controller is None else \
            (controller.steps, controller.fallbacks, controller.proposal_wins, len(controller.plan_ms))
        action = self.act(obs, deterministic=False)
        controller = self.controller
        if controller is not None:
            counts = self.episode_counts
            counts["planned"] += controller.steps - before[0]
            counts["fallbacks"] += controller.fallbacks - before[1]
            counts["proposal_wins"] += controller.proposal_wins - before[2]
            counts["plan_ms"] += float(sum(controller.plan_ms[before[3]:]))
        return action

    def advance(self, max_steps: int | None = None, render: bool = False) -> EpisodeResult | None:
        if not self.sac.loop.running:  # a new episode (or a loaded one's, continued)
            self.reset()
        result = super().advance(max_steps, render)
        if result is not None:
            planned = self.episode_counts["planned"]
            result.info.update({
                "plan_ms_per_step": self.episode_counts["plan_ms"] / planned if planned else None,
                "fallback_fraction": self.episode_counts["fallbacks"] / planned if planned else None,
                "proposal_win_fraction": self.episode_counts["proposal_wins"] / planned if planned else None})
            self.episode_counts = dict.fromkeys(_COUNTS, 0)
        return result

    def _generators(self) -> dict[str, torch.Generator]:
        return {**super()._generators(), "planner": self.planner_generator}

    def _state(self) -> dict:
        return {**super()._state(), "episode_counts": self.episode_counts}

    def _restore_state(self, state: dict) -> None:
        super()._restore_state(state)
        self.episode_counts = dict(state["episode_counts"])
