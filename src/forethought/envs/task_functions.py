"""Reward and termination as batched torch functions of ``(obs, action, next_obs)``.

A planner scores imagined transitions with these, so every environment it plans on needs them.
Shapes: ``obs`` and ``next_obs`` ``[B, obs_dim]``, ``action`` ``[B, act_dim]``; a reward function
returns ``[B]`` floats, a termination function ``[B]`` bools. Register your own environment with
:func:`register_task_functions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from forethought.envs.cartpole_swingup import cartpole_swingup_reward
from forethought.envs.linear import quadratic_regulation_reward
from forethought.envs.make import GYMNASIUM_IDS
from forethought.envs.pendulum_swingup import pendulum_reward

RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# HalfCheetah-v5 rewards the finite-difference x velocity over its 5 physics substeps, which the
# observation does not contain; a least-squares fit over random-action rollouts weights the
# end-of-step velocity 0.69 and the start-of-step velocity 0.31 (linear interpolation would give 0.6).
HALF_CHEETAH_END_VELOCITY_WEIGHT = 0.7


def never_terminates(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``[B]`` all-False termination."""
    return torch.zeros(next_obs.shape[0], dtype=torch.bool, device=next_obs.device)


def linear_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """:class:`LinearSystemEnv` reward with its default weights ``Q = I``, ``R = 0.1 I``: ``[B]``."""
    return quadratic_regulation_reward(next_obs, action)


def inverted_pendulum_termination(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``InvertedPendulum-v5``: the pole angle ``next_obs[:, 1]`` leaves ``[-0.2, 0.2]`` rad, or
    the observation is not finite. Exact."""
    return ~torch.isfinite(next_obs).all(dim=-1) | (next_obs[:, 1].abs() > 0.2)


def inverted_pendulum_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``InvertedPendulum-v5``: 1 per step that does not terminate, 0 on the terminating one. Exact."""
    return (~inverted_pendulum_termination(obs, action, next_obs)).to(next_obs.dtype)


def half_cheetah_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``HalfCheetah-v5``: forward velocity minus ``0.1 |a|^2``. APPROXIMATE.

    The true forward term is ``(x_after - x_before) / dt``, not observable because the x position
    is excluded from the observation. It is estimated as ``0.3 v_before + 0.7 v_after`` from the
    root x velocity (observation index 8). Over random-action rollouts the error has a mean
    absolute value of about 0.06 (reward standard deviation about 0.7, correlation 0.99); the
    control cost is exact.
    """
    w = HALF_CHEETAH_END_VELOCITY_WEIGHT
    forward = (1.0 - w) * obs[:, 8] + w * next_obs[:, 8]
    return forward - 0.1 * (action**2).sum(dim=-1)


def reacher_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``Reacher-v5``: ``-|fingertip - target| - |a|^2``, the distance read from ``next_obs[:, 8:10]``
    (fingertip and target share a height, so the planar vector is the whole one). Exact for actions
    inside ``[-1, 1]``: the env charges the unclipped action, as this does."""
    return -torch.linalg.vector_norm(next_obs[:, 8:10], dim=-1) - (action**2).sum(dim=-1)


@dataclass(frozen=True)
class TaskFunctions:
    """An environment's batched ``reward`` (``[B]`` float) and ``termination`` (``[B]`` bool)."""

    reward: RewardFn
    termination: TerminationFn


_REGISTRY: dict[str, TaskFunctions] = {}


def register_task_functions(
    name: str, reward: RewardFn, termination: TerminationFn | None = None, overwrite: bool = False
) -> TaskFunctions:
    """Register task functions under ``name`` (an env name or Gymnasium id).

    Args:
        name: key later passed to :func:`task_functions`.
        reward: ``(obs [B, o], action [B, a], next_obs [B, o]) -> [B]`` float rewards.
        termination: same arguments ``-> [B]`` bools; None means the task never terminates.
        overwrite: replace an existing registration instead of raising.
    """
    if not callable(reward) or (termination is not None and not callable(termination)):
        raise TypeError(f"reward and termination must be callables, got {reward!r} and {termination!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"task functions for {name!r} are already registered; pass overwrite=True to replace them")
    functions = TaskFunctions(reward, termination if termination is not None else never_terminates)
    _REGISTRY[name] = functions
    return functions


def task_functions(name: str) -> TaskFunctions:
    """The registered :class:`TaskFunctions` for ``name``; ValueError naming the known ones if absent."""
    if name not in _REGISTRY:
        raise ValueError(
            f"no task functions registered for {name!r}; known: {sorted(_REGISTRY)}. Register yours "
            "with forethought.envs.register_task_functions(name, reward, termination)."
        )
    return _REGISTRY[name]


for _name, _reward in {
    "linear": linear_reward,
    "cartpole-swingup": cartpole_swingup_reward,
    "pendulum-swingup": pendulum_reward,
}.items():
    register_task_functions(_name, _reward)
    register_task_functions(GYMNASIUM_IDS[_name], _reward)
register_task_functions("Pendulum-v1", pendulum_reward)
register_task_functions("InvertedPendulum-v5", inverted_pendulum_reward, inverted_pendulum_termination)
register_task_functions("HalfCheetah-v5", half_cheetah_reward)
register_task_functions("Reacher-v5", reacher_reward)


def with_state_cost(task: TaskFunctions, weights: dict[int, float]) -> TaskFunctions:
    """``task`` with its reward lowered by ``sum_i weights[i] * next_obs[:, i]^2``: a planning cost
    for entries of the observation the task's reward ignores (e.g. keeping InvertedPendulum's cart
    away from the ends of its rail, which a flat alive-bonus gives a short-horizon planner no
    reason to do). The termination is unchanged."""
    if not weights:
        return task
    for index, weight in weights.items():
        if not isinstance(index, int) or index < 0 or not (float(weight) >= 0.0 and float(weight) < float("inf")):
            raise ValueError(f"state cost weights must map observation indices (ints >= 0) to finite weights >= 0, "
                             f"got {index!r}: {weight!r}")
    indices = torch.tensor(sorted(weights))
    scale = torch.tensor([float(weights[i]) for i in sorted(weights)])

    def reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        if int(indices.max()) >= next_obs.shape[-1]:
            raise ValueError(f"state cost names observation index {int(indices.max())}, but observations have "
                             f"{next_obs.shape[-1]} entries")
        cost = (next_obs.index_select(-1, indices.to(next_obs.device)) ** 2 * scale.to(next_obs)).sum(-1)
        return task.reward(obs, action, next_obs) - cost

    return TaskFunctions(reward, task.termination)
