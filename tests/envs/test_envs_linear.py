"""LinearSystemEnv: exact linear transition, quadratic reward, shape validation, truncation."""

import numpy as np
import pytest
import torch

from forethought.envs import LinearSystemEnv, task_functions
from forethought.envs.linear import quadratic_regulation_reward

A = np.array([[0.9, 0.1], [-0.2, 0.8]])
B = np.array([[1.0, 0.0], [0.5, 0.3]])
C = np.array([0.05, -0.1])


def test_default_is_one_dimensional_with_documented_values():
    env = LinearSystemEnv()
    assert env.A.tolist() == [[0.5]] and env.B.tolist() == [[1.0]] and env.c.tolist() == [0.0]
    assert env.action_space.shape == (1,) and env.observation_space.shape == (1,)


def test_zero_noise_next_state_is_exactly_affine():
    env = LinearSystemEnv(A=A, B=B, c=C, noise_std=0.0)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, size=2)
        next_obs, reward, terminated, _, _ = env.step(action)
        np.testing.assert_array_equal(next_obs, A @ obs + B @ action + C)
        assert reward == pytest.approx(-(next_obs @ next_obs + 0.1 * action @ action), abs=1e-12)
        assert terminated is False
        obs = next_obs


def test_noise_has_requested_per_dimension_scale():
    env = LinearSystemEnv(A=np.zeros((2, 2)), B=np.zeros((2, 1)), noise_std=[0.0, 0.5], max_episode_steps=2000)
    env.reset(seed=0)
    states = np.array([env.step(np.zeros(1))[0] for _ in range(2000)])
    assert np.all(states[:, 0] == 0.0)
    assert states[:, 1].std() == pytest.approx(0.5, rel=0.1)


def test_reward_matches_task_function_with_default_weights():
    env = LinearSystemEnv(A=A, B=B, c=C)
    obs, _ = env.reset(seed=1)
    functions = task_functions("linear")
    for _ in range(10):
        action = env.action_space.sample()
        next_obs, reward, *_ = env.step(action)
        batch = [torch.tensor(v, dtype=torch.float64)[None] for v in (obs, action, next_obs)]
        assert functions.reward(*batch).item() == pytest.approx(reward, abs=1e-6)
        assert not functions.termination(*batch).item()
        obs = next_obs


def test_custom_weights_in_batched_reward():
    Q, R = torch.diag(torch.tensor([2.0, 3.0])), torch.tensor([[0.5]])
    next_obs, action = torch.tensor([[1.0, 1.0], [0.0, 2.0]]), torch.tensor([[2.0], [0.0]])
    assert quadratic_regulation_reward(next_obs, action, Q, R).tolist() == [-7.0, -12.0]


def test_truncates_after_episode_length_and_then_refuses_to_step():
    env = LinearSystemEnv(max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(1))[3] for _ in range(3)]
    assert flags == [False, False, True]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"A": np.ones((2, 3))}, "A must be square"),
        ({"A": np.eye(2), "B": np.ones((3, 1))}, r"B must have shape \(2, m\)"),
        ({"A": np.eye(2), "B": np.ones(2)}, r"B must have shape"),
        ({"A": np.eye(2), "B": np.ones((2, 1)), "c": np.ones(3)}, r"c must be a scalar or have shape \(2,\)"),
        ({"noise_std": -1.0}, "noise_std must be finite and >= 0"),
        ({"A": np.array([[np.nan]])}, "A must be finite"),
    ],
)
def test_rejects_badly_shaped_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LinearSystemEnv(**kwargs)


def test_rgb_array_frames_draw_one_bar_per_state_dimension():
    env = LinearSystemEnv(A=np.eye(2) * 0.5, B=np.eye(2), init_range=1.0, render_mode="rgb_array", render_size=(40, 80))
    assert env.render() is None  # before reset
    env.reset(seed=0)
    env._state = np.array([1.0, -2.0])  # half way right; all the way left (the scale is +-2 * init_range)
    frame = env.render()
    assert frame.shape == (40, 80, 3) and frame.dtype == np.uint8
    blue = (frame == (40, 60, 160)).all(axis=-1)
    top, bottom = blue[10], blue[30]  # the middle rows of the two bars
    assert top[:40].sum() == 0 and 15 <= top[40:].sum() <= 21  # value 1.0 / 2.0 of the half width
    assert bottom[40:].sum() == 0 and bottom[:40].sum() >= 38
    with pytest.raises(ValueError, match="render_mode"):
        LinearSystemEnv(render_mode="human")
