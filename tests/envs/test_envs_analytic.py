import gymnasium as gym
import pytest
import torch

from forethought import envs
from forethought.data import collect
from forethought.envs import CartPoleParams, analytic_step, env_task_functions


@pytest.mark.parametrize("name, kwargs", [
    ("linear", {"A": [[0.9, 0.1], [0.0, 0.8]], "B": [[0.0], [1.0]], "c": [0.1, 0.0], "noise_std": 0.0}),
    ("cartpole-swingup", {"params": CartPoleParams(pole_length=0.8)}),
    ("pendulum-swingup", {}),
    ("Pendulum-v1", {"g": 9.81}),
])
def test_analytic_step_and_task_functions_reproduce_the_instance(name, kwargs):
    env = envs.make(name, **kwargs)
    data = collect(env, 60, seed=0).all()
    step, task = analytic_step(env), env_task_functions(env)
    obs, action = data.obs.double(), data.action.double()
    torch.testing.assert_close(step(obs, action), data.next_obs.double(), atol=1e-5, rtol=0)
    reward = task.reward(data.obs, data.action, data.next_obs)
    torch.testing.assert_close(reward, data.reward, atol=1e-4, rtol=1e-5)
    assert not task.termination(data.obs, data.action, data.next_obs).any()


def test_linear_task_functions_use_the_instance_weights():
    env = envs.make("linear", Q=[[2.0]], R=[[0.5]], noise_std=0.0)
    reward = env_task_functions(env).reward(torch.zeros(1, 1), torch.tensor([[1.0]]), torch.tensor([[3.0]]))
    assert reward.item() == pytest.approx(-(2.0 * 9 + 0.5))


def test_gymnasium_envs_use_the_registry():
    env = envs.make("InvertedPendulum-v5")
    assert env_task_functions(env) is envs.task_functions("InvertedPendulum-v5")
    assert analytic_step(gym.make("MountainCarContinuous-v0")) is None  # neither ours nor MuJoCo: no oracle


@pytest.mark.parametrize("name", ["cartpole-swingup", "InvertedPendulum-v5"])
def test_analytic_step_repeats_under_action_repeat(name):
    env = envs.ActionRepeat(envs.make(name), 3)
    step = analytic_step(env)
    obs, _ = env.reset(seed=2)
    action = env.action_space.sample() * 0 + 0.3
    next_obs, *_ = env.step(action)
    predicted = step(torch.as_tensor(obs[None], dtype=torch.float64),
                     torch.as_tensor(action[None], dtype=torch.float64))
    assert predicted[0].numpy() == pytest.approx(next_obs, abs=1e-6)
    assert envs.analytic.action_repeat(env) == 3 and envs.analytic.action_repeat(env.env) == 1
