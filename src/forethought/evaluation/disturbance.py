"""Disturbance recovery: push the system mid-episode and measure whether and how fast a controller
gets back to what it was doing.

A push is a velocity kick (added to the environment's velocities at one step) or, for MuJoCo
tasks, an external force on a body held for a few steps:

    push = Push(at_step=100, velocity=[0.0, 2.0])               # our cart-pole: pole +2 rad/s
    push = Push(at_step=300, force=[20.0, 0, 0], body="pole", duration=5)   # MuJoCo
    result = push_recovery(env, agent.act, push, seed=0)
    result.survived, result.recovery_steps

Recovery is measured on the reward: ``baseline`` is the mean reward of the ``window`` steps before
the push; the agent has recovered at the first step after the push from which the reward stays
within ``tolerance * max(1, |baseline|)`` of the baseline for ``window`` steps in a row. ``survived`` is False when the
episode terminated after the push.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from forethought.data.env_loop import EnvLoop


@dataclass
class Push:
    """Where and how hard to push. ``velocity``: added to the velocities once, at ``at_step``
    (our environments: their :meth:`push` units; Pendulum-v1: ``[rad/s]``; MuJoCo: one entry per
    degree of freedom, ``qvel``). ``force``: ``[fx, fy, fz]`` newtons (optionally with torques,
    6 numbers) on MuJoCo body ``body`` for ``duration`` steps from ``at_step``."""

    at_step: int
    velocity: list[float] | None = None
    force: list[float] | None = None
    body: str | None = None
    duration: int = 1

    def __post_init__(self) -> None:
        if self.at_step < 1:
            raise ValueError(f"push at_step must be >= 1 (there must be steps before it), got {self.at_step}")
        if (self.velocity is None) == (self.force is None):
            raise ValueError("give a push exactly one of velocity or force")
        if self.force is not None and (self.body is None or len(self.force) not in (3, 6)):
            raise ValueError(f"a force push needs body and 3 (or 6, with torques) numbers, got body={self.body!r}, "
                             f"force={self.force!r}")
        if self.duration < 1:
            raise ValueError(f"push duration must be >= 1 step, got {self.duration}")


@dataclass
class PushResult:
    """What happened around one push: ``baseline`` reward per step before it, whether the episode
    went on (``survived``), steps from the push until recovery (None: not within the episode),
    the lowest reward after the push, and the rewards of the whole episode."""

    survived: bool
    recovery_steps: int | None
    baseline: float
    worst_reward: float
    total_reward: float
    rewards: list[float] = field(default_factory=list)


def apply_velocity_kick(env: gym.Env, velocity: list[float]) -> None:
    """Add ``velocity`` to the running environment's velocities (see :class:`Push`)."""
    base = env.unwrapped
    if hasattr(base, "push"):  # our own environments
        base.push(velocity)
    elif hasattr(base, "set_state") and hasattr(base, "data"):  # Gymnasium MuJoCo
        qvel = base.data.qvel.copy()
        if len(velocity) != qvel.shape[0]:
            raise ValueError(f"{type(base).__name__} has {qvel.shape[0]} velocities (qvel), got a push of "
                             f"{len(velocity)}")
        base.set_state(base.data.qpos.copy(), qvel + np.asarray(velocity, dtype=float))
    elif hasattr(base, "state") and type(base).__name__ == "PendulumEnv":  # Gymnasium Pendulum-v1: [theta, theta_dot]
        if len(velocity) != 1:
            raise ValueError(f"Pendulum-v1 has 1 velocity, got a push of {len(velocity)}")
        theta, theta_dot = base.state
        base.state = np.array([theta, np.clip(theta_dot + velocity[0], -base.max_speed, base.max_speed)])
    else:
        raise TypeError(f"{type(base).__name__} cannot be pushed: velocity pushes work on our environments, "
                        f"Pendulum-v1 and MuJoCo tasks")


def _set_force(env: gym.Env, body: str, force: list[float] | None) -> None:
    base = env.unwrapped
    if not hasattr(base, "data") or not hasattr(base, "model"):
        raise TypeError(f"force pushes need a MuJoCo environment, got {type(base).__name__}")
    try:
        index = base.model.body(body).id
    except KeyError as err:
        raise ValueError(f"{type(base).__name__} has no body named {body!r}") from err
    wrench = np.zeros(6)
    if force is not None:
        wrench[:len(force)] = force
    base.data.xfrc_applied[index] = wrench


def push_recovery(env: gym.Env, act: Callable[[np.ndarray], Any], push: Push, seed: int | None = None,
                  window: int = 10, tolerance: float = 0.1, max_steps: int | None = None) -> PushResult:
    """Run one episode of ``act`` from ``reset(seed)``, push at ``push.at_step``, and measure the recovery."""
    if window < 1 or tolerance < 0:
        raise ValueError(f"window must be >= 1 and tolerance >= 0, got {window} and {tolerance}")
    rewards: list[float] = []

    class Rewards:  # the loop's recorder: only the rewards matter here
        start_episode = staticmethod(lambda obs: None)

        @staticmethod
        def add_step(obs, action, reward, next_obs, terminated, truncated) -> None:
            rewards.append(float(reward))

    def before_step(step: int) -> None:
        if step == push.at_step:
            if push.velocity is not None:
                apply_velocity_kick(env, list(push.velocity))
            else:
                _set_force(env, push.body, push.force)
        if push.force is not None and step == push.at_step + push.duration:
            _set_force(env, push.body, None)

    episode = EnvLoop(env, Rewards()).run(act, seed=seed, max_steps=max_steps, before_step=before_step)
    terminated, step = episode.terminated, episode.steps
    if push.force is not None and step > push.at_step:
        _set_force(env, push.body, None)
    if len(rewards) <= push.at_step:
        raise ValueError(f"the episode ended after {len(rewards)} steps, before the push at step {push.at_step}")
    before = rewards[max(0, push.at_step - window):push.at_step]
    baseline = float(np.mean(before))
    after = np.asarray(rewards[push.at_step:])
    close = np.abs(after - baseline) <= tolerance * max(1.0, abs(baseline))
    recovery = next((i for i in range(len(after) - window + 1) if close[i:i + window].all()), None)
    survived = not (terminated and len(rewards) > push.at_step)
    return PushResult(survived, recovery, baseline, float(after.min()), float(sum(rewards)), rewards)
