"""The horizon read off the compounding error: the choice rule, the error it reads on a linear
system whose error grows geometrically, and PETS planning with ``horizon=auto``."""

import math

import numpy as np
import pytest
import torch

from forethought import envs
from forethought.agents import PETS, PETSConfig
from forethought.data.buffer import ReplayBuffer
from forethought.models import KnownDynamics
from forethought.models.config import ModelConfig, TrainConfig
from forethought.planning import PlannerConfig
from forethought.planning.horizon import AutoHorizon, choose_horizon, relative_rollout_error


def test_choose_the_longest_horizon_whose_errors_all_stay_under_the_threshold():
    errors = [0.1, 0.2, 0.3, 0.45, 0.6, 0.4]
    assert choose_horizon(errors, 0.5, 1, 10) == 4  # step 6 is back under, but step 5 was over
    assert choose_horizon(errors, 0.5, 1, 3) == 3
    assert choose_horizon(errors, 0.05, 2, 10) == 2  # even step 1 is over: the lower bound
    assert choose_horizon(errors, 1.0, 1, 10) == 6  # unmeasured steps are never chosen
    assert choose_horizon([0.1, math.nan], 1.0, 1, 10) == 1


def geometric_case(steps: int = 10) -> tuple[KnownDynamics, ReplayBuffer]:
    """x' = 1.1 x + u (the system, one episode from x = 1 with u = 0) and the model x' = 1.05 x + u."""
    true = 1.1 ** np.arange(steps + 1, dtype=np.float32)
    buffer = ReplayBuffer(1, 1)
    buffer.add_batch(true[:-1, None], np.zeros((steps, 1), np.float32), np.zeros(steps, np.float32), true[1:, None])
    return KnownDynamics(lambda o, a: 1.05 * o + a, 1, 1), buffer


def test_the_error_of_a_model_a_few_percent_off_grows_geometrically_and_caps_the_horizon():
    model, buffer = geometric_case()
    errors = relative_rollout_error(model, buffer, 10, torch.ones(1))
    expected = [1.1 ** t - 1.05 ** t for t in range(1, 11)]  # 0.05, 0.1075, 0.1734, 0.2486, 0.3342, ...
    assert np.allclose(errors, expected, rtol=1e-5)
    assert choose_horizon(errors, 0.2, 1, 10) == 3 and choose_horizon(errors, 0.3, 1, 10) == 4
    auto = AutoHorizon((2, 10), threshold=0.5)
    spread = float(torch.as_tensor(buffer.arrays()["next_obs"]).std())  # the state's spread, 0.502
    chosen = auto.measure(model, buffer, buffer)  # relative errors 0.0996, 0.214, 0.345, 0.4953, 0.666, ...
    assert chosen == choose_horizon([e / spread for e in expected], 0.5, 2, 10) == 4
    assert auto.history[0].rows == 10 and np.allclose(auto.history[0].errors, [e / spread for e in expected], rtol=1e-5)


def test_the_horizon_is_kept_until_there_is_held_out_data():
    model, buffer = geometric_case()
    auto = AutoHorizon((5, 30))
    assert auto.horizon == 15
    assert auto.measure(model, buffer.subset(np.arange(0)), buffer) == 15 and auto.history == []
    assert AutoHorizon((20, 30)).horizon == 20


def test_pets_chooses_its_horizon_after_every_fit_and_keeps_it_across_save_and_load(tmp_path):
    config = PETSConfig(model=ModelConfig(kind="pe", ensemble_size=3, hidden_size=32, hidden_layers=2),
                        train=TrainConfig(max_epochs=30, patience=5),
                        planner=PlannerConfig(horizon="auto", horizon_bounds=(2, 8), particles=4,
                                              settings={"population": 60, "elites": 6, "iterations": 3}))
    agent = PETS(envs.make("linear"), config)
    history = agent.learn(episodes=3)
    assert history[0].info["planning_horizon"] is None  # random
    assert history[1].info["planning_horizon"] == 8  # the start (15) clipped: no held-out data before
    assert len(agent.auto_horizon.history) == 1  # the first model, on the first planned trial's 50 steps
    assert history[2].info["planning_horizon"] == agent.auto_horizon.history[0].horizon
    assert 2 <= agent.auto_horizon.horizon <= 8 and agent.auto_horizon.history[0].rows == 50
    assert history[2].total_reward > -4.0  # random is about -24
    agent.save(tmp_path / "agent")
    restored = PETS.load(tmp_path / "agent", envs.make("linear"))
    assert restored.auto_horizon.state() == agent.auto_horizon.state() and restored.rows_at_fit == 150 - 50


def test_auto_is_refused_where_the_horizon_cannot_change():
    from forethought.agents.guided import GuidedMPCConfig
    with pytest.raises(ValueError, match="planner.horizon=auto is chosen by PETS"):
        GuidedMPCConfig(planner=PlannerConfig(horizon="auto"))
    with pytest.raises(ValueError, match="planner.exploration_bonus is PETS's"):
        GuidedMPCConfig(planner=PlannerConfig(exploration_bonus=1.0))
