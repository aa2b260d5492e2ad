"""A start-state curriculum for our swing-up tasks: training episodes start with the pole near
upright and the start widens towards the task's own (hanging down) as training returns grow.

    env = with_curriculum(envs.make("cartpole-swingup"), CurriculumConfig(start_spread=0.5, widen_by=1.0,
                                                                          widen_when_return_above=60.0))
    env.reset(seed=0)        # pole angle uniform in [-0.5, 0.5] rad around upright (plus the env's noise)
    env.record(72.0)         # a training return above 60: the next starts are within [-1.5, 1.5] rad

Stage ``k`` (after ``k`` training episodes whose return was above ``widen_when_return_above``)
draws the start angle uniformly from ``[-s_k, s_k]`` around upright, ``s_k = start_spread + k *
widen_by`` (rad); the environment adds its usual start noise on top. Once ``s_k >= pi`` every
episode starts as the task does. The stage is a function of the training returns alone, so a
resumed run rebuilds it from the agent's history (:meth:`StartCurriculum.replay`). Evaluation
environments are never wrapped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from forethought.envs.cartpole_swingup import CartPoleSwingUpEnv
from forethought.envs.pendulum_swingup import PendulumSwingUpEnv

CURRICULUM_ENVS = (CartPoleSwingUpEnv, PendulumSwingUpEnv)  # reset(options={"theta": rad}), theta = 0 upright


@dataclass
class CurriculumConfig:
    """``start_spread``: half-width (rad) of the first stage's start angles around upright; None
    (the default): no curriculum. ``widen_by``: radians added to the half-width at each widening.
    ``widen_when_return_above``: a training episode whose return exceeds this widens the start."""

    start_spread: float | None = None
    widen_by: float = 0.5
    widen_when_return_above: float = 0.0

    def __post_init__(self) -> None:
        if self.start_spread is not None and not (_number(self.start_spread) and 0 < self.start_spread < math.pi):
            raise ValueError(f"curriculum.start_spread must be None (no curriculum) or radians in (0, pi), "
                             f"got {self.start_spread!r}")
        if not (_number(self.widen_by) and self.widen_by > 0):
            raise ValueError(f"curriculum.widen_by must be radians > 0, got {self.widen_by!r}")
        if not _number(self.widen_when_return_above):
            raise ValueError(f"curriculum.widen_when_return_above must be a finite number, "
                             f"got {self.widen_when_return_above!r}")

    @property
    def enabled(self) -> bool:
        return self.start_spread is not None


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


class StartCurriculum(gym.Wrapper):
    """Draws each training episode's start angle from the current stage (see the module)."""

    def __init__(self, env: gym.Env, config: CurriculumConfig) -> None:
        super().__init__(env)
        self.config, self.widenings = config, 0
        self._rng = np.random.default_rng()

    @property
    def spread(self) -> float | None:
        """The current half-width (rad) of the start angles; None once starts are the task's own."""
        spread = self.config.start_spread + self.widenings * self.config.widen_by
        return spread if spread < math.pi else None

    def record(self, episode_return: float) -> None:
        """Widen after a training episode whose return exceeds the threshold."""
        if self.spread is not None and episode_return > self.config.widen_when_return_above:
            self.widenings += 1

    def replay(self, returns: list[float]) -> None:
        """Rebuild the stage from the training returns so far (a resumed run)."""
        self.widenings = 0
        for value in returns:
            self.record(value)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset with the start angle drawn from the stage, from a stream derived from ``seed``
        (the same seed gives the same start, as a replayed episode needs)."""
        spread = self.spread
        if spread is None:
            return self.env.reset(seed=seed, options=options)
        rng = np.random.default_rng([seed, 0x5EED]) if seed is not None else self._rng
        return self.env.reset(seed=seed, options={**(options or {}), "theta": float(rng.uniform(-spread, spread))})


def with_curriculum(env: gym.Env, config: CurriculumConfig) -> gym.Env:
    """``env`` wrapped in :class:`StartCurriculum` when ``config`` has one (``env`` itself
    otherwise); a ValueError naming ``curriculum.start_spread`` for an environment without a pole angle."""
    if not config.enabled:
        return env
    if not isinstance(env.unwrapped, CURRICULUM_ENVS):
        raise ValueError(f"curriculum.start_spread needs cartpole-swingup or pendulum-swingup (a pole whose start "
                         f"angle can be set), got {type(env.unwrapped).__name__}")
    return StartCurriculum(env, config)
