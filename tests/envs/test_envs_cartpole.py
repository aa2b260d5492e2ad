"""CartPoleSwingUpEnv and cartpole_step: physics, reward shape, torch/env agreement, rendering."""

import math

import numpy as np
import pytest
import torch

from forethought.envs import CartPoleParams, CartPoleSwingUpEnv, cartpole_step, task_functions


def _set_state(env: CartPoleSwingUpEnv, x=0.0, x_dot=0.0, theta=math.pi, theta_dot=0.0) -> np.ndarray:
    env.reset(seed=0)
    env._state = (x, x_dot, theta, theta_dot)
    return env._obs()


def _energy(obs: np.ndarray, p: CartPoleParams) -> float:
    """Kinetic plus potential energy (J) of cart and uniform rod; zero height at the hinge."""
    _, x_dot, cos, _, theta_dot = obs
    M, m, l, g = p.cart_mass, p.pole_mass, p.pole_length, p.gravity
    kinetic = 0.5 * (M + m) * x_dot**2 + 0.5 * m * l * cos * x_dot * theta_dot + m * l**2 * theta_dot**2 / 6
    return kinetic + m * g * 0.5 * l * cos


def test_starts_hanging_down_with_small_noise_and_documented_spaces():
    env = CartPoleSwingUpEnv()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5,) and env.action_space.shape == (1,)
    assert env.dt == 0.1 and env.substeps == 10 and env.max_episode_steps == 100
    assert obs[2] < -0.9 and abs(obs[0]) < 0.5  # cos(theta) near -1: hanging
    assert env.metadata["render_fps"] == 10


def test_torch_step_reproduces_env_step():
    env = CartPoleSwingUpEnv()
    obs, _ = env.reset(seed=4)
    env.action_space.seed(4)
    for _ in range(60):
        action = env.action_space.sample()
        next_obs, *_ = env.step(action)
        predicted = cartpole_step(torch.from_numpy(obs)[None], torch.tensor(action, dtype=torch.float64)[None])
        np.testing.assert_allclose(predicted[0].numpy(), next_obs, atol=1e-9)
        single = cartpole_step(torch.tensor(obs, dtype=torch.float32)[None], torch.tensor(action)[None])
        np.testing.assert_allclose(single[0].double().numpy(), next_obs, atol=1e-4)
        obs = next_obs


def test_torch_step_is_batched_differentiable_and_uses_given_params():
    tilted = [0.1, 0.2, math.cos(0.3), math.sin(0.3), -0.5]
    obs = torch.tensor([[0.0, 0.0, -1.0, 0.0, 0.0], tilted], dtype=torch.float64)
    action = torch.tensor([[0.5], [-0.2]], dtype=torch.float64, requires_grad=True)
    next_obs = cartpole_step(obs, action)
    assert next_obs.shape == (2, 5)
    next_obs[:, 1].sum().backward()
    assert torch.all(action.grad > 0)  # pushing harder accelerates the cart more
    wrong = cartpole_step(obs, action.detach(), CartPoleParams(pole_length=0.8))
    assert (wrong - next_obs.detach()).abs().max() > 1e-3


def test_energy_conserved_without_friction_or_force():
    params = CartPoleParams(friction=0.0)
    env = CartPoleSwingUpEnv(params=params)
    obs = _set_state(env, x_dot=0.3, theta=1.0, theta_dot=-2.0)
    start = _energy(obs, params)
    for _ in range(30):
        obs, *_ = env.step(np.zeros(1))
        assert _energy(obs, params) == pytest.approx(start, abs=1e-4)
    moved = abs(obs[0]) > 0.05 and abs(obs[4]) > 0.1  # the state did change
    assert moved


def test_friction_dissipates_energy():
    params = CartPoleParams(friction=2.0)
    env = CartPoleSwingUpEnv(params=params)
    obs = _set_state(env, x_dot=1.0, theta=1.0)
    start = _energy(obs, params)
    for _ in range(20):
        obs, *_ = env.step(np.zeros(1))
    assert _energy(obs, params) < start - 0.05


def test_hanging_pole_stays_down_and_force_pushes_cart():
    env = CartPoleSwingUpEnv()
    _set_state(env)
    obs, *_ = env.step(np.zeros(1))
    np.testing.assert_allclose(obs, [0.0, 0.0, -1.0, 0.0, 0.0], atol=1e-12)
    obs, *_ = env.step(np.ones(1))
    assert obs[0] > 0 and obs[1] > 0


def test_reward_near_one_upright_and_small_hanging():
    env = CartPoleSwingUpEnv()
    _set_state(env, theta=0.0)
    _, upright, *_ = env.step(np.zeros(1))
    _set_state(env, theta=math.pi)
    _, hanging, *_ = env.step(np.zeros(1))
    _, pushing, *_ = env.step(np.ones(1))
    assert upright == pytest.approx(1.0, abs=1e-3)
    assert 0 <= hanging < 1e-3
    assert pushing == pytest.approx(-0.01, abs=1e-3)


def test_reward_matches_task_function():
    env = CartPoleSwingUpEnv()
    obs, _ = env.reset(seed=2)
    env.action_space.seed(2)
    functions = task_functions("cartpole-swingup")
    for _ in range(100):
        action = env.action_space.sample()
        next_obs, reward, terminated, *_ = env.step(action)
        batch = [torch.tensor(v, dtype=torch.float64)[None] for v in (obs, action, next_obs)]
        assert functions.reward(*batch).item() == pytest.approx(reward, abs=1e-6)
        assert functions.termination(*batch).item() == terminated
        obs = next_obs


def test_random_policy_never_scores_high():
    env = CartPoleSwingUpEnv()
    env.action_space.seed(0)
    for episode in range(5):
        env.reset(seed=episode)
        total, truncated = 0.0, False
        while not truncated:
            _, reward, _, truncated, _ = env.step(env.action_space.sample())
            total += reward
        assert total < 10.0  # balancing scores ~100


def test_render_is_uint8_frame_that_follows_the_state():
    env = CartPoleSwingUpEnv(render_mode="rgb_array", render_size=(120, 160))
    _set_state(env)
    hanging = env.render()
    assert hanging.shape == (120, 160, 3) and hanging.dtype == np.uint8
    assert len(np.unique(hanging.reshape(-1, 3), axis=0)) >= 4  # track, cart, pole, target drawn
    _set_state(env, x=0.5, theta=0.0)
    assert (env.render() != hanging).any(axis=-1).sum() > 50
    assert CartPoleSwingUpEnv().render() is None


def test_control_period_is_configurable():
    env = CartPoleSwingUpEnv(dt=0.05)
    assert env.substeps == 5 and env.metadata["render_fps"] == 20
    with pytest.raises(ValueError, match="pole_length"):
        CartPoleParams(pole_length=0.0)
