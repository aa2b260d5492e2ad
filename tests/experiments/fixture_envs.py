"""Small environments for the run-loop tests, registered as Gymnasium ids under ``fixtures/``.

``fixtures/Ones-v0``: reward 1 per raw step, 12 raw steps an episode, task functions registered
(reward 1, never terminates), so a planner can run on it. ``fixtures/DictOnes-v0``: the same with
a Dict observation. ``fixtures/NaNSecondEpisode-v0``: its second episode's third step returns a
NaN observation.
"""

import gymnasium as gym
import numpy as np
import torch

from forethought.envs import register_task_functions


class OnesEnv(gym.Env):
    """Observation ``[t / length, 0]`` (float64), any action in ``[-1, 1]``, reward 1 per step,
    truncated after ``length`` steps."""

    metadata = {"render_modes": []}

    def __init__(self, length: int = 12, dict_obs: bool = False, nan_episode: int | None = None) -> None:
        self.length, self.dict_obs, self.nan_episode = length, dict_obs, nan_episode
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        box = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.observation_space = gym.spaces.Dict({"time": gym.spaces.Box(0.0, 1.0, (1,), np.float64),
                                                  "zero": box}) if dict_obs else box
        self.t, self.episodes = 0, 0

    def _obs(self):
        vector = np.array([self.t / self.length, 0.0])
        if self.nan_episode is not None and self.episodes == self.nan_episode and self.t == 3:
            vector[1] = np.nan
        return {"time": vector[:1], "zero": np.zeros(2)} if self.dict_obs else vector

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.episodes = 0, self.episodes + 1
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, False, self.t >= self.length, {}


def ones_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    return torch.ones(next_obs.shape[0], dtype=next_obs.dtype)


def register() -> None:
    for env_id, kwargs in (("fixtures/Ones-v0", {}), ("fixtures/DictOnes-v0", {"dict_obs": True}),
                           ("fixtures/NaNSecondEpisode-v0", {"nan_episode": 2})):
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=OnesEnv, kwargs=kwargs)
        register_task_functions(env_id, ones_reward, overwrite=True)


register()
