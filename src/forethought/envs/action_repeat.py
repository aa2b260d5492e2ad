"""Action repeat: each agent action held for several environment steps."""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Applies each action ``repeat`` times, summing the rewards and stopping early at the episode's
    end; the observation and info are those of the last step taken, and ``info["repeat_steps"]``
    says how many that was (``repeat`` unless the episode ended first)."""

    def __init__(self, env: gym.Env, repeat: int) -> None:
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"action_repeat must be an integer >= 1, got {repeat!r}")
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)
        gym.Wrapper.__init__(self, env)
        self.repeat = repeat

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        total = 0.0
        for taken in range(1, self.repeat + 1):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, {**info, "repeat_steps": taken}
