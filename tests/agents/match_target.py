"""A one-step continuous-control task whose optimal policy is known: the action should equal the observation."""

import gymnasium as gym
import numpy as np


class MatchTarget(gym.Env):
    """One-step task: observe x in [-1, 1]^2, earn -|a - x|^2, episode over."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._x = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self._x, {}

    def step(self, action):
        reward = -float(np.sum((np.asarray(action) - self._x) ** 2))
        return self._x, reward, True, False, {}
