"""Policy-guided MPC as a learning agent: MBPO learns, the planner acts once the model is fitted."""

import gymnasium as gym
import numpy as np
import pytest

from forethought.agents import MBPO, GuidedMPC, GuidedMPCConfig, MBPOConfig
from forethought.config import load_config
from forethought.serialization import CheckpointError

SMALL = ["model.ensemble_size=2", "model.hidden_size=16", "model.hidden_layers=1", "train.max_epochs=2",
         "sac.hidden_size=16", "sac.batch_size=16", "sac.learning_starts=30", "model_every=100",
         "rollout_every=100", "rollout_starts=10", "policy_updates=1", "planner.horizon=3", "planner.particles=2",
         "planner.settings={population: 8, elites: 2, iterations: 1}", "hybrid.proposals=2"]


def small(*extra):
    return load_config(GuidedMPCConfig, None, [*SMALL, *extra])


def test_it_acts_as_the_policy_until_the_model_is_fitted_then_plans():
    agent = GuidedMPC(gym.make("Pendulum-v1"), small(), seed=0)
    obs, _ = agent.env.reset(seed=1)
    np.testing.assert_array_equal(agent.act(obs), agent.sac.act(obs))
    assert agent.controller is None
    first = agent.learn(steps=200)[0]
    assert first.env_steps == 200 and agent.model_fitted_at == 130  # fitted at 30, then every 100
    # planned every step after the 30 random ones: 170 of the episode's 200
    assert first.info["plan_ms_per_step"] > 0 and first.info["fallback_fraction"] == 0.0
    assert 0.0 <= first.info["proposal_win_fraction"] <= 1.0
    assert agent.controller.steps == 170


def test_with_a_zero_threshold_the_policy_acts_every_planned_step():
    agent = GuidedMPC(gym.make("Pendulum-v1"), small("hybrid.fallback_threshold=0.0"), seed=0)
    first = agent.learn(steps=200)[0]
    assert first.info["fallback_fraction"] == 1.0
    obs, _ = agent.env.reset(seed=2)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), agent.sac.act(obs, deterministic=True))


@pytest.mark.parametrize("override, message", [
    ("planner.optimizer=ilqr", "planner.optimizer must be one that takes policy proposals"),
    ("planner.replan_every=2", "planner.replan_every must be 1"),
    ("hybrid.proposals=-1", "proposals must be an integer >= 0"),
])
def test_bad_settings_are_refused_by_name(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(GuidedMPCConfig, None, [override])


def test_an_mbpo_checkpoint_is_not_loaded_as_a_guided_agent(tmp_path):
    config = load_config(MBPOConfig, None, SMALL[:-5])
    MBPO(gym.make("Pendulum-v1"), config, seed=0).save(tmp_path / "mbpo")
    with pytest.raises(CheckpointError, match="holds a saved MBPO agent, not a GuidedMPC agent"):
        GuidedMPC.load(tmp_path / "mbpo", gym.make("Pendulum-v1"))
