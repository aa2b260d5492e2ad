"""Task functions against the rewards and terminations the real environments return."""

import uuid

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.envs import TaskFunctions, register_task_functions, task_functions


def _rollout(env_id: str, steps: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random-action transitions from the real environment, resetting when an episode ends."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = {"obs": [], "action": [], "next_obs": [], "reward": [], "terminated": []}
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(rows, (obs, action, next_obs, reward, terminated)):
            rows[key].append(np.asarray(value, dtype=np.float64))
        obs = env.reset()[0] if terminated or truncated else next_obs
    env.close()
    return {key: torch.tensor(np.array(values)) for key, values in rows.items()}


def _predict(env_id: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    functions = task_functions(env_id)
    args = (batch["obs"], batch["action"], batch["next_obs"])
    reward, terminated = functions.reward(*args), functions.termination(*args)
    assert reward.shape == terminated.shape == (len(batch["obs"]),)
    assert terminated.dtype == torch.bool and reward.is_floating_point()
    return reward, terminated


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "InvertedPendulum-v5", "Reacher-v5"])
def test_exact_reconstructions(env_id):
    batch = _rollout(env_id, 300)
    reward, terminated = _predict(env_id, batch)
    torch.testing.assert_close(reward, batch["reward"], atol=1e-5, rtol=0)
    assert torch.equal(terminated, batch["terminated"].bool())


def test_inverted_pendulum_rollout_covers_termination():
    batch = _rollout("InvertedPendulum-v5", 300)
    assert batch["terminated"].sum() >= 5  # random actions drop the pole often
    _, terminated = _predict("InvertedPendulum-v5", batch)
    assert torch.equal(terminated, batch["terminated"].bool())


def test_half_cheetah_reward_is_a_close_approximation():
    batch = _rollout("HalfCheetah-v5", 300, seed=3)
    reward, terminated = _predict("HalfCheetah-v5", batch)
    error = (reward - batch["reward"]).abs()
    assert error.mean() < 0.1 and error.max() < 0.6  # documented: mean |error| about 0.06
    assert torch.corrcoef(torch.stack([reward, batch["reward"]]))[0, 1] > 0.98
    assert not terminated.any()


def test_unknown_name_explains_how_to_register():
    with pytest.raises(ValueError, match=r"no task functions registered for 'Nope-v0'.*register_task_functions"):
        task_functions("Nope-v0")


def test_register_custom_task_functions():
    def reward(obs, action, next_obs):
        return -next_obs[:, 0].abs()

    name = f"test-envs/custom-{uuid.uuid4().hex}-v0"  # the registry is process-wide
    registered = register_task_functions(name, reward)
    assert isinstance(registered, TaskFunctions) and task_functions(name) is registered
    obs = torch.tensor([[1.0], [-2.0]])
    assert registered.reward(obs, obs, obs).tolist() == [-1.0, -2.0]
    assert registered.termination(obs, obs, obs).tolist() == [False, False]
    with pytest.raises(ValueError, match="already registered"):
        register_task_functions(name, reward)
    replaced = register_task_functions(name, reward, lambda o, a, n: n[:, 0] > 0, overwrite=True)
    assert replaced.termination(obs, obs, obs).tolist() == [True, False]
    with pytest.raises(TypeError):
        register_task_functions("test-envs/bad-v0", "not callable")


def test_state_cost_lowers_the_reward_by_the_weighted_squares():
    from forethought.envs import TaskFunctions, with_state_cost

    base = TaskFunctions(reward=lambda o, a, n: torch.ones(len(o)), termination=lambda o, a, n: n[:, 1].abs() > 0.2)
    task = with_state_cost(base, {0: 0.1, 2: 2.0})
    next_obs = torch.tensor([[0.5, 0.3, 1.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(task.reward(next_obs, torch.zeros(2, 1), next_obs), torch.tensor([1 - 0.025 - 2.0, 1.0]))
    assert task.termination(next_obs, None, next_obs).tolist() == [True, False]
    assert with_state_cost(base, {}) is base
    with pytest.raises(ValueError, match="observation indices"):
        with_state_cost(base, {0: -1.0})
    with pytest.raises(ValueError, match="observations have 3 entries"):
        with_state_cost(base, {5: 1.0}).reward(next_obs, None, next_obs)
