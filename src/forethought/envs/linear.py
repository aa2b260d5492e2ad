"""Linear system ``s' = A s + B a + c + noise`` with a quadratic regulation reward.

The simplest system a dynamics model can be asked to learn: a linear-Gaussian model recovers it
exactly, so it separates bugs in the learning code from the difficulty of the system.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from forethought.envs import _raster
from forethought.envs._checks import check_episode_running, validate_action

DEFAULT_NOISE_STD = 0.01
DEFAULT_ACTION_COST = 0.1


def _matrix(value: Any, name: str, rows: int | None, cols: int | None) -> np.ndarray:
    """``value`` as a float64 ``[rows, cols]`` matrix (a scalar counts as ``[1, 1]``)."""
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.ndim == 0:
        matrix = matrix.reshape(1, 1)
    expected = (rows if rows is not None else "n", cols if cols is not None else "m")
    if matrix.ndim != 2 or (rows is not None and matrix.shape[0] != rows) or (
        cols is not None and matrix.shape[1] != cols
    ):
        raise ValueError(f"{name} must have shape ({expected[0]}, {expected[1]}), got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} must be finite, got {matrix.tolist()}")
    return matrix


def _vector(value: Any, name: str, size: int, nonnegative: bool = False) -> np.ndarray:
    """``value`` as a float64 ``[size]`` vector; a scalar is broadcast to every entry."""
    vector = np.asarray(value, dtype=np.float64)
    if vector.ndim == 0:
        vector = np.full(size, float(vector))
    if vector.shape != (size,):
        raise ValueError(f"{name} must be a scalar or have shape ({size},), got {vector.shape}")
    if not np.all(np.isfinite(vector)) or (nonnegative and np.any(vector < 0)):
        kind = "finite and >= 0" if nonnegative else "finite"
        raise ValueError(f"{name} must be {kind}, got {vector.tolist()}")
    return vector


def quadratic_regulation_reward(
    next_obs: torch.Tensor, action: torch.Tensor, Q: torch.Tensor | None = None, R: torch.Tensor | None = None
) -> torch.Tensor:
    """Reward ``-(s'^T Q s' + a^T R a)``, batched.

    Args:
        next_obs: ``[B, n]`` states after the step.
        action: ``[B, m]`` actions.
        Q: ``[n, n]`` state weight, identity when None.
        R: ``[m, m]`` action weight, ``0.1 * I`` when None.

    Returns:
        ``[B]`` rewards.
    """
    state_cost = (next_obs**2).sum(-1) if Q is None else torch.einsum("bi,ij,bj->b", next_obs, Q, next_obs)
    if R is None:
        action_cost = DEFAULT_ACTION_COST * (action**2).sum(-1)
    else:
        action_cost = torch.einsum("bi,ij,bj->b", action, R, action)
    return -(state_cost + action_cost)


class LinearSystemEnv(gym.Env):
    """``s' = A s + B a + c + noise`` with ``noise ~ N(0, diag(noise_std^2))``; the observation is
    the state. No termination; the episode is truncated after ``max_episode_steps`` steps.

    Args:
        A: ``[n, n]`` state matrix (default ``[[0.5]]``; a scalar means a 1-D system).
        B: ``[n, m]`` input matrix (default ``[[1.0]]``).
        c: ``[n]`` constant drift (default zeros).
        noise_std: process-noise standard deviation, scalar or ``[n]``. The default, 0.01, is small
            enough that the system is nearly deterministic but keeps a model honest about noise.
        action_bound: actions must lie in ``[-action_bound, action_bound]``, scalar or ``[m]``.
        init_range: the initial state is uniform in ``[-init_range, init_range]``, scalar or ``[n]``.
        max_episode_steps: episode length.
        Q: ``[n, n]`` state-cost weight (default identity).
        R: ``[m, m]`` action-cost weight (default ``0.1 * I``).
        render_mode: None or ``"rgb_array"``: ``[height, width, 3]`` uint8 frames with one
            horizontal bar per state dimension, from the centre line to the state's value on a
            scale of ``+-2 * init_range`` (longer values are cut at the edge).
        render_size: ``(height, width)`` of rendered frames in pixels.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        A: Any = 0.5,
        B: Any = 1.0,
        c: Any = None,
        noise_std: Any = DEFAULT_NOISE_STD,
        action_bound: Any = 1.0,
        init_range: Any = 1.0,
        max_episode_steps: int = 50,
        Q: Any = None,
        R: Any = None,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (120, 160),
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.A = _matrix(A, "A", None, None)
        n = self.A.shape[0]
        if self.A.shape != (n, n):
            raise ValueError(f"A must be square, got shape {self.A.shape}")
        self.B = _matrix(B, "B", n, None)
        m = self.B.shape[1]
        self.c = np.zeros(n) if c is None else _vector(c, "c", n)
        self.noise_std = _vector(noise_std, "noise_std", n, nonnegative=True)
        self.Q = np.eye(n) if Q is None else _matrix(Q, "Q", n, n)
        self.R = DEFAULT_ACTION_COST * np.eye(m) if R is None else _matrix(R, "R", m, m)
        bound = _vector(action_bound, "action_bound", m, nonnegative=True)
        self.init_range = _vector(init_range, "init_range", n, nonnegative=True)
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode, self.render_size = render_mode, tuple(render_size)
        self.action_space = spaces.Box(-bound.astype(np.float32), bound.astype(np.float32), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float64)
        self._state: np.ndarray | None = None
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Draw the initial state uniformly in ``[-init_range, init_range]``."""
        super().reset(seed=seed)
        self._state = self.np_random.uniform(-self.init_range, self.init_range)
        self._steps = 0
        return self._state.copy(), {}

    def push(self, delta: Any) -> None:
        """Add ``delta`` ``[obs_dim]`` to the state (a disturbance)."""
        check_episode_running(self._state is not None, self._steps, self.max_episode_steps)
        d = np.asarray(delta, dtype=float).reshape(-1)
        if d.shape != self._state.shape or not np.isfinite(d).all():
            raise ValueError(f"push must be {self._state.shape[0]} finite numbers, got {delta!r}")
        self._state = self._state + d

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Advance one step; ``action`` is ``[m]`` inside the action bounds (else ValueError)."""
        check_episode_running(self._state is not None, self._steps, self.max_episode_steps)
        a = validate_action(action, self.action_space)
        noise = self.noise_std * self.np_random.standard_normal(self.A.shape[0])
        self._state = self.A @ self._state + self.B @ a + self.c + noise
        self._steps += 1
        reward = -float(self._state @ self.Q @ self._state + a @ self.R @ a)
        return self._state.copy(), reward, False, self._steps >= self.max_episode_steps, {}

    def render(self) -> np.ndarray | None:
        """An ``[H, W, 3]`` uint8 frame of the state as bars (None unless ``render_mode="rgb_array"``
        and an episode has started)."""
        if self.render_mode != "rgb_array" or self._state is None:
            return None
        height, width = self.render_size
        n = self._state.shape[0]
        image = _raster.blank(height, width)
        scale = 2.0 * np.where(self.init_range > 0, self.init_range, 1.0)
        row = height / n
        centre = width / 2.0
        for i, value in enumerate(np.clip(self._state / scale, -1.0, 1.0)):
            top, bottom = (i + 0.2) * row, (i + 0.8) * row
            _raster.fill_rect(image, (centre, top), (centre + value * (width / 2.0 - 1), bottom), (40, 60, 160))
        _raster.fill_rect(image, (centre - 0.5, 0), (centre + 0.5, height), (80, 80, 80))
        return image
