"""make(), Gymnasium compliance, seeding and action rejection for every environment we ship."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from forethought.envs import (OWN_ENVS, CartPoleSwingUpEnv, LinearSystemEnv, PendulumSwingUpEnv, make, make_vector,
                              task_functions)
from forethought.envs.make import GYMNASIUM_IDS


def test_make_returns_our_classes_and_passes_kwargs():
    assert OWN_ENVS == ("linear", "cartpole-swingup", "pendulum-swingup")
    assert isinstance(make("linear", noise_std=0.0), LinearSystemEnv)
    assert make("cartpole-swingup", dt=0.05).dt == 0.05
    assert isinstance(make("pendulum-swingup"), PendulumSwingUpEnv)


def test_make_falls_back_to_gymnasium():
    env = make("InvertedPendulum-v5")
    assert env.spec.id == "InvertedPendulum-v5" and env.observation_space.shape == (4,)
    env.close()


@pytest.mark.parametrize("name", ["no-such-env", "NoSuch-v3", "not a valid id!"])
def test_make_unknown_name_is_a_clear_error(name):
    with pytest.raises(ValueError, match=r"unknown environment .*'cartpole-swingup'.*registered Gymnasium id"):
        make(name)


@pytest.mark.parametrize("name, takes", [("linear", "A, B, c, noise_std"), ("Pendulum-v1", "render_mode, g"),
                                         ("InvertedPendulum-v5", "xml_file, frame_skip")])
def test_unknown_env_kwargs_name_the_key_and_the_env(name, takes):
    with pytest.raises(ValueError, match=rf"^environment '{name}' does not take the argument 'gravity' "
                                         rf"\(given in env_kwargs\); it takes {takes}") as caught:
        make(name, gravity=9.8)
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="does not take the argument 'gravity'"):
        make_vector(name, 2, gravity=9.8)


def test_a_constructor_type_error_about_something_else_is_left_alone(monkeypatch):
    class Broken(LinearSystemEnv):
        def __init__(self, **kwargs):  # a bug inside the constructor, not the caller's argument
            raise TypeError("helper() got an unexpected keyword argument 'inner'")

    monkeypatch.setitem(make.__globals__["_OWN_CLASSES"], "linear", Broken)
    with pytest.raises(TypeError, match="helper"):
        make("linear", noise_std=0.1)


def test_an_env_module_that_cannot_be_imported_is_a_clear_error():
    with pytest.raises(ValueError, match=r"^environment 'no_such_module:Robot-v0' needs the module 'no_such_module', "
                                         r"which cannot be imported \(No module named 'no_such_module'\): "
                                         r"pip install 'no_such_module' \(or the package that provides it\)$"):
        make("no_such_module:Robot-v0")
    with pytest.raises(ValueError, match=r"unknown environment 'json:Robot-v0'.*Robot"):
        make("json:Robot-v0")  # the module imports but registers no such environment


@pytest.mark.parametrize("name", OWN_ENVS)
def test_registered_with_gymnasium_and_has_task_functions(name):
    env = gym.make(GYMNASIUM_IDS[name])
    assert isinstance(env.unwrapped, type(make(name)))
    assert task_functions(name) == task_functions(GYMNASIUM_IDS[name])


@pytest.mark.parametrize("name", OWN_ENVS)
def test_passes_gymnasium_env_checker(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite observation bounds and the like are deliberate
        check_env(gym.make(GYMNASIUM_IDS[name]).unwrapped)


@pytest.mark.parametrize("name", OWN_ENVS)
def test_same_seed_same_trajectory(name):
    def trajectory(seed: int) -> np.ndarray:
        env = make(name)
        obs, _ = env.reset(seed=seed)
        rows = [obs]
        for action in actions:
            obs, reward, *_ = env.step(action)
            rows.append(np.append(obs, reward))
        return np.concatenate(rows)

    space = make(name).action_space
    actions = np.random.default_rng(0).uniform(space.low, space.high, size=(30, *space.shape))
    np.testing.assert_array_equal(trajectory(7), trajectory(7))
    assert not np.array_equal(trajectory(7), trajectory(8))


@pytest.mark.parametrize("name", OWN_ENVS)
def test_episode_is_truncated_never_terminated(name):
    env = make(name)
    env.reset(seed=0)
    flags = [env.step(np.zeros(env.action_space.shape))[2:4] for _ in range(env.max_episode_steps)]
    assert [terminated for terminated, _ in flags] == [False] * env.max_episode_steps
    assert [truncated for _, truncated in flags] == [False] * (env.max_episode_steps - 1) + [True]


@pytest.mark.parametrize("name", OWN_ENVS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_rejects_non_finite_actions(name, bad):
    env = make(name)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be finite.*(nan|inf)"):
        env.step(np.full(env.action_space.shape, bad))


@pytest.mark.parametrize("name", OWN_ENVS)
def test_rejects_out_of_bounds_actions_naming_value_and_bounds(name):
    env = make(name)
    env.reset(seed=0)
    high = float(env.action_space.high[0])
    action = np.zeros(env.action_space.shape)
    action[0] = 1.5 * high
    expected = rf"action\[0\]={1.5 * high!r} is outside the allowed bounds \[{-high!r}, {high!r}\]"
    with pytest.raises(ValueError, match=expected):
        env.step(action)
    env.step(np.full(env.action_space.shape, high))  # the bound itself is allowed


@pytest.mark.parametrize("name", OWN_ENVS)
def test_rejects_wrongly_shaped_actions(name):
    env = make(name)
    env.reset(seed=0)
    for action in (np.zeros(()), np.zeros((1, 1)), np.zeros(3), "push"):
        with pytest.raises(ValueError, match="action"):
            env.step(action)


def test_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        CartPoleSwingUpEnv().step(np.zeros(1))


def test_frame_size_arguments_for_each_kind_of_environment():
    from forethought.envs.make import frame_size_kwargs

    assert frame_size_kwargs("linear", 40, 60) == {"render_size": (40, 60)}
    assert frame_size_kwargs("InvertedPendulum-v5", 40, 60) == {"width": 60, "height": 40}  # through **kwargs
    assert frame_size_kwargs("shimmy:dm_control/cartpole-swingup-v0", 40, 60) == {
        "render_kwargs": {"height": 40, "width": 60}}
    assert frame_size_kwargs("CartPole-v1", 40, 60) == {}  # its frames keep their own size
    env = make("InvertedPendulum-v5", render_mode="rgb_array", **frame_size_kwargs("InvertedPendulum-v5", 40, 60))
    env.reset(seed=0)
    assert env.render().shape == (40, 60, 3)


def test_deepmind_control_model_file_notices_are_dropped_and_other_absl_warnings_kept(caplog):
    """cheetah.xml's deprecated ``settotalmass`` notice is not shown; absl's other warnings are."""
    import logging

    caplog.set_level(logging.WARNING)
    env = make("dm_control/cheetah-run-v0")
    env.close()
    logging.getLogger("absl").warning("something a user should see")
    messages = [record.getMessage() for record in caplog.records]
    assert not any("settotalmass" in m for m in messages)
    assert "something a user should see" in messages
