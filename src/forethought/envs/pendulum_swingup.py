"""Pendulum swing-up: Gymnasium ``Pendulum-v1`` physics, but every episode starts hanging down.

``Pendulum-v1`` starts anywhere on the circle, so some episodes begin next to the goal; starting at
``theta = pi`` makes every episode a full swing-up. Angle convention as in ``Pendulum-v1``:
``theta = 0`` upright.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from forethought.envs import _raster
from forethought.envs._checks import check_episode_running, start_from_options, validate_action


ROD_WIDTH = 0.25
"""Default drawn width of the rod as a fraction of its length (DeepMind Control's pendulum: about
0.2). At 64x64 pixels a rod 0.1 of its length wide is 2.5 pixels across, 1.6 % of the frame, and a
latent world model trained on it left the rod out of its posterior for hundreds of updates (KL
under the free nats, reward unpredicted); at 0.25 it encodes the angle within them
(``benchmarks/latent_rod_width.py``)."""


@dataclass(frozen=True)
class PendulumParams:
    """Physical parameters of ``Pendulum-v1`` (SI units); the rod's inertia is ``m l^2 / 3``."""

    gravity: float = 10.0  # m/s^2
    mass: float = 1.0  # kg
    length: float = 1.0  # m
    max_torque: float = 2.0  # N m
    max_speed: float = 8.0  # rad/s, angular velocity is clipped to +-max_speed

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"PendulumParams.{field.name} must be finite and > 0, got {value}")


def pendulum_step(
    obs: torch.Tensor, action: torch.Tensor, params: PendulumParams = PendulumParams(), dt: float = 0.05
) -> torch.Tensor:
    """Batched, differentiable ``Pendulum-v1`` transition (one semi-implicit Euler step).

    Args:
        obs: ``[B, 3]`` observations ``[cos theta, sin theta, theta_dot (rad/s)]``.
        action: ``[B, 1]`` torque in N m, clipped to ``[-max_torque, max_torque]``.
        params: physical parameters.
        dt: step in seconds.

    Returns:
        ``[B, 3]`` next observations, same dtype as ``obs``.
    """
    if obs.ndim != 2 or obs.shape[-1] != 3 or action.shape != (obs.shape[0], 1):
        raise ValueError(f"expected obs [B, 3] and action [B, 1], got {tuple(obs.shape)} and {tuple(action.shape)}")
    torque = action[:, 0].clamp(-params.max_torque, params.max_torque)
    theta, theta_dot = torch.atan2(obs[:, 1], obs[:, 0]), obs[:, 2]
    theta_dot = _next_theta_dot(theta, theta_dot, torque, params, dt, torch.sin)
    theta_dot = theta_dot.clamp(-params.max_speed, params.max_speed)
    theta = theta + theta_dot * dt
    return torch.stack([torch.cos(theta), torch.sin(theta), theta_dot], dim=-1)


def _next_theta_dot(theta: Any, theta_dot: Any, torque: Any, p: PendulumParams, dt: float, sin: Any) -> Any:
    """Angular velocity after one step, before clipping to ``max_speed``."""
    g, m, l = p.gravity, p.mass, p.length
    return theta_dot + (3.0 * g / (2.0 * l) * sin(theta) + 3.0 / (m * l**2) * torque) * dt


