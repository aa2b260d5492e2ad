"""Model predictive path integral control (MPPI, Williams et al., 2017), as a trajectory optimiser.

Each iteration perturbs the nominal sequence with Gaussian noise, scores the perturbed sequences
and moves the nominal to their average weighted by ``softmax(score / temperature)``. A small
temperature trusts the best samples; a large one averages more evenly. The temperature is in the
objective's units, so it has to be chosen for the objective's scale.

Choices, stated once:

- Perturbed sequences are clipped to the bounds and the nominal becomes the weighted average of
  the clipped sequences, so it always lies inside the bounds.
- The unperturbed nominal is one of the scored sequences (it replaces one noisy draw).
- The returned sequence is the final nominal (the weighted average), not the single best sample;
  ``last_info["best_score"]`` is the highest score among the sampled sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import torch

from forethought.planning.optimizer import BestSoFar, Objective, SearchResult, TrajectoryOptimizer, action_std, evaluate
from forethought.planning.settings import check_int, check_positive, check_std


def softmax_weights(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[P]`` float64 weights ``softmax(scores / temperature)``, computed after subtracting the
    largest score so no exponent overflows whatever the scores' size or the temperature. Vetoed
    (``-inf``) scores get weight 0; if every score is vetoed the weights are uniform."""
    scores = scores.to(torch.float64)
    top = scores.max()
    if top == -math.inf:
        return torch.full_like(scores, 1.0 / scores.shape[0])
    weights = torch.exp((scores - top) / temperature)  # the best gets exp(0) = 1, so the sum is >= 1
    return weights / weights.sum()


@dataclass
class MPPISettings:
    """Settings of :class:`MPPI`.

    Attributes:
        population: perturbed sequences scored per iteration, ``>= 1``.
        temperature: softmax temperature in the objective's units, ``> 0``.
        noise_std: perturbation std in action units, a number or one per action dimension (each
            > 0); None: a quarter of the range.
        iterations: weighted updates per call, ``>= 1`` (1: classic MPPI, where the warm start
            carries the nominal from one control step to the next).
    """

    population: int = 500
    temperature: float = 1.0
    noise_std: float | list[float] | None = None
    iterations: int = 1

    def __post_init__(self) -> None:
        check_int("population", self.population)
        check_positive("temperature", self.temperature)
        check_std("noise_std", self.noise_std)
        check_int("iterations", self.iterations)


class MPPI(TrajectoryOptimizer):
    """MPPI over ``[H, act_dim]`` sequences in a Box action space; its settings are :class:`MPPISettings`."""

    name = "mppi"
    settings_class = MPPISettings

    def __init__(self, action_space: gym.spaces.Box, horizon: int, *, generator: torch.Generator | None = None,
                 settings: MPPISettings | None = None, **overrides) -> None:
        super().__init__(action_space, horizon, generator=generator, settings=settings, **overrides)
        s = self.settings
        self.population, self.temperature, self.iterations = s.population, float(s.temperature), s.iterations
        self.noise_std = action_std("noise_std", s.noise_std, self.bounds)

    def _start_state(self, initial: torch.Tensor | None) -> torch.Tensor:
        return initial.clone() if initial is not None else self.bounds.centre.expand(self.horizon, -1).clone()

    def _fresh_state_step(self) -> torch.Tensor:
        return self.bounds.centre

    def _search(self, objective: Objective, nominal: torch.Tensor) -> SearchResult:
        best, proposed = BestSoFar(), 0 if self._proposals is None else self._proposals.shape[0]
        for _ in range(self.iterations):
            noise = torch.randn((self.population, self.horizon, self.act_dim), generator=self.generator,
                                device=nominal.device)
            samples = self.bounds.project(nominal + self.noise_std * noise)
            samples[0] = nominal
            samples = self._seeded(samples)
            scores = evaluate(objective, samples)
            best.update(samples, scores)
            weights = softmax_weights(scores, self.temperature)
            nominal = self.bounds.project(torch.einsum("p,pha->ha", weights, samples.double()).float())
        info = {"iterations": self.iterations, "evaluations": self.iterations * self.population + proposed,
                "converged": False, "effective_samples": float(1.0 / weights.pow(2).sum()),
                "vetoed": int((scores == -math.inf).sum())}
        return SearchResult(nominal, best.score, nominal, info)
