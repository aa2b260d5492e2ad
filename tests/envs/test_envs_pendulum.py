"""PendulumSwingUpEnv and pendulum_step: Pendulum-v1 physics and reward, hanging start."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.envs import PendulumParams, PendulumSwingUpEnv, pendulum_step, task_functions


def test_starts_hanging_down():
    env = PendulumSwingUpEnv()
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        assert obs[0] < -0.99 and abs(obs[2]) <= 0.05
    assert env.max_episode_steps == 200 and env.dt == 0.05


def test_matches_gymnasium_pendulum_from_the_same_state():
    ours, theirs = PendulumSwingUpEnv(), gym.make("Pendulum-v1").unwrapped
    ours.reset(seed=0)
    theirs.reset(seed=0)
    ours._theta, ours._theta_dot = 2.5, -1.0
    theirs.state = np.array([2.5, -1.0])
    rng = np.random.default_rng(0)
    for _ in range(100):
        action = rng.uniform(-2, 2, size=1).astype(np.float32)
        obs, reward, *_ = ours.step(action)
        expected_obs, expected_reward, *_ = theirs.step(action)
        np.testing.assert_allclose(obs, expected_obs, atol=1e-5)  # theirs is float32
        assert reward == pytest.approx(float(expected_reward), abs=1e-5)


def test_torch_step_reproduces_env_step_and_reward_matches_task_function():
    env = PendulumSwingUpEnv()
    obs, _ = env.reset(seed=1)
    env.action_space.seed(1)
    functions = task_functions("pendulum-swingup")
    for _ in range(100):
        action = env.action_space.sample()
        next_obs, reward, *_ = env.step(action)
        batch = [torch.tensor(v, dtype=torch.float64)[None] for v in (obs, action, next_obs)]
        np.testing.assert_allclose(pendulum_step(batch[0], batch[1])[0].numpy(), next_obs, atol=1e-12)
        assert functions.reward(*batch).item() == pytest.approx(reward, abs=1e-9)
        obs = next_obs


def test_speed_is_clipped_and_torch_step_is_differentiable():
    obs = torch.tensor([[math.cos(0.1), math.sin(0.1), 7.9], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    action = torch.tensor([[2.0], [1.0]], dtype=torch.float64, requires_grad=True)
    next_obs = pendulum_step(obs, action)
    assert next_obs[0, 2].item() == 8.0
    next_obs[1, 2].backward()
    assert action.grad[1, 0].item() == pytest.approx(3.0 * 0.05)  # 3 / (m l^2) * dt
    tilted = torch.tensor([[math.cos(1.0), math.sin(1.0), 0.0]], dtype=torch.float64)
    heavier = pendulum_step(tilted, torch.zeros(1, 1), PendulumParams(gravity=20.0))
    assert heavier[0, 2] > pendulum_step(tilted, torch.zeros(1, 1))[0, 2] > 0  # gravity pulls it down


def test_render_follows_the_angle():
    env = PendulumSwingUpEnv(render_mode="rgb_array")
    env.reset(seed=0)
    down = env.render()
    assert down.dtype == np.uint8 and down.shape == (200, 200, 3)
    env._theta = 0.0
    assert (env.render() != down).any()


def test_rod_width_sets_the_drawn_rod_and_is_checked():
    def painted(width: float) -> int:
        env = PendulumSwingUpEnv(render_mode="rgb_array", rod_width=width)
        env.reset(seed=0)
        return int((env.render() != 255).any(-1).sum())

    # a 200-pixel frame draws the 1 m rod 80 pixels long: 0.1 -> 8 pixels wide, 0.25 -> 20
    thin, wide = painted(0.1), painted(0.25)
    assert 0.9 * 80 * 8 < thin < 1.3 * 80 * 8 and 2.2 < wide / thin < 2.8
    with pytest.raises(ValueError, match="rod_width must be in"):
        PendulumSwingUpEnv(rod_width=0.0)


def test_reset_options_choose_the_start():
    env = PendulumSwingUpEnv(init_noise=0.0)
    obs, _ = env.reset(seed=0, options={"theta": 0.3, "theta_dot": -1.0})
    assert np.allclose(obs, [math.cos(0.3), math.sin(0.3), -1.0])
    obs, _ = env.reset(seed=0)  # no options: hanging down again
    assert np.allclose(obs, [-1.0, 0.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['x'\]"):
        env.reset(options={"x": 1.0})
