"""SAC: squashed-Gaussian log-probabilities, action bounds, target averaging, learning, persistence."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from forethought.agents.sac import SAC, SACConfig, SquashedGaussianActor

from match_target import MatchTarget


def test_log_prob_matches_torch_tanh_normal():
    generator = torch.Generator().manual_seed(0)
    actor = SquashedGaussianActor(3, 2, 32, 2, generator)
    obs = torch.randn(64, 3, generator=generator)
    action, log_prob = actor(obs, torch.Generator().manual_seed(1))
    mean, log_std = actor.net(obs).chunk(2, dim=-1)
    dist = TransformedDistribution(Normal(mean, log_std.clamp(-20, 2).exp()), [TanhTransform()])
    expected = dist.log_prob(action.clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    ok = action.abs().max(dim=-1).values < 0.999  # torch's inverse tanh loses precision near +-1
    assert ok.sum() > 50
    torch.testing.assert_close(log_prob[ok], expected[ok], atol=2e-3, rtol=1e-4)


def test_actions_respect_asymmetric_bounds():
    env = MatchTarget()
    env.action_space = gym.spaces.Box(np.array([0.0, -5.0], np.float32), np.array([1.0, 3.0], np.float32))
    agent = SAC(env, SACConfig(hidden_size=16, initial_alpha=5.0))
    obs = np.zeros(2, np.float32)
    actions = np.stack([agent.act(obs, deterministic=False) for _ in range(500)])
    assert np.array_equal(agent.act(obs), agent.act(obs))  # deterministic by default: tanh of the mean
    assert np.all(actions >= env.action_space.low) and np.all(actions <= env.action_space.high)
    assert actions[:, 0].max() - actions[:, 0].min() > 0.5 and actions[:, 1].max() - actions[:, 1].min() > 3
    unit = torch.tensor([[0.25, -0.5]])
    torch.testing.assert_close(agent.to_unit_action(agent.to_env_action(unit)), unit)


def test_target_critic_is_polyak_average():
    env = MatchTarget()
    agent = SAC(env, SACConfig(hidden_size=16, tau=0.1, learning_starts=10, updates_per_step=0))
    agent.learn(steps=20)
    before_target = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(agent.buffer.sample(8, agent.generator))
    for old, new, online in zip(before_target, agent.critic_target.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * online)


def run_match_target(steps: int) -> SAC:
    torch.manual_seed(123)  # the agent must not depend on the global generator
    agent = SAC(MatchTarget(), SACConfig(hidden_size=64, batch_size=64, learning_starts=100, learning_rate=1e-3), seed=3)
    agent.learn(steps=steps)
    return agent


def test_learns_one_step_task():
    agent = run_match_target(800)
    obs = torch.rand(200, 2, generator=torch.Generator().manual_seed(9)) * 2 - 1
    error = (agent.policy(obs, deterministic=True) - obs).abs().mean()
    assert error < 0.2, f"mean |a - x| = {error:.3f} (a random policy: 0.67)"
    assert agent.alpha < 0.6  # the temperature falls as the policy becomes sure (Adam: at most lr per step in log)
    assert np.mean([r.total_reward for r in agent.history[-50:]]) > -0.6  # exploring; random actions: -1.33


def test_same_seed_same_agent():
    first, second = run_match_target(150), run_match_target(150)
    obs = torch.rand(20, 2)
    torch.testing.assert_close(first.policy(obs, deterministic=True), second.policy(obs, deterministic=True),
                               rtol=0, atol=0)
    assert [r.total_reward for r in first.history] == [r.total_reward for r in second.history]


def test_save_load_round_trip(tmp_path):
    agent = SAC(MatchTarget(), SACConfig(hidden_size=16, learning_starts=20), seed=1)
    agent.learn(steps=50)
    agent.save(tmp_path / "sac")
    loaded = SAC.load(tmp_path / "sac", MatchTarget())
    obs = torch.rand(10, 2)
    torch.testing.assert_close(loaded.policy(obs, True), agent.policy(obs, True), rtol=0, atol=0)
    assert loaded.env_steps == 50 and len(loaded.buffer) == 50 and loaded.alpha == pytest.approx(agent.alpha)
    assert [r.total_reward for r in loaded.history] == [r.total_reward for r in agent.history]


def test_bad_input():
    with pytest.raises(ValueError, match="Box action space"):
        SAC(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="sac.gamma"):
        SACConfig(gamma=1.0)
    with pytest.raises(ValueError, match="sac.batch_size"):
        SACConfig(batch_size=0)
    with pytest.raises(FileNotFoundError, match="no saved SAC agent"):
        SAC.load("/nonexistent/sac", MatchTarget())


def test_an_offline_start_fills_the_buffer_and_counts_towards_learning_starts(tmp_path):
    import gymnasium as gym

    from forethought.agents.mbpo import MBPO, MBPOConfig
    from forethought.data import collect
    from forethought.models.config import ModelConfig, TrainConfig

    collect(gym.make("Pendulum-v1"), steps=120, seed=3).save(tmp_path / "logged.npz")
    config = SACConfig(hidden_size=16, batch_size=16, learning_starts=100, offline_data=str(tmp_path / "logged.npz"))
    agent = SAC(gym.make("Pendulum-v1"), config)
    assert agent.offline_rows == 120 and len(agent.buffer) == 120 and agent.stored_steps == 120
    agent.learn(steps=5)
    assert agent.updates == 5 and agent.env_steps == 5  # learning from the first real step: no random warm-up
    agent.save(tmp_path / "sac")
    (tmp_path / "logged.npz").rename(tmp_path / "moved.npz")  # a saved agent does not need the logged file
    restored = SAC.load(tmp_path / "sac", gym.make("Pendulum-v1"))
    assert restored.offline_rows == 120 and len(restored.buffer) == 125
    mbpo = MBPO(gym.make("Pendulum-v1"), MBPOConfig(
        sac=SACConfig(hidden_size=16, batch_size=16, learning_starts=100, offline_data=str(tmp_path / "moved.npz")),
        model=ModelConfig(kind="pe", ensemble_size=2, hidden_size=16, hidden_layers=1), train=TrainConfig(max_epochs=2),
        rollout_starts=10, policy_updates=1))
    mbpo.learn(steps=1)
    assert mbpo.model.fitted and mbpo.log and mbpo.log[0]["env_steps"] == 1  # model and rollouts from step 1
    with pytest.raises(ValueError, match="obs/action sizes"):
        SAC(gym.make("MountainCarContinuous-v0"), SACConfig(offline_data=str(tmp_path / "moved.npz")))
