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


def collect(env: gym.Env | gym.vector.VectorEnv, steps: int, seed: int, policy: Policy | None = None,
            buffer: ReplayBuffer | None = None, progress: bool = False) -> ReplayBuffer:
    """Step ``env`` for ``steps`` transitions and store them; episodes restart on termination or
    truncation.

    Args:
        env: the environment (its action space is seeded with ``seed`` for random actions), or
            several copies of it in a vector environment (:func:`~forethought.envs.make_vector`):
            copy ``i`` is reset with ``seed + i``, the copies share the ``steps`` evenly, and each
            copy's transitions are stored together, in order, its last episode marked truncated
            (the budget cut it), so episodes stay contiguous in the buffer.
        steps: number of transitions to record (all copies together).
        seed: seeds the first ``reset`` and the random-action sampler.
        policy: maps an observation to an action (for a vector environment: ``[N, ...]``
            observations to ``[N, ...]`` actions); ``None`` samples uniformly from the action space.
        buffer: buffer to append to (a new one sized from the env's spaces if ``None``).
        progress: show a live progress bar.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if isinstance(env, gym.vector.VectorEnv):
        return _collect_vector(env, steps, seed, policy, buffer, progress)
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


def _collect_vector(env: gym.vector.VectorEnv, steps: int, seed: int, policy: Policy | None,
                    buffer: ReplayBuffer | None, progress: bool) -> ReplayBuffer:
    """:func:`collect` over the copies of a vector environment (same-step autoreset)."""
    if env.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.SAME_STEP:
        raise ValueError("collect needs a vector environment with same-step autoreset (the final observation of an "
                         "ended episode in info['final_obs']): build it with forethought.envs.make_vector, got "
                         f"autoreset mode {env.metadata.get('autoreset_mode')}")
    copies = env.num_envs
    if buffer is None:
        buffer = ReplayBuffer(flat_dim(env.single_observation_space), flat_dim(env.single_action_space))
    quota = [steps // copies + (i < steps % copies) for i in range(copies)]
    rows: list[list[tuple]] = [[] for _ in range(copies)]
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    with ProgressBar(progress, steps, f"collecting {steps} transitions in {copies} copies") as bar:
        while any(len(r) < q for r, q in zip(rows, quota)):
            action = env.action_space.sample() if policy is None else policy(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            ended = info.get("_final_obs", np.zeros(copies, dtype=bool))
            for i in range(copies):
                if len(rows[i]) < quota[i]:
                    stored_next = info["final_obs"][i] if ended[i] else next_obs[i]
                    rows[i].append((np.ravel(obs[i]), np.ravel(action[i]), float(reward[i]), np.ravel(stored_next),
                                    bool(terminated[i]), bool(truncated[i])))
                    bar.advance()
            obs = next_obs
    for copy_rows in rows:
        for k, (o, a, r, n, term, trunc) in enumerate(copy_rows):
            last = k == len(copy_rows) - 1
            buffer.add(o, a, r, n, term, trunc or (last and not term))
    return buffer
