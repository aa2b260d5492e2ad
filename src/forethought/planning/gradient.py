"""Gradient-based trajectory optimisation: Adam on the action sequences through a differentiable
objective (a differentiable model and reward).

A small population of sequences (restarts) is optimised in parallel; because each sequence's
score depends only on that sequence, the gradient of the summed scores gives every restart its
own gradient in one backward pass. (An objective that couples the sequences, e.g. by normalising
scores across the population, would mix them.)

Actions are parametrised in normalised units, ``action = start + half_range * u`` with ``u = 0`` at
the start, so ``learning_rate`` is a fraction of the half-range whatever the units; after every
Adam step ``u`` is clamped back into the box that keeps the actions inside the bounds (projected
gradient ascent). Unlike tanh squashing, this lets a sequence reach a bound exactly when the
optimum lies on or beyond it. Box action spaces only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import torch

from forethought.planning.optimizer import BestSoFar, Objective, SearchResult, TrajectoryOptimizer, evaluate
from forethought.planning.settings import check_int, check_positive


@dataclass
class GradientSettings:
    """Settings of :class:`GradientOptimizer`.

    Attributes:
        population: restarts optimised together, ``>= 1``. The first restart is the start
            sequence (``initial`` or the shifted previous plan) when there is one; the others
            start uniformly at random inside the bounds.
        iterations: Adam steps, ``>= 1``.
        learning_rate: Adam step size in normalised units (1 = half the action range), ``> 0``.
        tolerance: stop early once no action moves by more than this (action units, > 0) in a
            step; None always runs ``iterations``.
    """

    population: int = 8
    iterations: int = 50
    learning_rate: float = 0.05
    tolerance: float | None = None

    def __post_init__(self) -> None:
        check_int("population", self.population)
        check_int("iterations", self.iterations)
        check_positive("learning_rate", self.learning_rate)
        if self.tolerance is not None:
            check_positive("tolerance", self.tolerance)


class GradientOptimizer(TrajectoryOptimizer):
    """Adam on ``population`` restarts of an ``[H, act_dim]`` sequence; returns the best scored.
    Its settings are :class:`GradientSettings`.

    The objective must be differentiable: its output must require grad (it is called with grad
    enabled even inside ``torch.no_grad()``). Vetoed (``-inf``) sequences are left where they are.
    """

    name = "gradient"
    settings_class = GradientSettings
    needs_gradients = True

    def __init__(self, action_space: gym.spaces.Box, horizon: int, *, generator: torch.Generator | None = None,
                 settings: GradientSettings | None = None, **overrides) -> None:
        super().__init__(action_space, horizon, generator=generator, settings=settings, **overrides)
        s = self.settings
        self.population, self.iterations, self.learning_rate = s.population, s.iterations, float(s.learning_rate)
        self.tolerance = None if s.tolerance is None else float(s.tolerance)
        self._half = self.bounds.range / 2.0
        self._unit = torch.where(self._half > 0, self._half, torch.ones_like(self._half))  # no division by 0

    def _start_state(self, initial: torch.Tensor | None) -> torch.Tensor | None:
        return initial

    def _fresh_state_step(self) -> torch.Tensor:
        return self.bounds.centre

    def _search(self, objective: Objective, start: torch.Tensor | None) -> SearchResult:
        first = self.bounds.uniform((self.population, self.horizon), self.generator)
        if start is not None:
            first[0] = start
        first = self._seeded(first)
        # u is the normalised move away from the first sequences; its box keeps the actions in bounds.
        u_low, u_high = (self.bounds.low - first) / self._unit, (self.bounds.high - first) / self._unit
        u = torch.zeros_like(first, requires_grad=True)

        def actions(u: torch.Tensor) -> torch.Tensor:
            """``[P, H, a]`` actions: exactly the first sequences at u = 0 and exactly on a bound at
            the edge of u's box (where rounding could miss it), with the gradient of the linear map."""
            linear = first + self._half * u
            snapped = torch.where(u >= u_high, self.bounds.high, torch.where(u <= u_low, self.bounds.low, linear))
            return snapped.detach() + (linear - linear.detach())  # the added term is exactly 0

        adam = torch.optim.Adam([u], lr=self.learning_rate)
        best, converged, steps = BestSoFar(), False, 0
        with torch.enable_grad():
            for steps in range(1, self.iterations + 1):
                sequences = actions(u)
                scores = evaluate(objective, sequences, keep_graph=True)
                if not scores.requires_grad:
                    raise TypeError("the objective's output does not require grad, so the gradient optimiser "
                                    "cannot differentiate it: compute the scores with torch operations on the "
                                    "given actions (no torch.no_grad(), .detach() or NumPy)")
                best.update(sequences.detach(), scores.detach())
                kept = scores.detach() > -math.inf
                adam.zero_grad()
                (-torch.where(kept, scores, torch.zeros_like(scores)).sum()).backward()
                if u.grad is None:
                    raise TypeError("the objective's output does not depend on the actions it was given, so "
                                    "the gradient optimiser has nothing to follow")
                u.grad[~kept] = 0.0  # a vetoed sequence has no useful gradient
                if not torch.isfinite(u.grad).all():
                    raise ValueError("the gradient of the objective's output with respect to the actions is "
                                     "not finite (NaN or inf)")
                before = u.detach().clone()
                adam.step()
                with torch.no_grad():
                    u.copy_(torch.minimum(torch.maximum(u, u_low), u_high))
                moved = float(((u.detach() - before).abs() * self._half).max())
                if self.tolerance is not None and moved < self.tolerance:
                    converged = True
                    break
        with torch.no_grad():
            final = actions(u.detach())
            best.update(final, evaluate(objective, final))
        info = {"iterations": steps, "evaluations": (steps + 1) * first.shape[0], "converged": converged,
                "last_step": moved, "vetoed": int((~kept).sum())}
        return SearchResult(best.sequence, best.score, best.sequence, info)
