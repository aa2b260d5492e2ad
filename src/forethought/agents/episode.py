"""Run one episode of a policy in a real environment, recording every transition."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import gymnasium as gym
import numpy as np

from forethought.data.buffer import ReplayBuffer

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class Episode:
    """What one episode produced: total reward, number of steps, and (when rendering) RGB frames."""

    total_reward: float
    steps: int
    frames: list[np.ndarray] = field(default_factory=list)


def run_episode(env: gym.Env, policy: Policy, seed: int | None = None, buffer: ReplayBuffer | None = None,
                render: bool = False, max_steps: int | None = None) -> Episode:
    """Step ``env`` with ``policy`` from ``reset(seed=seed)`` until termination, truncation or
    ``max_steps``; append each transition to ``buffer`` when given (the last one of an episode
    ``max_steps`` cut short is stored as truncated); collect ``env.render()`` frames when ``render``
    (the env must have ``render_mode="rgb_array"``)."""
    obs, _ = env.reset(seed=seed)
    episode = Episode(0.0, 0)
    if render:
        episode.frames.append(env.render())
    while max_steps is None or episode.steps < max_steps:
        action = policy(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        if buffer is not None:
            cut = max_steps is not None and episode.steps + 1 >= max_steps
            buffer.add(np.ravel(obs), np.ravel(action), float(reward), np.ravel(next_obs), terminated,
                       truncated or cut)
        episode.total_reward += float(reward)
        episode.steps += 1
        if render:
            episode.frames.append(env.render())
        obs = next_obs
        if terminated or truncated:
            break
    return episode


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of a run seeded ``seed``: distinct runs draw unrelated
    start states (``seed + episode`` would give run 1 the starts of run 0 shifted by one)."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def random_policy(action_space: gym.Space) -> Policy:
    """Uniform random actions from ``action_space`` (seed the space for reproducibility)."""
    return lambda obs: action_space.sample()
