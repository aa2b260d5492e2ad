"""The env loop's guard against non-finite environment outputs."""

import gymnasium as gym
import numpy as np
import pytest

from forethought.data import ReplayBuffer
from forethought.data.env_loop import EnvLoop, NonFiniteOutputError, ReplayRecorder, run_episode


class Faulty(gym.Env):
    """Steps return ``obs`` ``[t, 0]`` and reward 1, except at step ``bad_step`` (counted from 1)
    where ``field`` is ``value``."""

    def __init__(self, bad_step: int, field: str, value: float) -> None:
        self.bad_step, self.field, self.value = bad_step, field, value
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        obs = np.zeros(2)
        if self.bad_step == 0:
            obs[1] = self.value
        return obs, {}

    def step(self, action):
        self.t += 1
        obs, reward = np.array([self.t, 0.0]), 1.0
        if self.t == self.bad_step:
            if self.field == "reward":
                reward = self.value
            else:
                obs[1] = self.value
        return obs, reward, False, self.t >= 10, {}


@pytest.mark.parametrize("field, value, named", [
    ("reward", np.nan, "reward nan"), ("reward", -np.inf, "reward -inf"),
    ("obs", np.inf, r"observation \(1 of 2 entries non-finite: \[1\] = inf\)")])
def test_a_non_finite_step_is_named_and_not_recorded(field, value, named):
    buffer = ReplayBuffer(2, 1)
    with pytest.raises(NonFiniteOutputError, match=rf"^Faulty returned a non-finite {named} at step 4 of the episode "
                                                    rf"reset with seed 7 \(not recorded\)$"):
        run_episode(Faulty(4, field, value), lambda obs: np.zeros(1, np.float32), seed=7,
                    recorder=ReplayRecorder(buffer))
    assert len(buffer) == 3  # the three good steps


def test_a_non_finite_reset_observation_is_named():
    loop = EnvLoop(Faulty(0, "obs", np.nan))
    with pytest.raises(NonFiniteOutputError,
                       match=r"non-finite observation .* at the reset of the episode \(not recorded\)$"):
        loop.start()


def test_dict_observations_and_integer_frames_are_checked_where_they_can_be_non_finite():
    class DictObs(Faulty):
        def step(self, action):
            obs, reward, terminated, truncated, info = super().step(action)
            return {"frame": np.zeros((2, 2), np.uint8), "state": obs}, reward, terminated, truncated, info

    with pytest.raises(NonFiniteOutputError, match=r"observation \(\['state'\]: 1 of 2 entries non-finite"):
        run_episode(DictObs(2, "obs", np.nan), lambda obs: np.zeros(1, np.float32))
    episode = run_episode(DictObs(99, "obs", np.nan), lambda obs: np.zeros(1, np.float32))
    assert episode.steps == 10 and episode.total_reward == 10.0
