"""PETS on the linear system, small enough for CI.

Measured with seed 0 (linear env, 50-step episodes): the random trial scores -23.9, the two
model-based trials -4.2 and -1.6; the oracle planner with the same settings scores -0.085.
"""

import numpy as np
import pytest

from forethought import envs
from forethought.agents import PETS, PETSConfig
from forethought.models.config import ModelConfig, TrainConfig
from forethought.planning import PlannerConfig


def small_config(**changes) -> PETSConfig:
    return PETSConfig(**{
        "model": ModelConfig(kind="pe", ensemble_size=3, hidden_size=32, hidden_layers=2),
        "train": TrainConfig(max_epochs=30, patience=5),
        "planner": PlannerConfig(horizon=6, particles=4, propagation="tsinf",
                                 settings={"population": 60, "elites": 6, "iterations": 3}),
        **changes})


@pytest.fixture(scope="module")
def learned():
    agent = PETS(envs.make("linear"), small_config())
    return agent, agent.learn(episodes=3)


def test_pets_learns_the_linear_system_within_three_trials(learned):
    agent, history = learned
    returns = [r.total_reward for r in history]
    assert history[0].random and history[0].info["model_val_loss"] is None  # the random trial
    assert history[0].info["plan_ms_per_step"] is None and not any(r.random for r in history[1:])
    assert returns[-1] > -2.0 and returns[-1] > 5 * returns[0]  # random is about -24
    assert [r.env_steps for r in history] == [50, 100, 150]
    assert all(r.info["model_val_loss"] is not None and r.info["plan_ms_per_step"] > 0 for r in history[1:])
    assert all(r.info["model_diverged"] is False for r in history[1:]) and len(agent.history) == 3


def test_oracle_mode_plans_in_the_exact_dynamics():
    oracle = PETS(envs.make("linear"), small_config(oracle=True))
    result = oracle.learn(episodes=1)[0]
    assert result.info["model_val_loss"] is None and result.info["plan_ms_per_step"] > 0 and not result.random
    assert result.total_reward > -1.0
    with pytest.raises(ValueError, match="oracle mode needs the exact dynamics"):
        PETS(envs.make("Reacher-v5"), small_config(oracle=True))  # its observation is not its MuJoCo state


def test_save_and_load_restore_the_agent(learned, tmp_path):
    agent, _ = learned
    agent.save(tmp_path / "agent")
    restored = PETS.load(tmp_path / "agent", envs.make("linear"))
    assert restored.history == agent.history
    assert np.array_equal(restored.buffer.arrays()["obs"], agent.buffer.arrays()["obs"])
    obs = agent.buffer.all().obs[:5]
    assert (restored.model.predict(obs, agent.buffer.all().action[:5]).mean
            == agent.model.predict(obs, agent.buffer.all().action[:5]).mean).all()
    assert restored.generator.get_state().equal(agent.generator.get_state())
    action = restored.act(np.array([0.5]))
    assert restored.env.action_space.contains(action)
    with pytest.raises(ValueError, match="obs/action sizes"):
        PETS.load(tmp_path / "agent", envs.make("pendulum-swingup"))
    with pytest.raises(FileNotFoundError, match="no saved PETS agent"):
        PETS.load(tmp_path, envs.make("linear"))


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="random_trials"):
        PETSConfig(random_trials=-1)
    with pytest.raises(ValueError, match="episodes must be an integer >= 1"):
        PETS(envs.make("linear"), small_config()).learn(episodes=0)


def test_an_offline_start_plans_from_the_first_trial_and_saves_the_random_one(learned, tmp_path):
    from forethought.data import collect

    logged = collect(envs.make("linear"), steps=200, seed=5)
    logged.save(tmp_path / "logged.npz")
    offline = PETS(envs.make("linear"), small_config(offline_data=str(tmp_path / "logged.npz"),
                                                     train=TrainConfig(max_epochs=30, patience=5, min_epoch_batches=4)))
    assert offline.random_trials == 0 and len(offline.buffer) == 200
    first = offline.learn(episodes=1)[0]
    _, scratch = learned
    # the first trial already plans in a model of the logged data: as good as scratch's third trial
    assert first.info["model_val_loss"] is not None and first.total_reward > -2.0 and scratch[0].total_reward < -10
    assert first.env_steps == 50 and len(offline.buffer) == 250  # logged rows are data, not this agent's steps
    offline.save(tmp_path / "agent")
    (tmp_path / "logged.npz").unlink()  # a saved agent no longer needs the logged file
    restored = PETS.load(tmp_path / "agent", envs.make("linear"))
    assert restored.config.offline_data is not None and restored.offline_rows == 200
    # a model fitted offline (here: the learned agent's) can be the starting point instead
    agent, _ = learned
    agent.model.save(tmp_path / "model")
    warm = PETS(envs.make("linear"), small_config(offline_model=str(tmp_path / "model")))
    assert warm.random_trials == 0 and warm.model.fitted
    assert warm.learn(episodes=1)[0].total_reward > -2.0
    with pytest.raises(ValueError, match="obs/action sizes"):
        PETS(envs.make("pendulum-swingup"), small_config(offline_data=str(tmp_path / "agent" / "buffer.npz")))


def test_random_trials_can_be_cut_short():
    agent = PETS(envs.make("linear"), small_config(random_trial_steps=12))
    first, second = agent.learn(episodes=2)
    assert first.steps == 12 and first.env_steps == 12
    assert second.steps == 50 and second.env_steps == 62  # planned trials run to the episode's end
    assert agent.buffer.arrays()["truncated"][11] and agent.buffer.episode_starts().tolist() == [0, 12]  # the cut ends an episode
    with pytest.raises(ValueError, match="random_trial_steps"):
        PETSConfig(random_trial_steps=0)


def test_the_model_can_be_refitted_within_a_trial():
    agent = PETS(envs.make("linear"), small_config(random_trial_steps=12, refit_every=20))
    fits = []
    fit = agent.model.fit
    agent.model.fit = lambda buffer, **kw: (fits.append(len(buffer)), fit(buffer, **kw))[1]
    agent.learn(episodes=2)
    assert fits == [12, 32, 52]  # before the 50-step planned trial, then after its 20th and 40th steps
    with pytest.raises(ValueError, match="refit_every"):
        PETSConfig(refit_every=0)
