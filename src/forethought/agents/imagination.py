"""Experience imagined in a learned model: branched rollouts under a policy, and batches that mix
real and imagined transitions (shared by Dyna and MBPO)."""

from __future__ import annotations

from typing import Callable

import torch

from forethought.data.buffer import FIELDS, ReplayBuffer, TransitionBatch
from forethought.envs.task_functions import TaskFunctions
from forethought.models.base import DynamicsModel


def imagine(model: DynamicsModel, task: TaskFunctions, policy: Callable[[torch.Tensor], torch.Tensor],
            start_obs: torch.Tensor, length: int, generator: torch.Generator) -> TransitionBatch:
    """Transitions of ``length``-step model rollouts from ``start_obs [N, o]`` under ``policy``
    (``[B, o] -> [B, a]`` env-unit actions), rewards and terminations from ``task``. A rollout stops
    after its first terminal transition; at most ``N * length`` rows, step by step."""
    obs, alive, steps = start_obs, torch.ones(start_obs.shape[0], dtype=torch.bool), []
    with torch.no_grad():
        for _ in range(length):
            action = policy(obs)
            next_obs = model.sample(obs, action, generator)
            reward = task.reward(obs, action, next_obs)
            terminated = task.termination(obs, action, next_obs)
            steps.append(TransitionBatch(obs, action, reward, next_obs, terminated, torch.zeros_like(terminated))[alive])
            alive = alive & ~terminated
            if not alive.any():
                break
            obs = next_obs
    return concatenate(*steps)


def concatenate(*batches: TransitionBatch) -> TransitionBatch:
    """One batch holding the rows of ``batches`` in order."""
    return TransitionBatch(*(torch.cat([getattr(b, name) for b in batches]) for name in FIELDS))


def mixed_batch(real: ReplayBuffer, imagined: ReplayBuffer, size: int, real_fraction: float,
                generator: torch.Generator) -> TransitionBatch:
    """``size`` transitions: ``round(size * real_fraction)`` drawn from ``real``, the rest from
    ``imagined`` (all from ``real`` while ``imagined`` is empty)."""
    real_rows = size if len(imagined) == 0 else round(size * real_fraction)
    parts = [real.sample(real_rows, generator)] if real_rows else []
    if real_rows < size:
        parts.append(imagined.sample(size - real_rows, generator))
    return concatenate(*parts)
