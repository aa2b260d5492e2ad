"""Image observations: any rendering environment seen as ``[3, size, size]`` uint8 frames.

    env = make_pixel_env("pendulum-swingup", size=64, action_repeat=2)
    frame, info = env.reset(seed=0)      # frame [3, 64, 64] uint8; info["state"] the true state
    frame, reward, terminated, truncated, info = env.step(action)

Our own environments are drawn at ``supersample`` times the size and box-averaged down, so thin
parts (a pole) stay visible as anti-aliased strokes; MuJoCo tasks render at the size directly.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

from forethought.envs.action_repeat import ActionRepeat
from forethought.envs.make import OWN_ENVS, frame_size_kwargs, make


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """``[H, W, 3]`` uint8 -> ``[size, size, 3]`` uint8: an exact box average when ``H`` and ``W``
    are multiples of ``size``, otherwise PIL's box filter."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an [H, W, 3] uint8 frame, got shape {frame.shape} and dtype {frame.dtype}")
    height, width = frame.shape[:2]
    if (height, width) == (size, size):
        return frame
    if height % size == 0 and width % size == 0:
        blocks = frame.reshape(size, height // size, size, width // size, 3).astype(np.float32)
        return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BOX))


class PixelObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Observations are the rendered frame, channel first (``[3, size, size]`` uint8); each agent
    action is applied ``action_repeat`` times (rewards summed, stopping early at the episode's end).

    ``info["state"]`` carries the wrapped environment's own observation, for diagnostics and for a
    state-based oracle (agents learning from pixels must not use it); ``info["repeat_steps"]`` the
    number of wrapped-environment steps this step took.
    """

    def __init__(self, env: gym.Env, size: int = 64, action_repeat: int = 1) -> None:
        if env.render_mode != "rgb_array":
            raise ValueError(f"PixelObservation needs an environment made with render_mode='rgb_array', "
                             f"got render_mode={env.render_mode!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 8:
            raise ValueError(f"size must be an integer >= 8 pixels, got {size!r}")
        gym.utils.RecordConstructorArgs.__init__(self, size=size, action_repeat=action_repeat)
        gym.Wrapper.__init__(self, ActionRepeat(env, action_repeat))
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, shape=(3, size, size), dtype=np.uint8)

    @property
    def action_repeat(self) -> int:
        """Environment steps per agent action."""
        return self.env.repeat

    def _frame(self) -> np.ndarray:
        frame = self.env.render()
        if frame is None:
            raise RuntimeError("the wrapped environment rendered no frame (was it reset?)")
        return np.ascontiguousarray(resize_frame(np.asarray(frame), self.size).transpose(2, 0, 1))

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        state, info = self.env.reset(**kwargs)
        return self._frame(), {**info, "state": state}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        state, reward, terminated, truncated, info = self.env.step(action)
        return self._frame(), reward, terminated, truncated, {**info, "state": state}


def make_pixel_env(name: str, size: int = 64, action_repeat: int = 1, supersample: int = 4,
                   **kwargs: Any) -> PixelObservation:
    """``make(name)`` seen through :class:`PixelObservation` (``kwargs`` go to the environment).

    Our environments are drawn at ``supersample * size`` pixels and box-averaged; Gymnasium ids
    render at ``size`` pixels where the environment lets us set the frame size (MuJoCo and
    DeepMind Control do), any other's frames are resized."""
    frame = supersample * size if name in OWN_ENVS else size
    env = make(name, **{"render_mode": "rgb_array", **frame_size_kwargs(name, frame, frame), **kwargs})
    return PixelObservation(env, size=size, action_repeat=action_repeat)
