"""A task of our own whose reward and termination are registered nowhere, with a Dict observation:
a point mass pushed towards a goal that leaves the episode when it leaves its arena."""

import gymnasium as gym
import numpy as np

GOAL = np.array([0.8, 0.5], dtype=np.float32)


class PointGoal(gym.Env):
    """Observation ``{"position": [2], "velocity": [2]}`` (m, m/s); action ``[2]`` force in
    ``[-1, 1]``; velocity ``v' = 0.9 v + 0.3 a``, position ``p' = p + 0.1 v'``. Reward
    ``1 - |p' - goal| - 0.01 |a|^2`` (positive near the goal, so leaving early forfeits it); the
    episode terminates when a coordinate of ``p'`` leaves
    ``[-2, 2]`` and is truncated after ``max_steps`` steps. Starts at rest near the origin."""

    observation_space = gym.spaces.Dict({"position": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
                                         "velocity": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)})
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, max_steps: int = 40) -> None:
        self.max_steps = max_steps

    def _obs(self) -> dict:
        return {"position": self.position.copy(), "velocity": self.velocity.copy()}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-0.2, 0.2, 2).astype(np.float32)
        self.velocity = np.zeros(2, dtype=np.float32)
        self.steps = 0
        return self._obs(), {}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        self.velocity = (0.9 * self.velocity + 0.3 * action).astype(np.float32)
        self.position = (self.position + 0.1 * self.velocity).astype(np.float32)
        self.steps += 1
        reward = 1.0 - float(np.linalg.norm(self.position - GOAL)) - 0.01 * float(np.sum(action**2))
        terminated = bool(np.any(np.abs(self.position) > 2.0))
        return self._obs(), reward, terminated, self.steps >= self.max_steps, {}
