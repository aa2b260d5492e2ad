"""Random shooting: score ``population`` uniformly drawn sequences, keep the best."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch

from forethought.planning.optimizer import BestSoFar, Objective, SearchResult, TrajectoryOptimizer, evaluate
from forethought.planning.settings import check_int


@dataclass
class RandomSettings:
    """Settings of :class:`RandomShooting`: ``population``, the sequences scored per call (``>= 1``)."""

    population: int = 1000

    def __post_init__(self) -> None:
        check_int("population", self.population)


class RandomShooting(TrajectoryOptimizer):
    """Best of ``population`` sequences drawn uniformly inside the bounds (uniform indices for a
    Discrete space), scored in one objective call; its settings are :class:`RandomSettings`.

    A start sequence (``initial``, or the shifted previous best in :meth:`plan`) takes the place
    of the first random draw, so a warm-started plan is never worse than the shifted old one.
    The step appended when shifting is drawn at random.
    """

    name = "random"
    settings_class = RandomSettings
    supports_discrete = True

    def __init__(self, action_space: gym.spaces.Box | gym.spaces.Discrete, horizon: int, *,
                 generator: torch.Generator | None = None, settings: RandomSettings | None = None,
                 **overrides) -> None:
        super().__init__(action_space, horizon, generator=generator, settings=settings, **overrides)
        self.population = self.settings.population

    def _start_state(self, initial: torch.Tensor | None) -> torch.Tensor | None:
        return initial

    def _fresh_state_step(self) -> torch.Tensor:
        return self.bounds.uniform((), self.generator)

    def _search(self, objective: Objective, state: torch.Tensor | None) -> SearchResult:
        sequences = self.bounds.uniform((self.population, self.horizon), self.generator)
        if state is not None:
            sequences[0] = state
        sequences = self._seeded(sequences)
        scores = evaluate(objective, sequences)
        best = BestSoFar()
        best.update(sequences, scores)
        info = {"iterations": 1, "evaluations": sequences.shape[0], "converged": False,
                "vetoed": int((scores == -float("inf")).sum())}
        return SearchResult(best.sequence, best.score, best.sequence, info)
