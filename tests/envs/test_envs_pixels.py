"""The pixel-observation wrapper: frames, action repeat, resizing, bad input."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from forethought.envs import OWN_ENVS, ActionRepeat, make
from forethought.envs.pixels import PixelObservation, make_pixel_env, resize_frame


def test_frames_are_channel_first_uint8_and_info_has_the_state():
    env = make_pixel_env("cartpole-swingup", size=32)
    frame, info = env.reset(seed=0)
    assert frame.shape == (3, 32, 32) and frame.dtype == np.uint8 and env.observation_space.contains(frame)
    assert info["state"].shape == (5,)
    assert frame.min() < 100 < frame.max()  # something is drawn on the white background


def test_action_repeat_sums_rewards_and_counts_steps():
    pixel = make_pixel_env("pendulum-swingup", size=16, action_repeat=3, max_episode_steps=7)
    bare = make("pendulum-swingup", max_episode_steps=7)
    pixel.reset(seed=4)
    bare.reset(seed=4)
    rewards, steps = [], []
    for _ in range(3):
        _, reward, terminated, truncated, info = pixel.step(np.array([0.5]))
        rewards.append(reward), steps.append(info["repeat_steps"])
    assert steps == [3, 3, 1] and truncated and not terminated  # the episode ends inside the third repeat
    expected = [bare.step(np.array([0.5]))[1] for _ in range(7)]
    assert rewards == pytest.approx([sum(expected[:3]), sum(expected[3:6]), expected[6]])


def test_resize_is_an_exact_box_average():
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[:2, :2] = 200
    frame[0, 0] = 100
    small = resize_frame(frame, 2)
    assert small.shape == (2, 2, 3) and small[0, 0, 0] == 175 and small[1, 1, 0] == 0
    assert resize_frame(np.zeros((30, 45, 3), np.uint8), 8).shape == (8, 8, 3)  # not a multiple: PIL's box filter


def test_mujoco_task_renders_at_the_size():
    env = make_pixel_env("InvertedPendulum-v5", size=32)
    frame, info = env.reset(seed=0)
    assert frame.shape == (3, 32, 32) and info["state"].shape == (4,)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        PixelObservation(make("pendulum-swingup"))
    with pytest.raises(ValueError, match="size"):
        make_pixel_env("pendulum-swingup", size=4)
    with pytest.raises(ValueError, match="action_repeat"):
        make_pixel_env("pendulum-swingup", action_repeat=0)
    with pytest.raises(ValueError, match=r"\[H, W, 3\] uint8"):
        resize_frame(np.zeros((4, 4), np.uint8), 2)


@pytest.mark.parametrize("name", [*OWN_ENVS, "InvertedPendulum-v5"])
def test_the_pixel_wrapper_passes_gymnasiums_env_checker(name):
    env = make_pixel_env(name, size=16, action_repeat=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checker's advice about wrapped and unbounded spaces
        check_env(env, skip_render_check=True)
    frame, _ = env.reset(seed=0)
    assert frame.shape == (3, 16, 16) and frame.min() < frame.max()  # something is drawn
    if env.spec is not None:  # a Gymnasium id: the wrappers are recorded, so the env can be made again
        again = gym.make(env.spec)
        assert isinstance(again, PixelObservation) and again.size == 16 and again.action_repeat == 2


@pytest.mark.parametrize("name", ["linear", "InvertedPendulum-v5"])
def test_action_repeat_passes_gymnasiums_env_checker_and_is_recreated_from_its_spec(name):
    env = ActionRepeat(make(name), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    if env.spec is not None:
        again = gym.make(env.spec)
        assert isinstance(again, ActionRepeat) and again.repeat == 3


def test_deepmind_control_frames():
    pytest.importorskip("dm_control")
    env = make_pixel_env("dm_control/cartpole-swingup-v0", size=16, action_repeat=2)
    frame, info = env.reset(seed=0)
    assert frame.shape == (3, 16, 16) and info["state"].shape == (5,)  # the flattened state
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["repeat_steps"] == 2
