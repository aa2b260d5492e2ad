"""Disturbance recovery: pushes change the state as specified; recovery is measured on the reward."""

import gymnasium as gym
import numpy as np
import pytest

from forethought import envs
from forethought.evaluation.disturbance import Push, apply_velocity_kick, push_recovery


def deadbeat(obs):
    return np.clip(-0.5 * obs, -1.0, 1.0).astype(np.float32)


def idle(obs):
    return np.zeros(1, dtype=np.float32)


def test_a_controller_that_cancels_the_push_recovers_sooner_than_one_that_waits():
    env = envs.make("linear", noise_std=0.0)
    push = Push(at_step=20, velocity=[0.9])
    fast = push_recovery(env, deadbeat, push, seed=0, window=5, tolerance=0.01)
    slow = push_recovery(env, idle, push, seed=0, window=5, tolerance=0.01)
    assert fast.survived and slow.survived
    # s' = 0.5 s + a: deadbeat returns to 0 in one step; idle halves the state each step (0.45, 0.225, ...)
    assert fast.recovery_steps == 1
    assert slow.recovery_steps == 3  # -s^2 within 0.01 of 0 once |s| < 0.1: 0.45, 0.225, 0.1125, 0.056
    assert slow.worst_reward == pytest.approx(-(0.45 ** 2), rel=1e-6)
    assert len(fast.rewards) == 50


def test_cartpole_push_adds_to_the_velocities():
    pushed, calm = envs.make("cartpole-swingup"), envs.make("cartpole-swingup")
    pushed.reset(seed=0)
    calm.reset(seed=0)
    apply_velocity_kick(pushed, [0.5, 0.0])
    a, *_ = pushed.step(np.zeros(1, dtype=np.float32))
    b, *_ = calm.step(np.zeros(1, dtype=np.float32))
    dt = pushed.unwrapped.dt
    assert a[0] - b[0] == pytest.approx(0.5 * dt, rel=0.2)  # cart position moved by about 0.5 m/s * dt more
    with pytest.raises(ValueError, match="2 finite numbers"):
        apply_velocity_kick(pushed, [1.0])


def test_gymnasium_pendulum_and_mujoco_pushes():
    pendulum = gym.make("Pendulum-v1")
    pendulum.reset(seed=0)
    before = pendulum.unwrapped.state[1]
    apply_velocity_kick(pendulum, [1.5])
    assert pendulum.unwrapped.state[1] == pytest.approx(before + 1.5)
    ip = envs.make("InvertedPendulum-v5")
    ip.reset(seed=0)
    qvel = ip.unwrapped.data.qvel.copy()
    apply_velocity_kick(ip, [0.0, 0.7])
    assert ip.unwrapped.data.qvel[1] == pytest.approx(qvel[1] + 0.7)
    with pytest.raises(ValueError, match="2 velocities"):
        apply_velocity_kick(ip, [1.0])


def test_a_force_push_on_a_mujoco_body_knocks_the_pole_over():
    ip = envs.make("InvertedPendulum-v5")
    balance = lambda obs: np.clip([10.0 * obs[1] + 1.0 * obs[3] + 0.5 * obs[2]], -3, 3).astype(np.float32)
    calm = push_recovery(ip, balance, Push(at_step=10, velocity=[0.0, 0.0]), seed=0, max_steps=60)
    hard = push_recovery(ip, balance, Push(at_step=10, force=[0.0, 0.0, 0.0, 0.0, 50.0, 0.0], body="pole",
                                           duration=5), seed=0, max_steps=60)
    assert calm.survived and len(calm.rewards) == 60
    assert not hard.survived and hard.recovery_steps is None
    assert not ip.unwrapped.data.xfrc_applied.any()  # the force is removed afterwards
    with pytest.raises(ValueError, match="no body named"):
        push_recovery(ip, balance, Push(at_step=1, force=[1.0, 0, 0], body="nose"), seed=0, max_steps=5)


def test_bad_pushes_are_rejected():
    with pytest.raises(ValueError, match="exactly one of velocity or force"):
        Push(at_step=5)
    with pytest.raises(ValueError, match="at_step"):
        Push(at_step=0, velocity=[1.0])
    with pytest.raises(ValueError, match="needs body"):
        Push(at_step=5, force=[1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="before the push"):
        push_recovery(envs.make("linear"), idle, Push(at_step=500, velocity=[1.0]), seed=0)
