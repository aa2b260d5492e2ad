"""Cross-entropy method, as PETS (Chua et al., 2018) plans with it.

Each iteration samples ``population`` sequences from a per-step Gaussian, scores them, and refits
the Gaussian to the ``elites`` best, smoothed towards the previous fit:
``new = momentum * old + (1 - momentum) * elite_statistic`` for the mean and the std.

Choices, stated once:

- The first Gaussian is centred on the middle of the action range with a std of a quarter of the
  range (so +-2 std spans it), as in PETS.
- Samples are clipped to the bounds rather than drawn from a truncated normal, and the Gaussian
  is refitted to the elites' unclipped draws. The mean may then move past a bound, so that most
  draws clip onto it: when the optimum lies on or beyond a bound, the returned plan sits exactly
  on it (a truncated normal, or a refit on clipped values, only approaches the bound).
- The current mean (clipped) is always one of the scored sequences (it replaces one random
  draw), so the result is never worse than the distribution's centre.
- The returned sequence is the best one scored over all iterations; the warm start for the next
  :meth:`~TrajectoryOptimizer.plan` is the final mean (shifted), as in PETS.

For a Discrete space the per-step distribution is categorical: probability vectors ``[H, n]``
refitted on the elites' action frequencies with the same ``momentum`` smoothing, starting uniform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import torch

from forethought.planning.optimizer import BestSoFar, Objective, SearchResult, TrajectoryOptimizer, action_std, evaluate
from forethought.planning.settings import check_fraction, check_int, check_nonnegative, check_positive, check_std


@dataclass
class CEMSettings:
    """Settings of :class:`CEM` (defaults: PETS's CEM).

    Attributes:
        population: sequences scored per iteration, ``>= 1``.
        elites: best sequences the distribution is refitted to, ``1 <= elites <= population``.
        iterations: refits per call, ``>= 1``.
        momentum: weight ``alpha`` of the old mean/std (or probabilities) in the refit, in ``[0, 1)``.
        init_std: std of the first Gaussian in action units, a number or one per action
            dimension (each > 0); None: a quarter of the range. Box only.
        min_std: floor on the refitted std in action units, ``>= 0``. Box only.
        stop_std: stop early once every step's std (for Discrete: the std of the action index)
            is below this (> 0); None always runs ``iterations``. Recorded as
            ``last_info["converged"]``.
    """

    population: int = 350
    elites: int = 35
    iterations: int = 5
    momentum: float = 0.1
    init_std: float | list[float] | None = None
    min_std: float = 1e-3
    stop_std: float | None = None

    def __post_init__(self) -> None:
        check_int("population", self.population)
        check_int("elites", self.elites)
        if self.elites > self.population:
            raise ValueError(f"elites must be between 1 and population ({self.population}), got {self.elites}")
        check_int("iterations", self.iterations)
        check_fraction("momentum", self.momentum)
        check_std("init_std", self.init_std)
        check_nonnegative("min_std", self.min_std)
        if self.stop_std is not None:
            check_positive("stop_std", self.stop_std)


class CEM(TrajectoryOptimizer):
    """Cross-entropy method over ``[H, act_dim]`` sequences (Box or Discrete); its settings are
    :class:`CEMSettings` (``CEM(space, 15, population=500)`` overrides one)."""

    name = "cem"
    settings_class = CEMSettings
    supports_discrete = True

    def __init__(self, action_space: gym.spaces.Box | gym.spaces.Discrete, horizon: int, *,
                 generator: torch.Generator | None = None, settings: CEMSettings | None = None, **overrides) -> None:
        super().__init__(action_space, horizon, generator=generator, settings=settings, **overrides)
        s = self.settings
        self.population, self.elites, self.iterations = s.population, s.elites, s.iterations
        self.momentum, self.min_std = float(s.momentum), float(s.min_std)
        self.stop_std = None if s.stop_std is None else float(s.stop_std)
        self.init_std = action_std("init_std", s.init_std, self.bounds)

    # ------------------------------------------------------------------ search state
    def _start_state(self, initial: torch.Tensor | None) -> torch.Tensor:
        if self.bounds.discrete:
            uniform = torch.full((self.horizon, self.bounds.n), 1.0 / self.bounds.n, device=self.bounds.low.device)
            if initial is None:
                return uniform
            # An initial index sequence gets half the probability mass at each step.
            chosen = torch.nn.functional.one_hot(initial[:, 0].long(), self.bounds.n).float()
            return 0.5 * uniform + 0.5 * chosen
        return initial.clone() if initial is not None else self.bounds.centre.expand(self.horizon, -1).clone()

    def _fresh_state_step(self) -> torch.Tensor:
        if self.bounds.discrete:
            return torch.full((self.bounds.n,), 1.0 / self.bounds.n, device=self.bounds.low.device)
        return self.bounds.centre

    def _search(self, objective: Objective, state: torch.Tensor) -> SearchResult:
        search = self._search_discrete if self.bounds.discrete else self._search_box
        return search(objective, state)

    # ------------------------------------------------------------------ Box
    def _search_box(self, objective: Objective, mean: torch.Tensor) -> SearchResult:
        std = self.init_std.expand(self.horizon, -1).clone()
        best, converged, iteration, evaluations = BestSoFar(), False, 0, 0
        for iteration in range(1, self.iterations + 1):
            noise = torch.randn((self.population, self.horizon, self.act_dim), generator=self.generator,
                                device=mean.device)
            raw = mean + std * noise
            raw[0] = mean
            raw = self._seeded(raw)
            samples = self.bounds.project(raw)
            scores = evaluate(objective, samples)
            evaluations += samples.shape[0]
            best.update(samples, scores)
            mean, std = self._refit(raw[torch.topk(scores, self.elites).indices], mean, std)
            if self.stop_std is not None and float(std.max()) < self.stop_std:
                converged = True
                break
        info = {"iterations": iteration, "evaluations": evaluations, "converged": converged,
                "final_std": float(std.max()), "vetoed": int((scores == -math.inf).sum())}
        return SearchResult(best.sequence, best.score, self.bounds.project(mean), info)

    def _refit(self, raw_elites: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """New mean and std ``[H, a]`` from the elites' unclipped draws ``[elites, H, a]``."""
        elite_std = raw_elites.std(dim=0, unbiased=False)
        return (torch.lerp(mean, raw_elites.mean(dim=0), 1.0 - self.momentum),
                torch.lerp(std, elite_std, 1.0 - self.momentum).clamp_min(self.min_std))

    # ------------------------------------------------------------------ Discrete
    def _search_discrete(self, objective: Objective, probs: torch.Tensor) -> SearchResult:
        n = self.bounds.n
        values = torch.arange(n, dtype=torch.float32, device=probs.device)
        best, converged, iteration, index_std = BestSoFar(), False, 0, math.nan
        for iteration in range(1, self.iterations + 1):
            indices = torch.multinomial(probs, self.population, replacement=True, generator=self.generator)  # [H, P]
            indices[:, 0] = probs.argmax(dim=-1)  # the most likely sequence is always a candidate
            samples = indices.T.unsqueeze(-1).float()
            scores = evaluate(objective, samples)
            best.update(samples, scores)
            elite = indices[:, torch.topk(scores, self.elites).indices]  # [H, elites]
            frequency = torch.nn.functional.one_hot(elite, n).float().mean(dim=1)  # [H, n]
            probs = torch.lerp(probs, frequency, 1.0 - self.momentum)
            index_mean = (probs * values).sum(-1, keepdim=True)
            index_std = float((probs * (values - index_mean) ** 2).sum(-1).sqrt().max())
            if self.stop_std is not None and index_std < self.stop_std:
                converged = True
                break
        info = {"iterations": iteration, "evaluations": iteration * self.population, "converged": converged,
                "final_std": index_std, "vetoed": int((scores == -math.inf).sum())}
        return SearchResult(best.sequence, best.score, probs, info)
