"""The MuJoCo oracle steps a batch exactly as the Gymnasium task does."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.envs import analytic_step


@pytest.mark.parametrize("env_id", ["InvertedPendulum-v5", "HalfCheetah-v5"])
def test_matches_the_environment_step_for_step(env_id):
    env = gym.make(env_id)
    step = analytic_step(env)
    assert step is not None
    obs, _ = env.reset(seed=3)
    env.action_space.seed(3)
    rows, actions, nexts = [], [], []
    for _ in range(40):
        action = env.action_space.sample()
        next_obs, _, terminated, truncated, _ = env.step(action)
        rows.append(obs), actions.append(action), nexts.append(next_obs)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset(seed=4)
    predicted = step(torch.tensor(np.array(rows), dtype=torch.float64), torch.tensor(np.array(actions), dtype=torch.float64))
    np.testing.assert_allclose(predicted.numpy(), np.array(nexts), atol=1e-6)
    assert predicted.dtype == torch.float64


def test_tasks_whose_observation_is_not_their_state_have_none():
    assert analytic_step(gym.make("Reacher-v5")) is None
    assert analytic_step(gym.make("CartPole-v1")) is None
