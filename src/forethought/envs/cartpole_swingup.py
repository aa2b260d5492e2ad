"""Cart-pole swing-up: a continuous force on a cart must swing a hanging pole up and balance it.

The physics (a cart on a frictional track carrying a uniform rod on a frictionless hinge) is
written once, over a math-like module ``xp`` that is either :mod:`math` (the environment, float64
scalars) or :mod:`torch` (:func:`cartpole_step`, batched and differentiable), so both give the same
numbers. Angle convention: ``theta = 0`` is upright, ``theta = pi`` hangs down, positive ``theta``
tilts the tip towards ``+x``.
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

REWARD_WIDTH = 0.25  # m, standard deviation of the Gaussian tip-distance reward
ACTION_COST = 0.01  # per unit of squared normalised action
SUBSTEP_SECONDS = 0.01  # default RK4 step inside one control period


@dataclass(frozen=True)
class CartPoleParams:
    """Physical parameters (SI units). The pole is a uniform rod hinged at one end on the cart."""

    cart_mass: float = 0.5  # kg
    pole_mass: float = 0.5  # kg
    pole_length: float = 0.6  # m, hinge to tip
    friction: float = 0.1  # N s/m, viscous friction between cart and track
    gravity: float = 9.82  # m/s^2
    max_force: float = 10.0  # N, force produced by action +1

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not math.isfinite(value) or value < 0 or (value == 0 and field.name != "friction"):
                rule = ">= 0" if field.name == "friction" else "> 0"
                raise ValueError(f"CartPoleParams.{field.name} must be finite and {rule}, got {value}")


def _derivatives(state: tuple, force: Any, p: CartPoleParams, xp: Any) -> tuple:
    """Time derivative of ``(x, x_dot, theta, theta_dot)`` under a horizontal ``force`` (N).

    From the Lagrangian of a cart (mass M) and a uniform rod (mass m, length l, inertia m l^2 / 3
    about the hinge): cart acceleration
    ``(4 (F - b x_dot) + 2 m l theta_dot^2 sin - 3 m g sin cos) / (4 (M + m) - 3 m cos^2)`` and
    pole acceleration ``3 (g sin - cos x_acc) / (2 l)``.
    """
    _, x_dot, theta, theta_dot = state
    sin, cos = xp.sin(theta), xp.cos(theta)
    m, l, g = p.pole_mass, p.pole_length, p.gravity
    x_acc = (
        4.0 * (force - p.friction * x_dot) + 2.0 * m * l * theta_dot * theta_dot * sin - 3.0 * m * g * sin * cos
    ) / (4.0 * (p.cart_mass + m) - 3.0 * m * cos * cos)
    theta_acc = 3.0 * (g * sin - cos * x_acc) / (2.0 * l)
    return x_dot, x_acc, theta_dot, theta_acc


def _integrate(state: tuple, force: Any, p: CartPoleParams, dt: float, substeps: int, xp: Any) -> tuple:
    """Classic RK4 over ``dt`` seconds in ``substeps`` equal steps, force held constant."""
    h = dt / substeps
    for _ in range(substeps):
        k1 = _derivatives(state, force, p, xp)
        k2 = _derivatives(tuple(s + 0.5 * h * k for s, k in zip(state, k1)), force, p, xp)
        k3 = _derivatives(tuple(s + 0.5 * h * k for s, k in zip(state, k2)), force, p, xp)
        k4 = _derivatives(tuple(s + h * k for s, k in zip(state, k3)), force, p, xp)
        state = tuple(s + h / 6.0 * (a + 2.0 * b + 2.0 * c + d) for s, a, b, c, d in zip(state, k1, k2, k3, k4))
    return state


def _tip_reward(x: Any, cos: Any, sin: Any, action: Any, pole_length: float, xp: Any) -> Any:
    """``exp(-d^2 / (2 w^2)) - 0.01 a^2`` with d the distance from the pole tip to ``(0, l)``."""
    dist_sq = (x + pole_length * sin) ** 2 + (pole_length * (cos - 1.0)) ** 2
    return xp.exp(-dist_sq / (2.0 * REWARD_WIDTH**2)) - ACTION_COST * action * action


def cartpole_step(
    obs: torch.Tensor,
    action: torch.Tensor,
    params: CartPoleParams = CartPoleParams(),
    dt: float = 0.1,
    substeps: int = 10,
) -> torch.Tensor:
    """Batched, differentiable cart-pole transition: the integrator :class:`CartPoleSwingUpEnv` uses.

    Args:
        obs: ``[B, 5]`` observations ``[x (m), x_dot (m/s), cos theta, sin theta, theta_dot (rad/s)]``.
        action: ``[B, 1]`` normalised force; clipped to ``[-1, 1]`` and scaled by ``params.max_force``.
        params: physical parameters (pass wrong ones to build an imperfect physics prior).
        dt: control period in seconds.
        substeps: RK4 steps per control period.

    Returns:
        ``[B, 5]`` next observations, same dtype as ``obs``. Without autograd the step is computed
        in float64 (as the environment does) and rounded to ``obs``'s dtype; with autograd it is
        computed in ``obs``'s dtype (float64 matches the environment to ~1e-12, float32 to ~1e-5).
    """
    if obs.ndim != 2 or obs.shape[-1] != 5 or action.shape != (obs.shape[0], 1):
        raise ValueError(f"expected obs [B, 5] and action [B, 1], got {tuple(obs.shape)} and {tuple(action.shape)}")
    if torch.is_grad_enabled() and (obs.requires_grad or action.requires_grad):
        force = action[:, 0].clamp(-1.0, 1.0) * params.max_force
        theta = torch.atan2(obs[:, 3], obs[:, 2])
        state = (obs[:, 0], obs[:, 1], theta, obs[:, 4])
        x, x_dot, theta, theta_dot = _integrate(state, force, params, dt, substeps, torch)
        return torch.stack([x, x_dot, torch.cos(theta), torch.sin(theta), theta_dot], dim=-1)
    # Without a graph to record, NumPy in float64 does the ~400 small array operations of the
    # integrator several times faster than torch (per-call overhead) and exactly as the env does.
    o = obs.detach().cpu().numpy().astype(np.float64)
    force = np.clip(action.detach().cpu().numpy()[:, 0].astype(np.float64), -1.0, 1.0) * params.max_force
    state = (o[:, 0], o[:, 1], np.arctan2(o[:, 3], o[:, 2]), o[:, 4])
    x, x_dot, theta, theta_dot = _integrate(state, force, params, dt, substeps, np)
    next_obs = np.stack([x, x_dot, np.cos(theta), np.sin(theta), theta_dot], axis=-1)
    return torch.from_numpy(next_obs).to(dtype=obs.dtype, device=obs.device)


def cartpole_swingup_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, pole_length: float = CartPoleParams.pole_length
) -> torch.Tensor:
    """Reward of :class:`CartPoleSwingUpEnv` from ``[B, 5]`` next_obs and ``[B, 1]`` action: ``[B]``.

    ``obs`` is unused (the reward depends on where the step ends). ``pole_length`` must be the
    environment's true length for the numbers to agree.
    """
    return _tip_reward(next_obs[:, 0], next_obs[:, 2], next_obs[:, 3], action[:, 0], pole_length, torch)


class CartPoleSwingUpEnv(gym.Env):
    """Cart-pole that starts hanging down and must swing up and balance; continuous force.

    Observation ``[x, x_dot, cos theta, sin theta, theta_dot]`` (float64; m, m/s, -, -, rad/s),
    ``theta = 0`` upright. Action ``[1]`` in ``[-1, 1]``: the force in units of
    ``params.max_force`` newtons. Reward ``exp(-d^2 / (2 * 0.25^2)) - 0.01 a^2`` in about
    ``[-0.01, 1]``, with ``d`` the distance (m) between the pole tip and its upright position at
    ``x = 0``. The track is unbounded; there is no termination, and the episode is truncated after
    ``max_episode_steps`` control periods.

    Args:
        params: physical parameters.
        dt: control period in seconds (default 0.1 s, i.e. 10 Hz).
        substeps: RK4 steps per control period; default ``ceil(dt / 0.01)``.
        max_episode_steps: episode length (default 100 = 10 s at 10 Hz).
        init_noise_std: standard deviation of the Gaussian noise added to every component of the
            initial state ``(x, x_dot, theta, theta_dot) = (0, 0, pi, 0)``.
        render_mode: None or ``"rgb_array"`` (``[height, width, 3]`` uint8 frames drawn with NumPy).
        render_size: ``(height, width)`` of rendered frames in pixels.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        params: CartPoleParams = CartPoleParams(),
        dt: float = 0.1,
        substeps: int | None = None,
        max_episode_steps: int = 100,
        init_noise_std: float = 0.05,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (240, 360),
    ) -> None:
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"dt must be a positive number of seconds, got {dt}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if max_episode_steps < 1 or init_noise_std < 0:
            raise ValueError(
                f"need max_episode_steps >= 1 and init_noise_std >= 0, got {max_episode_steps}, {init_noise_std}"
            )
        self.params, self.dt = params, float(dt)
        self.substeps = int(substeps) if substeps is not None else max(1, math.ceil(dt / SUBSTEP_SECONDS - 1e-9))
        if self.substeps < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps}")
        self.max_episode_steps, self.init_noise_std = int(max_episode_steps), float(init_noise_std)
        self.render_mode, self.render_size = render_mode, render_size
        self.metadata = {**self.metadata, "render_fps": max(1, round(1.0 / self.dt))}
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        high = np.array([np.inf, np.inf, 1.0, 1.0, np.inf])
        self.observation_space = spaces.Box(-high, high, dtype=np.float64)
        self._state: tuple[float, float, float, float] | None = None
        self._steps = 0

    def _obs(self) -> np.ndarray:
        x, x_dot, theta, theta_dot = self._state
        return np.array([x, x_dot, math.cos(theta), math.sin(theta), theta_dot])

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start near hanging down, ``(0, 0, pi, 0)`` plus Gaussian noise; ``options`` with any of
        ``x`` (m), ``x_dot`` (m/s), ``theta`` (rad), ``theta_dot`` (rad/s) move the start, noise
        still added."""
        super().reset(seed=seed)
        start = start_from_options({"x": 0.0, "x_dot": 0.0, "theta": math.pi, "theta_dot": 0.0}, options)
        noise = self.init_noise_std * self.np_random.standard_normal(4)
        self._state = tuple(float(v) for v in np.array(list(start.values())) + noise)
        self._steps = 0
        return self._obs(), {}

    def push(self, velocity: Any) -> None:
        """Add ``velocity`` ``[cart m/s, pole rad/s]`` to the current velocities (a disturbance)."""
        check_episode_running(self._state is not None, self._steps, self.max_episode_steps)
        dv = np.asarray(velocity, dtype=float).reshape(-1)
        if dv.shape != (2,) or not np.isfinite(dv).all():
            raise ValueError(f"push velocity must be 2 finite numbers [cart m/s, pole rad/s], got {velocity!r}")
        x, x_dot, theta, theta_dot = self._state
        self._state = (x, x_dot + float(dv[0]), theta, theta_dot + float(dv[1]))

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Apply ``action`` (``[1]`` in ``[-1, 1]``, else ValueError) for one control period."""
        check_episode_running(self._state is not None, self._steps, self.max_episode_steps)
        a = float(validate_action(action, self.action_space)[0])
        self._state = _integrate(self._state, a * self.params.max_force, self.params, self.dt, self.substeps, math)
        self._steps += 1
        obs = self._obs()
        reward = _tip_reward(obs[0], obs[2], obs[3], a, self.params.pole_length, math)
        return obs, float(reward), False, self._steps >= self.max_episode_steps, {}

    def render(self) -> np.ndarray | None:
        """An ``[H, W, 3]`` uint8 frame of track, cart, pole and upright target (None if not rgb_array)."""
        if self.render_mode != "rgb_array" or self._state is None:
            return None
        height, width = self.render_size
        scale = width / 4.0  # pixels per metre: the view spans x in [-2, 2] m
        ground = 0.65 * height

        def to_pixels(x: float, y: float) -> tuple[float, float]:
            return width / 2 + scale * x, ground - scale * y

        x, _, theta, _ = self._state
        length = self.params.pole_length
        image = _raster.blank(height, width)
        _raster.fill_rect(image, (0, ground + 0.1 * scale), (width, ground + 0.1 * scale + 2), (80, 80, 80))
        _raster.draw_disc(image, to_pixels(0.0, length), 0.04 * scale, (120, 200, 120))
        _raster.fill_rect(image, to_pixels(x - 0.2, -0.1), to_pixels(x + 0.2, 0.1), (40, 60, 160))
        tip = (x + length * math.sin(theta), length * math.cos(theta))
        _raster.draw_segment(image, to_pixels(x, 0.0), to_pixels(*tip), 0.05 * scale, (200, 120, 60))
        _raster.draw_disc(image, to_pixels(x, 0.0), 0.03 * scale, (30, 30, 30))
        return image
