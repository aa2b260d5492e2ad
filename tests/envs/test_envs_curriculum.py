"""The start-state curriculum of the swing-up tasks: exact start bounds per stage, widening on
training returns, the task's own start at the end, replay, bad settings."""

import math

import numpy as np
import pytest

from forethought import envs
from forethought.envs.curriculum import CurriculumConfig, StartCurriculum, with_curriculum

CONFIG = CurriculumConfig(start_spread=0.5, widen_by=1.0, widen_when_return_above=10.0)


def start_angles(env, seeds=range(200)):
    """The pole angle (rad, 0 upright, in (-pi, pi]) of the first observation for each seed."""
    angles = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        angles.append(math.atan2(obs[3], obs[2]) if obs.shape[0] == 5 else math.atan2(obs[1], obs[0]))
    return np.array(angles)


def test_the_start_widens_stage_by_stage_to_the_tasks_own():
    env = with_curriculum(envs.make("cartpole-swingup", init_noise_std=0.0), CONFIG)
    assert isinstance(env, StartCurriculum) and env.spread == 0.5
    for spread in (0.5, 1.5, 2.5):
        angles = start_angles(env)
        assert np.abs(angles).max() <= spread and np.abs(angles).max() > 0.95 * spread  # uniform in [-s, s]
        assert angles.min() < -0.9 * spread
        env.record(10.0)  # not above the threshold: no change
        assert env.spread == spread
        env.record(10.5)
    assert env.spread is None  # 3.5 >= pi: the task's own start, hanging down
    assert np.all(np.abs(start_angles(env, range(20))) == math.pi)
    env.record(100.0)
    assert env.spread is None and env.widenings == 3


def test_the_same_seed_gives_the_same_start_and_replay_rebuilds_the_stage():
    env = with_curriculum(envs.make("cartpole-swingup"), CONFIG)
    first, _ = env.reset(seed=7)
    again, _ = env.reset(seed=7)
    assert np.array_equal(first, again)
    env.replay([20.0, 3.0, 50.0])
    assert env.widenings == 2 and env.spread == 2.5
    env.replay([])
    assert env.spread == 0.5


def test_the_pendulum_swingup_takes_the_curriculum_too():
    env = with_curriculum(envs.make("pendulum-swingup", init_noise=0.0), CONFIG)
    angles = start_angles(env, range(100))
    assert np.abs(angles).max() <= 0.5 and np.abs(angles).max() > 0.45


def test_the_cartpole_reset_options_move_the_start_and_keep_the_default():
    env = envs.make("cartpole-swingup")
    plain, _ = env.reset(seed=3)
    explicit, _ = env.reset(seed=3, options={"theta": math.pi})
    assert np.array_equal(plain, explicit)
    moved, _ = envs.make("cartpole-swingup", init_noise_std=0.0).reset(seed=3, options={"theta": 0.25, "x": 1.0})
    assert np.allclose(moved, [1.0, 0.0, math.cos(0.25), math.sin(0.25), 0.0], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['angle'\]"):
        env.reset(seed=0, options={"angle": 1.0})


def test_no_curriculum_leaves_the_env_alone_and_others_are_refused():
    env = envs.make("cartpole-swingup")
    assert with_curriculum(env, CurriculumConfig()) is env
    with pytest.raises(ValueError, match="curriculum.start_spread needs cartpole-swingup or pendulum-swingup"):
        with_curriculum(envs.make("Pendulum-v1"), CONFIG)


@pytest.mark.parametrize("key, value, message", [
    ("start_spread", 0.0, "curriculum.start_spread must be None (no curriculum) or radians in (0, pi), got 0.0"),
    ("start_spread", 3.5, "curriculum.start_spread must be None (no curriculum) or radians in (0, pi), got 3.5"),
    ("widen_by", -1.0, "curriculum.widen_by must be radians > 0, got -1.0"),
    ("widen_when_return_above", math.inf, "curriculum.widen_when_return_above must be a finite number, got inf"),
])
def test_bad_curriculum_settings_are_refused_by_name(key, value, message):
    with pytest.raises(ValueError) as err:
        CurriculumConfig(**{"start_spread": 0.5, key: value})
    assert str(err.value) == message
