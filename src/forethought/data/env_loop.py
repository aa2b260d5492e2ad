"""The one place an environment is stepped: a policy acting in a Gymnasium environment, each
transition handed to a recorder (a replay buffer, a sequence buffer), optional frames, a step
limit, and a hook before each step (pushes) and after it (learning updates).

    loop = EnvLoop(env, recorder=ReplayRecorder(buffer))
    episode = loop.run(policy, seed=0)                   # a whole episode
    loop.start(seed=1); loop.step(action)                # or step by step, e.g. updates between steps

Action repeat is counted, not applied, here: a wrapper such as
:class:`~forethought.envs.ActionRepeat` reports the raw steps it took in
``info["repeat_steps"]``, and :attr:`Episode.env_steps` sums them.

A non-finite reward or observation from the environment stops the loop with
:class:`NonFiniteOutputError` before the transition is recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import gymnasium as gym
import numpy as np

Policy = Callable[[Any], Any]


class NonFiniteOutputError(ValueError):
    """The environment returned a non-finite reward or observation."""


def _nonfinite(value: Any) -> str | None:
    """A description of the non-finite entries of an observation (an array, or a dict/tuple of
    them), or None when all are finite; entries that are not numbers are not checked."""
    if isinstance(value, dict):
        parts = [(f"[{key!r}]", _nonfinite(v)) for key, v in value.items()]
    elif isinstance(value, tuple):
        parts = [(f"[{i}]", _nonfinite(v)) for i, v in enumerate(value)]
    else:
        array = np.asarray(value)
        if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.complexfloating):
            return None
        bad = np.flatnonzero(~np.isfinite(array.ravel()))
        if bad.size == 0:
            return None
        shown = ", ".join(f"[{i}] = {array.ravel()[i]}" for i in bad[:4]) + (", ..." if bad.size > 4 else "")
        return f"{bad.size} of {array.size} entries non-finite: {shown}"
    found = [f"{where}: {what}" for where, what in parts if what is not None]
    return "; ".join(found) or None


class Recorder(Protocol):
    """What receives an episode's transitions."""

    def start_episode(self, obs: Any) -> None:
        """The episode's first observation."""

    def add_step(self, obs: Any, action: Any, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        """One transition (``truncated`` is also True when the loop's step limit cut the episode)."""


class ReplayRecorder:
    """Records flat transitions into a :class:`~forethought.data.ReplayBuffer`."""

    def __init__(self, buffer: Any) -> None:
        self.buffer = buffer

    def start_episode(self, obs: Any) -> None:
        pass

    def add_step(self, obs: Any, action: Any, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        self.buffer.add(np.ravel(obs), np.ravel(action), float(reward), np.ravel(next_obs), terminated, truncated)


@dataclass
class Episode:
    """What one episode produced: total reward, agent steps (decisions), raw environment steps
    (action repeats counted), seconds spent choosing actions, how it ended, and (when rendering)
    RGB frames ``[H, W, 3]``."""

    total_reward: float = 0.0
    steps: int = 0
    env_steps: int = 0
    act_s: float = 0.0
    terminated: bool = False
    truncated: bool = False
    frames: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def act_ms_per_step(self) -> float | None:
        return 1000.0 * self.act_s / self.steps if self.steps else None


class EnvLoop:
    """Steps ``env`` and records what happens.

    Args:
        env: the environment.
        recorder: receives every transition (None: nothing is stored).
        render: collect ``env.render()`` frames (the env must have ``render_mode="rgb_array"``).
        frames: how to turn an observation into a frame instead of ``env.render()`` (pixel
            observations are already frames).
    """

    def __init__(self, env: gym.Env, recorder: Recorder | None = None, render: bool = False,
                 frames: Callable[[Any], np.ndarray] | None = None) -> None:
        self.env, self.recorder, self.render, self._frame = env, recorder, render, frames
        self.obs: Any = None
        self.episode: Episode | None = None
        self.max_steps: int | None = None
        self.seed: int | None = None

    @property
    def running(self) -> bool:
        """An episode has started and not yet ended."""
        return self.episode is not None and not (self.episode.terminated or self.episode.truncated)

    def start(self, seed: int | None = None, max_steps: int | None = None) -> Any:
        """Reset the environment with ``seed`` and begin an episode of at most ``max_steps`` steps."""
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 (or None), got {max_steps}")
        self.obs, _ = self.env.reset(seed=seed)
        self.episode, self.max_steps, self.seed = Episode(), max_steps, seed
        self._check(self.obs, 0.0, "the reset")
        if self.recorder is not None:
            self.recorder.start_episode(self.obs)
        if self.render:
            self.episode.frames.append(self._render(self.obs))
        return self.obs

    def resume(self, obs: Any, total_reward: float, steps: int, env_steps: int) -> None:
        """Continue an episode whose environment is already at ``obs`` (see ``SAC.load``)."""
        self.obs, self.episode = obs, Episode(total_reward, steps, env_steps)

    def act_and_step(self, policy: Policy) -> tuple[Any, float, bool, bool, dict]:
        """Choose an action for the current observation with ``policy`` (timed) and :meth:`step` it."""
        start = time.perf_counter()
        action = policy(self.obs)
        self.episode.act_s += time.perf_counter() - start
        return self.step(action)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """Apply ``action``; record the transition; ``(next_obs, reward, terminated, truncated, info)``
        with ``truncated`` also True where the step limit ends the episode."""
        if not self.running:
            raise RuntimeError("no episode is running: call start() first")
        episode = self.episode
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        reward = float(reward)
        self._check(next_obs, reward, f"step {episode.steps + 1}")
        episode.steps += 1
        episode.env_steps += int(info.get("repeat_steps", 1))
        episode.total_reward += reward
        truncated = bool(truncated) or (self.max_steps is not None and episode.steps >= self.max_steps)
        if self.recorder is not None:
            self.recorder.add_step(self.obs, action, reward, next_obs, bool(terminated), truncated)
        if self.render:
            episode.frames.append(self._render(next_obs))
        episode.terminated, episode.truncated = bool(terminated), truncated
        self.obs = next_obs
        return next_obs, reward, bool(terminated), truncated, info

    def run(self, policy: Policy, seed: int | None = None, max_steps: int | None = None,
            before_step: Callable[[int], None] | None = None,
            after_step: Callable[[], None] | None = None) -> Episode:
        """One whole episode of ``policy`` from ``reset(seed=seed)`` until termination, truncation
        or ``max_steps``. ``before_step(i)`` runs before step ``i`` (0-based; e.g. a push),
        ``after_step()`` after each recorded step."""
        self.start(seed, max_steps)
        while self.running:
            if before_step is not None:
                before_step(self.episode.steps)
            self.act_and_step(policy)
            if after_step is not None:
                after_step()
        return self.episode

    def _check(self, obs: Any, reward: float, when: str) -> None:
        """NonFiniteOutputError naming ``when`` (the reset or step ``i``, counted from 1), the episode's
        reset seed and the offending value, unless ``obs`` and ``reward`` are finite."""
        problems = [] if np.isfinite(reward) else [f"reward {reward}"]
        bad_obs = _nonfinite(obs)
        if bad_obs is not None:
            problems.append(f"observation ({bad_obs})")
        if problems:
            episode = "the episode" + ("" if self.seed is None else f" reset with seed {self.seed}")
            raise NonFiniteOutputError(f"{type(self.env.unwrapped).__name__} returned a non-finite "
                                       f"{' and '.join(problems)} at {when} of {episode} (not recorded)")

    def _render(self, obs: Any) -> np.ndarray:
        return self._frame(obs) if self._frame is not None else self.env.render()


def run_episode(env: gym.Env, policy: Policy, seed: int | None = None, recorder: Recorder | None = None,
                render: bool = False, max_steps: int | None = None) -> Episode:
    """One episode of ``policy`` in ``env`` (see :meth:`EnvLoop.run`)."""
    return EnvLoop(env, recorder, render).run(policy, seed, max_steps)


def episode_returns(env: gym.Env, policy: Policy, seeds: Iterable[int], reset: Callable[[], None] | None = None,
                    recorder: Recorder | None = None) -> list[float]:
    """Returns of one episode of ``policy`` per reset seed in ``seeds`` (fixed start states, the
    same for whatever acts), calling ``reset`` (a planner's or agent's) before each."""
    loop, returns = EnvLoop(env, recorder), []
    for seed in seeds:
        if reset is not None:
            reset()
        returns.append(loop.run(policy, seed).total_reward)
    return returns


def random_policy(action_space: gym.Space) -> Policy:
    """Uniform random actions from ``action_space`` (seed the space for reproducibility)."""
    return lambda obs: action_space.sample()