def pendulum_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``Pendulum-v1`` reward ``-(theta^2 + 0.1 theta_dot^2 + 0.001 u^2)`` of the state *before* the
    step (``obs``, ``[B, 3]``) and the clipped torque (``action``, ``[B, 1]``); ``[B]``.
    ``theta`` is wrapped to ``[-pi, pi]``. ``next_obs`` is unused."""
    theta = torch.atan2(obs[:, 1], obs[:, 0])
    torque = action[:, 0].clamp(-PendulumParams.max_torque, PendulumParams.max_torque)
    return -(theta**2 + 0.1 * obs[:, 2] ** 2 + 0.001 * torque**2)


def angle_normalize(theta: float) -> float:
    """Wrap an angle in radians to ``[-pi, pi)``."""
    return (theta + math.pi) % (2.0 * math.pi) - math.pi


class PendulumSwingUpEnv(gym.Env):
    """Torque-limited pendulum starting hanging down; ``Pendulum-v1`` dynamics and reward.

    Observation ``[cos theta, sin theta, theta_dot]`` (float64; rad/s), ``theta = 0`` upright.
    Action ``[1]``: torque in N m within ``[-2, 2]``. Reward as ``Pendulum-v1``, computed from the
    state before the step. No termination; truncated after ``max_episode_steps`` steps.

    Args:
        params: physical parameters (default ``Pendulum-v1``'s).
        dt: step in seconds (default 0.05).
        max_episode_steps: episode length (default 200).
        init_noise: the initial ``theta`` is ``pi + U(-init_noise, init_noise)`` rad and
            ``theta_dot`` is ``U(-init_noise, init_noise)`` rad/s.
        render_mode: None or ``"rgb_array"``.
        render_size: ``(height, width)`` of rendered frames in pixels.
        rod_width: drawn width of the rod as a fraction of its length.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        params: PendulumParams = PendulumParams(),
        dt: float = 0.05,
        max_episode_steps: int = 200,
        init_noise: float = 0.05,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (200, 200),
        rod_width: float = ROD_WIDTH,
    ) -> None:
        if not (dt > 0 and math.isfinite(dt)) or max_episode_steps < 1 or init_noise < 0:
            raise ValueError(
                f"need dt > 0, max_episode_steps >= 1, init_noise >= 0; got {dt}, {max_episode_steps}, {init_noise}"
            )
        if not (math.isfinite(rod_width) and 0 < rod_width <= 1):
            raise ValueError(f"rod_width must be in (0, 1] (a fraction of the rod's length), got {rod_width}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.params, self.dt = params, float(dt)
        self.max_episode_steps, self.init_noise = int(max_episode_steps), float(init_noise)
        self.render_mode, self.render_size, self.rod_width = render_mode, render_size, float(rod_width)
        self.metadata = {**self.metadata, "render_fps": max(1, round(1.0 / self.dt))}
        torque = np.float32(params.max_torque)
        self.action_space = spaces.Box(-torque, torque, shape=(1,), dtype=np.float32)
        high = np.array([1.0, 1.0, params.max_speed])
        self.observation_space = spaces.Box(-high, high, dtype=np.float64)
        self._theta: float | None = None
        self._theta_dot = 0.0
        self._steps = 0

    def _obs(self) -> np.ndarray:
        return np.array([math.cos(self._theta), math.sin(self._theta), self._theta_dot])

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start near hanging down: ``theta = pi + noise``, ``theta_dot = noise``; ``options``
        ``{"theta": rad, "theta_dot": rad/s}`` (either or both) move the start, noise still added."""
        super().reset(seed=seed)
        start = start_from_options({"theta": math.pi, "theta_dot": 0.0}, options)
        noise = self.np_random.uniform(-self.init_noise, self.init_noise, size=2)
        self._theta, self._theta_dot = start["theta"] + float(noise[0]), start["theta_dot"] + float(noise[1])
        self._steps = 0
        return self._obs(), {}

    def push(self, velocity: Any) -> None:
        """Add ``velocity`` ``[rad/s]`` to the angular velocity (a disturbance), within the speed limit."""
        check_episode_running(self._theta is not None, self._steps, self.max_episode_steps)
        dv = np.asarray(velocity, dtype=float).reshape(-1)
        if dv.shape != (1,) or not np.isfinite(dv).all():
            raise ValueError(f"push velocity must be 1 finite number [rad/s], got {velocity!r}")
        limit = self.params.max_speed
        self._theta_dot = min(max(self._theta_dot + float(dv[0]), -limit), limit)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Apply torque ``action`` (``[1]`` in N m within bounds, else ValueError) for ``dt`` seconds."""
        check_episode_running(self._theta is not None, self._steps, self.max_episode_steps)
        u = float(validate_action(action, self.action_space)[0])
        p, theta, theta_dot = self.params, self._theta, self._theta_dot
        reward = -(angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * u**2)
        new_theta_dot = min(max(_next_theta_dot(theta, theta_dot, u, p, self.dt, math.sin), -p.max_speed), p.max_speed)
        self._theta, self._theta_dot = theta + new_theta_dot * self.dt, new_theta_dot
        self._steps += 1
        return self._obs(), reward, False, self._steps >= self.max_episode_steps, {}

    def render(self) -> np.ndarray | None:
        """An ``[H, W, 3]`` uint8 frame of the rod around its pivot (None if not rgb_array)."""
        if self.render_mode != "rgb_array" or self._theta is None:
            return None
        height, width = self.render_size
        scale = 0.4 * min(height, width) / self.params.length
        pivot = (width / 2, height / 2)
        # Pendulum-v1 draws positive theta counter-clockwise: the tip moves towards -x.
        tip = (pivot[0] - scale * self.params.length * math.sin(self._theta),
               pivot[1] - scale * self.params.length * math.cos(self._theta))
        image = _raster.blank(height, width)
        _raster.draw_segment(image, pivot, tip, self.rod_width * self.params.length * scale, (200, 80, 80))
        _raster.draw_disc(image, pivot, 0.04 * scale, (30, 30, 30))
        return image
