"""Improved cross-entropy method (iCEM, Pinneri et al., 2020).

CEM with four changes that buy the same plan quality from fewer samples:

- **Coloured noise.** Sample perturbations are time-correlated: white noise filtered to a power
  spectrum ``1 / f^beta`` (``beta = 0`` is white noise, ``beta = 2`` is smooth, low-frequency
  noise that suits robot control).
- **Shrinking population.** Iteration ``i`` (from 0) samples
  ``max(min_population, population * decay^-i)`` sequences.
- **Kept elites.** A ``keep_fraction`` of each iteration's elites is scored again in the next
  iteration, and in :meth:`plan` the previous call's elites, shifted one step, join the first
  iteration.
- **The mean is a candidate** in the last scheduled iteration, so a converged distribution's
  centre can be returned.

Box action spaces only. The returned sequence is the best one scored; the next plan starts from
the final mean shifted one step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import torch

from forethought.planning.cem import CEM, CEMSettings
from forethought.planning.optimizer import BestSoFar, Objective, SearchResult, evaluate, shift_steps
from forethought.planning.settings import check_fraction, check_int, check_nonnegative, check_positive


def colored_noise(count: int, horizon: int, act_dim: int, beta: float, generator: torch.Generator) -> torch.Tensor:
    """``[count, horizon, act_dim]`` Gaussian noise with power spectrum ``~ 1 / f^beta`` along the
    horizon, independent across sequences and action dimensions.

    White noise is transformed with an FFT, each frequency scaled by ``f^(-beta / 2)`` (the
    constant component gets the scale of the lowest non-zero frequency, ``1 / horizon``) and
    transformed back. The result is divided by the filter's root-mean-square gain, so every
    entry has variance exactly 1 in expectation. (Dividing each sequence by its own sample std
    instead would turn a one-step horizon into +-1 coin flips and inflate sequences that happen
    to be nearly constant.)
    """
    white = torch.randn((count, act_dim, horizon), generator=generator, device=generator.device)
    frequencies = torch.fft.rfftfreq(horizon, device=white.device)
    frequencies[0] = 1.0 / horizon
    scale = frequencies ** (-beta / 2.0)  # [horizon // 2 + 1]
    noise = torch.fft.irfft(torch.fft.rfft(white, dim=-1) * scale, n=horizon, dim=-1)
    bins = torch.arange(horizon, device=white.device)
    full_spectrum = scale[torch.minimum(bins, horizon - bins)]  # the gain of every one of the H DFT bins
    return (noise / full_spectrum.pow(2).mean().sqrt()).transpose(1, 2)


@dataclass
class ICEMSettings(CEMSettings):
    """Settings of :class:`ICEM` (defaults: what PETS plans with; its measured returns are in
    :class:`~forethought.agents.pets.PETSConfig`).

    Attributes:
        population: sequences sampled in the first iteration, ``>= 1``.
        elites: elites per iteration, ``1 <= elites <= population``.
        iterations: iterations per call, ``>= 1``.
        momentum, init_std, min_std, stop_std: as in :class:`~forethought.planning.cem.CEMSettings`.
        beta: coloured-noise exponent, ``>= 0``.
        decay: population shrink factor per iteration, ``>= 1``.
        min_population: smallest number of fresh samples in an iteration, between ``elites`` and
            ``population``; None: ``min(population, 2 * elites)``.
        keep_fraction: share of the elites carried to the next iteration and the next plan, in
            ``[0, 1]``.
    """

    population: int = 100
    elites: int = 10
    iterations: int = 3
    beta: float = 2.0
    decay: float = 1.25
    min_population: int | None = None
    keep_fraction: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_nonnegative("beta", self.beta)
        check_positive("decay", self.decay)
        if self.decay < 1.0:
            raise ValueError(f"decay must be >= 1 (the population shrinks by this factor), got {self.decay!r}")
        if self.min_population is not None:
            check_int("min_population", self.min_population, minimum=self.elites)
            if self.min_population > self.population:
                raise ValueError(f"min_population must be between elites ({self.elites}) and population "
                                 f"({self.population}), got {self.min_population}")
        check_fraction("keep_fraction", self.keep_fraction, include_one=True)


class ICEM(CEM):
    """iCEM over ``[H, act_dim]`` sequences in a Box action space; its settings are
    :class:`ICEMSettings`."""

    name = "icem"
    settings_class = ICEMSettings
    supports_discrete = False

    def __init__(self, action_space: gym.spaces.Box, horizon: int, *, generator: torch.Generator | None = None,
                 settings: ICEMSettings | None = None, **overrides) -> None:
        super().__init__(action_space, horizon, generator=generator, settings=settings, **overrides)
        s = self.settings
        self.beta, self.decay, self.keep_fraction = float(s.beta), float(s.decay), float(s.keep_fraction)
        self.min_population = s.min_population if s.min_population is not None else min(self.population,
                                                                                         2 * self.elites)
        self.keep_count = int(round(self.keep_fraction * self.elites))
        self._elites: torch.Tensor | None = None
        self._carried: torch.Tensor | None = None

    def population_size(self, iteration: int) -> int:
        """Fresh samples in iteration ``iteration`` (counting from 0)."""
        return max(self.min_population, int(round(self.population * self.decay ** -iteration)))

    def plan(self, objective: Objective, proposals: torch.Tensor | None = None) -> torch.Tensor:
        if self._warm is not None and self._elites is not None and self.keep_count > 0:
            self._carried = shift_steps(self._elites[: self.keep_count], self._fresh_state_step())
        try:
            return super().plan(objective, proposals)
        finally:
            self._carried = None

    def reset(self) -> None:
        super().reset()
        self._elites = None

    def _search_box(self, objective: Objective, mean: torch.Tensor) -> SearchResult:
        std = self.init_std.expand(self.horizon, -1).clone()
        best, converged, iteration, evaluations, sizes = BestSoFar(), False, 0, 0, []
        kept = self._carried  # unclipped draws of the elites carried into this iteration
        for iteration in range(1, self.iterations + 1):
            noise = colored_noise(self.population_size(iteration - 1), self.horizon, self.act_dim, self.beta,
                                  self.generator)
            parts = [mean + std * noise]
            if kept is not None and kept.shape[0] > 0:
                parts.append(kept)
            if iteration == self.iterations:
                parts.append(mean.unsqueeze(0))
            raw = self._seeded(torch.cat(parts))
            samples = self.bounds.project(raw)
            scores = evaluate(objective, samples)
            evaluations += samples.shape[0]
            sizes.append(samples.shape[0])
            best.update(samples, scores)
            order = torch.topk(scores, self.elites).indices  # best first
            kept, elite = raw[order[: self.keep_count]], samples[order]
            mean, std = self._refit(raw[order], mean, std)
            if self.stop_std is not None and float(std.max()) < self.stop_std:
                converged = True
                break
        self._elites = elite
        info = {"iterations": iteration, "evaluations": evaluations, "converged": converged,
                "final_std": float(std.max()), "population_sizes": sizes,
                "vetoed": int((scores == -math.inf).sum())}
        return SearchResult(best.sequence, best.score, self.bounds.project(mean), info)
