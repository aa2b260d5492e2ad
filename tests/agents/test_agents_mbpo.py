"""MBPO: rollout-length schedule, mixed batches, branched rollouts into the model buffer, learning."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.agents.imagination import mixed_batch
from forethought.agents.mbpo import MBPO, MBPOConfig
from forethought.agents.sac import SACConfig
from forethought.data import ReplayBuffer
from forethought.envs.task_functions import TaskFunctions
from forethought.models.config import ModelConfig, TrainConfig
from forethought.models.known import KnownDynamics

from match_target import MatchTarget

SMALL_MODEL = dict(model=ModelConfig(kind="pe", ensemble_size=3, hidden_size=32, hidden_layers=2),
                   train=TrainConfig(max_epochs=5, patience=2))
MATCH_TASK = TaskFunctions(reward=lambda o, a, n: -((a - o) ** 2).sum(-1),
                           termination=lambda o, a, n: torch.ones(len(o), dtype=torch.bool))


def test_rollout_length_schedule():
    config = MBPOConfig(min_rollout_length=1, max_rollout_length=15, rollout_schedule=(1000, 5000))
    assert [config.scheduled_rollout_length(s) for s in (0, 1000, 3000, 4999, 5000, 20000)] == [1, 1, 8, 14, 15, 15]
    assert MBPOConfig(min_rollout_length=3, max_rollout_length=3).scheduled_rollout_length(10**6) == 3


def test_mixed_batch_takes_the_real_fraction_from_the_real_buffer():
    real, imagined = ReplayBuffer(1, 1), ReplayBuffer(1, 1)
    real.add_batch(np.zeros((10, 1)), np.zeros((10, 1)), np.zeros(10), np.zeros((10, 1)))
    generator = torch.Generator().manual_seed(0)
    assert mixed_batch(real, imagined, 8, 0.25, generator).obs.sum() == 0  # nothing imagined yet: all real
    imagined.add_batch(np.ones((10, 1)), np.zeros((10, 1)), np.zeros(10), np.zeros((10, 1)))
    batch = mixed_batch(real, imagined, 8, 0.25, generator)
    assert batch.obs[:, 0].tolist() == [0.0] * 2 + [1.0] * 6


def test_rollouts_fill_the_model_buffer_and_drop_non_finite_rows():
    agent = MBPO(gym.make("Pendulum-v1"), MBPOConfig(sac=SACConfig(hidden_size=16), rollout_starts=50,
                                                     min_rollout_length=3, max_rollout_length=3, **SMALL_MODEL))
    agent.sac.learn(steps=20)
    # a model that diverges wherever the policy pushes with a positive torque
    agent.model = KnownDynamics(lambda o, a: torch.where(a[:, :1] > 0, torch.inf, o), 3, 1)
    agent._rollouts(agent.sac.env_steps)
    entry = agent.log[-1]
    assert entry["rollout_length"] == 3 and entry["non_finite_rows"] > 0
    assert entry["rows"] + entry["non_finite_rows"] == 150  # Pendulum never terminates
    assert len(agent.model_buffer) == entry["rows"] and np.isfinite(agent.model_buffer.arrays()["next_obs"]).all()
    assert agent.model_buffer.capacity == agent.config.model_retain * 50 * 3


def test_learns_one_step_task_from_few_real_steps():
    config = MBPOConfig(sac=SACConfig(hidden_size=64, batch_size=64, learning_starts=100, learning_rate=1e-3),
                        model_every=50, rollout_every=50, rollout_starts=200, min_rollout_length=1,
                        max_rollout_length=1, policy_updates=5, **SMALL_MODEL)
    agent = MBPO(MatchTarget(), config, task=MATCH_TASK, seed=2)
    agent.learn(steps=250)
    obs = torch.rand(200, 2, generator=torch.Generator().manual_seed(9)) * 2 - 1
    error = float((agent.sac.policy(obs, deterministic=True) - obs).abs().mean())
    assert error < 0.2, f"mean |a - x| = {error:.3f} (a random policy: 0.67)"
    assert [entry["env_steps"] for entry in agent.log] == [100, 150, 200, 250]
    assert agent.sac.updates == 5 * 151


def test_save_load_round_trip(tmp_path):
    config = MBPOConfig(sac=SACConfig(hidden_size=16, batch_size=16, learning_starts=30), rollout_starts=20,
                        model_every=20, rollout_every=20, policy_updates=2, **SMALL_MODEL)
    agent = MBPO(gym.make("Pendulum-v1"), config)
    agent.learn(steps=60)
    agent.save(tmp_path / "mbpo")
    loaded = MBPO.load(tmp_path / "mbpo", gym.make("Pendulum-v1"))
    obs = torch.randn(8, 3)
    torch.testing.assert_close(loaded.sac.policy(obs, True), agent.sac.policy(obs, True), rtol=0, atol=0)
    assert len(loaded.model_buffer) == len(agent.model_buffer) > 0 and loaded.log == agent.log
    torch.testing.assert_close(loaded.model.predict(obs, torch.zeros(8, 1)).mean,
                               agent.model.predict(obs, torch.zeros(8, 1)).mean)


def test_auto_rollout_length_is_chosen_before_every_fit_on_the_steps_since_the_last(tmp_path):
    config = MBPOConfig(sac=SACConfig(hidden_size=16, batch_size=16, learning_starts=40), rollout_starts=20,
                        model_every=40, rollout_every=40, policy_updates=1, min_rollout_length=2,
                        max_rollout_length=6, rollout_length="auto", **SMALL_MODEL)
    agent = MBPO(gym.make("Pendulum-v1"), config)
    agent.learn(steps=120)  # fits at 40 (no model yet: nothing measured), 80 and 120
    choices = agent.auto_length.history
    assert [c.rows for c in choices] == [40, 40] and all(2 <= c.horizon <= 6 for c in choices)
    assert all(len(c.errors) == 6 for c in choices)  # Pendulum episodes are 200 steps: every h measured
    assert [entry["rollout_length"] for entry in agent.log] == [2, choices[0].horizon, choices[1].horizon]
    agent.save(tmp_path / "mbpo")
    loaded = MBPO.load(tmp_path / "mbpo", gym.make("Pendulum-v1"))
    assert loaded.auto_length.state() == agent.auto_length.state() and loaded.stored_at_fit == 120
    with pytest.raises(ValueError, match="rollout_length must be 'schedule' or 'auto', got 'long'"):
        MBPOConfig(rollout_length="long")
    with pytest.raises(ValueError, match="rollout_threshold must be a finite number > 0"):
        MBPOConfig(rollout_threshold=0.0)


def test_bad_config():
    with pytest.raises(ValueError, match="max_rollout_length"):
        MBPOConfig(min_rollout_length=5, max_rollout_length=2)
    with pytest.raises(ValueError, match="real_fraction"):
        MBPOConfig(real_fraction=1.5)
    with pytest.raises(ValueError, match="rollout_schedule"):
        MBPOConfig(rollout_schedule=(10, 5))


def test_guided_planner_plans_in_the_agents_model_with_its_policy():
    config = MBPOConfig(sac=SACConfig(hidden_size=16, batch_size=16, learning_starts=30), rollout_starts=20,
                        model_every=20, rollout_every=20, policy_updates=1, **SMALL_MODEL)
    env = gym.make("Pendulum-v1")
    agent = MBPO(env, config)
    agent.learn(steps=40)
    from forethought.agents import HybridConfig
    from forethought.planning import PlannerConfig

    planner = agent.guided_planner(PlannerConfig(optimizer="cem", horizon=4, particles=2,
                                                 settings={"population": 10, "elites": 2, "iterations": 1}),
                                   HybridConfig(proposals=3, fallback_threshold=1e9))
    obs, _ = env.reset(seed=0)
    action = planner.act(obs)
    assert env.action_space.contains(action) and planner.steps == 1 and planner.fallbacks == 0
    assert planner.last_disagreement is not None and planner.last_disagreement >= 0
