"""Collect real transitions from a Gymnasium environment into a :class:`ReplayBuffer`."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from forethought.data.buffer import ReplayBuffer
from forethought.progress import ProgressBar

Policy = Callable[[np.ndarray], np.ndarray]


def flat_dim(space: gym.Space) -> int:
    """Length of the vector a Box (or Discrete, as one index) space is stored as."""
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Discrete):
        return 1
    raise TypeError(f"only Box and Discrete spaces can be stored, got {space}")


def check_env_sizes(source: str, obs_dim: int, act_dim: int, env: gym.Env) -> None:
    """ValueError unless transitions of ``obs_dim``/``act_dim`` (from ``source``, named in the
    message) fit ``env``'s observation and action spaces."""
    expected = flat_dim(env.observation_space), flat_dim(env.action_space)
    if (obs_dim, act_dim) != expected:
        raise ValueError(f"{source} has obs/action sizes {obs_dim}/{act_dim}, but {type(env.unwrapped).__name__} "
                         f"has {expected[0]}/{expected[1]}")


def collect(env: gym.Env, steps: int, seed: int, policy: Policy | None = None,
            buffer: ReplayBuffer | None = None, progress: bool = False) -> ReplayBuffer:
    """Step ``env`` for ``steps`` transitions and store them; episodes restart on termination or
    truncation.

    Args:
        env: the environment (its action space is seeded with ``seed`` for random actions).
        steps: number of transitions to record.
        seed: seeds the first ``reset`` and the random-action sampler.
        policy: maps an observation to an action; ``None`` samples uniformly from the action space.
        buffer: buffer to append to (a new one sized from the env's spaces if ``None``).
        progress: show a live progress bar.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if buffer is None:
        buffer = ReplayBuffer(flat_dim(env.observation_space), flat_dim(env.action_space))
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    with ProgressBar(progress, steps, f"collecting {steps} transitions") as bar:
        for _ in range(steps):
            action = env.action_space.sample() if policy is None else policy(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buffer.add(np.ravel(obs), np.ravel(action), float(reward), np.ravel(next_obs), terminated, truncated)
            obs = next_obs
            if terminated or truncated:
                obs, _ = env.reset()
            bar.advance()
    return buffer
