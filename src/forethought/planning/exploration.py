"""Exploration by model disagreement: an intrinsic reward for going where the model is unsure.

The *spread* of a transition is the members' disagreement about its next state, in units of a
typical one-step change: with ``std_d`` the standard deviation of the members' mean predictions in
dimension ``d`` (``sqrt(Prediction.epistemic_var)``) and ``sigma_d = model.delta_scale()[d]``,

    spread = mean over d of std_d / sigma_d

(0 for a model that reports no epistemic variance). An explorer earns ``beta * spread`` on top of
the task's reward at every imagined step: the MPC planners through
``PlannerConfig.exploration_bonus`` (the spread along each candidate's expected trajectory, see
:mod:`forethought.planning.rollout`), MBPO and Dyna on every imagined transition
(``exploration_bonus`` in their configs, Plan2Explore's disagreement reward). ``beta`` is annealed
linearly to 0 over the first ``anneal_steps`` real environment steps (None: kept), so the agent
explores while its model is poor and exploits once the data covers what matters.
"""

from __future__ import annotations

import math

import torch

from forethought.models.base import DynamicsModel

__all__ = ["annealed_bonus", "check_dims", "check_exploration", "transition_spread"]


def check_exploration(bonus: float, anneal_steps: int | None, prefix: str = "") -> None:
    """ValueError naming ``{prefix}exploration_bonus`` unless it is a finite number >= 0, or
    ``{prefix}exploration_anneal_steps`` unless it is None or an integer >= 1."""
    if isinstance(bonus, bool) or not isinstance(bonus, (int, float)) or not math.isfinite(bonus) or bonus < 0:
        raise ValueError(f"{prefix}exploration_bonus must be a finite number >= 0 (0: no exploration bonus), "
                         f"got {bonus!r}")
    if anneal_steps is not None and (isinstance(anneal_steps, bool) or not isinstance(anneal_steps, int)
                                     or anneal_steps < 1):
        raise ValueError(f"{prefix}exploration_anneal_steps must be None (keep the bonus) or an integer >= 1 "
                         f"(real environment steps over which it falls to 0), got {anneal_steps!r}")


def check_dims(dims: list[int] | None, obs_dim: int | None, name: str) -> list[int] | None:
    """``dims`` unless it is not None and not a non-empty list of distinct observation indices
    (``0 <= i < obs_dim``, unchecked when ``obs_dim`` is None): a ValueError naming ``name``."""
    if dims is None:
        return None
    ok = (isinstance(dims, (list, tuple)) and len(dims) > 0 and len(set(dims)) == len(dims)
          and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in dims))
    if not ok or (obs_dim is not None and max(dims) >= obs_dim):
        limit = "" if obs_dim is None else f" below the observation size {obs_dim}"
        raise ValueError(f"{name} must be None (every dimension) or a non-empty list of distinct observation "
                         f"indices >= 0{limit}, got {dims!r}")
    return list(dims)


def annealed_bonus(bonus: float, anneal_steps: int | None, env_steps: int) -> float:
    """``bonus`` after ``env_steps`` real steps: falling linearly to 0 at ``anneal_steps``
    (``bonus`` itself when ``anneal_steps`` is None)."""
    if anneal_steps is None or bonus == 0:
        return float(bonus)
    return float(bonus) * max(0.0, 1.0 - env_steps / anneal_steps)


def transition_spread(model: DynamicsModel, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The members' disagreement ``[B]`` about the next state of obs ``[B, o]`` under action
    ``[B, a]`` (see the module docstring), on the model's device, without gradients."""
    with torch.no_grad():
        variance = model.predict(obs, action).epistemic_var
        if variance is None:
            return torch.zeros(obs.shape[0], device=model.device)
        return (variance.clamp_min(0.0).sqrt() / model.delta_scale()).mean(dim=-1)
