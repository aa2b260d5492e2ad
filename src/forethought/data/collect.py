"""Collect real transitions from a Gymnasium environment into a :class:`ReplayBuffer`."""

from __future__ import annotations

from typing import Callable, Sequence

import gymnasium as gym
import numpy as np

from forethought.data.buffer import ReplayBuffer
from forethought.data.env_loop import EnvLoop, ReplayRecorder, random_policy
from forethought.progress import ProgressBar

Policy = Callable[[np.ndarray], np.ndarray]


def flat_dim(space: gym.Space) -> int:
    """Length of the vector a Box (or Discrete, as one index) space is stored as."""
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Discrete):
        return 1
    raise TypeError(f"only Box and Discrete spaces can be stored, got {space}; Dict and Tuple observations are "
                    f"flattened by forethought.envs.make (or gymnasium.wrappers.FlattenObservation)")


def check_env_sizes(source: str, obs_dim: int, act_dim: int, env: gym.Env) -> None:
    """ValueError unless transitions of ``obs_dim``/``act_dim`` (from ``source``, named in the
    message) fit ``env``'s observation and action spaces."""
    expected = flat_dim(env.observation_space), flat_dim(env.action_space)
    if (obs_dim, act_dim) != expected:
        raise ValueError(f"{source} has obs/action sizes {obs_dim}/{act_dim}, but {type(env.unwrapped).__name__} "
                         f"has {expected[0]}/{expected[1]}")


def collect(env: gym.Env | Sequence[gym.Env], steps: int, seed: int, policy: Policy | None = None,
            buffer: ReplayBuffer | None = None, progress: bool = False) -> ReplayBuffer:
    """Step ``env`` for ``steps`` transitions and store them; episodes restart on termination or
    truncation.

    Args:
        env: the environment, or several copies of it: copy ``i`` is reset with ``seed + i`` (and
            its action space seeded so), the copies share the ``steps`` evenly, and each copy's
            transitions are stored together, in order, so episodes stay contiguous.
        steps: number of transitions to record (all copies together); each copy's last episode is
            marked truncated where the budget cut it.
        seed: seeds the first ``reset`` and the random-action sampler.
        policy: maps an observation to an action; ``None`` samples uniformly from the action space.
        buffer: buffer to append to (a new one sized from the env's spaces if ``None``).
        progress: show a live progress bar.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if isinstance(env, gym.vector.VectorEnv):
        raise TypeError("collect takes an environment or a list of copies of it, not a vector environment")
    copies = [env] if isinstance(env, gym.Env) else list(env)
    if not copies:
        raise ValueError("collect needs at least one environment")
    if buffer is None:
        buffer = ReplayBuffer(flat_dim(copies[0].observation_space), flat_dim(copies[0].action_space))
    quota = [steps // len(copies) + (i < steps % len(copies)) for i in range(len(copies))]
    label = f"collecting {steps} transitions" + (f" in {len(copies)} copies" if len(copies) > 1 else "")
    with ProgressBar(progress, steps, label) as bar:
        for i, (copy, rows) in enumerate(zip(copies, quota)):
            if rows:
                _collect_one(copy, rows, seed + i, policy, buffer, bar)
    return buffer


def _collect_one(env: gym.Env, steps: int, seed: int, policy: Policy | None, buffer: ReplayBuffer,
                 bar: ProgressBar) -> None:
    """``steps`` transitions of one environment into ``buffer``, the last marked truncated."""
    env.action_space.seed(seed)
    act = policy if policy is not None else random_policy(env.action_space)
    loop = EnvLoop(env, ReplayRecorder(buffer))
    loop.start(seed=seed)
    for step in range(steps):
        if not loop.running:
            loop.start()
        if step == steps - 1:
            loop.max_steps = loop.episode.steps + 1  # the budget cuts the last episode: stored as truncated
        loop.act_and_step(act)
        bar.advance()
