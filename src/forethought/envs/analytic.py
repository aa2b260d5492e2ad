"""What a planner needs from a concrete environment instance: its task functions bound to the
instance's own parameters, and (for our environments) its exact batched dynamics, the oracle.

    task = env_task_functions(env)        # reward / termination for THIS env's settings
    step = analytic_step(env)              # (obs [B, o], action [B, a]) -> next_obs [B, o], or None
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import torch
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from forethought.envs.action_repeat import ActionRepeat
from forethought.envs.cartpole_swingup import CartPoleSwingUpEnv, cartpole_step, cartpole_swingup_reward
from forethought.envs.linear import LinearSystemEnv, quadratic_regulation_reward
from forethought.envs.mujoco_step import mujoco_step
from forethought.envs.pendulum_swingup import PendulumSwingUpEnv, pendulum_reward, pendulum_step
from forethought.envs.task_functions import TaskFunctions, never_terminates, task_functions

StepFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def env_task_functions(env: gym.Env, name: str | None = None) -> TaskFunctions:
    """Reward and termination functions for ``env``.

    Our environments get functions bound to the instance's parameters (pole length, Q and R);
    any other environment is looked up in the registry by ``name`` or its Gymnasium spec id.
    """
    inner = env.unwrapped
    if isinstance(inner, CartPoleSwingUpEnv):
        length = inner.params.pole_length
        return TaskFunctions(lambda o, a, n: cartpole_swingup_reward(o, a, n, pole_length=length), never_terminates)
    if isinstance(inner, LinearSystemEnv):
        Q, R = torch.as_tensor(inner.Q, dtype=torch.float32), torch.as_tensor(inner.R, dtype=torch.float32)
        return TaskFunctions(lambda o, a, n: quadratic_regulation_reward(n, a, Q.to(n), R.to(a)), never_terminates)
    if isinstance(inner, PendulumSwingUpEnv):
        return TaskFunctions(pendulum_reward, never_terminates)
    key = name or (env.spec.id if env.spec is not None else None)
    if key is None:
        raise ValueError(f"cannot tell which task functions {type(inner).__name__} needs: pass its registered "
                         "name, or register them with forethought.envs.register_task_functions")
    return task_functions(key)


def analytic_step(env: gym.Env) -> StepFunction | None:
    """The noise-free batched dynamics of ``env``: exact functions for our environments and
    Gymnasium's Pendulum-v1, MuJoCo itself for Gymnasium MuJoCo tasks whose observation is their
    state (see :func:`~forethought.envs.mujoco_step.mujoco_step`; stepped in a fresh copy), else
    ``None``. Under :class:`~forethought.envs.ActionRepeat` the step is repeated as many times."""
    step = _single_step(env)
    repeat = action_repeat(env)
    if step is None or repeat == 1:
        return step

    def repeated(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        for _ in range(repeat):
            obs = step(obs, action)
        return obs
    return repeated


def action_repeat(env: gym.Env) -> int:
    """Environment steps per agent action: the product of the :class:`ActionRepeat` wrappers
    around ``env`` (1 without any)."""
    repeat, layer = 1, env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, ActionRepeat):
            repeat *= layer.repeat
        layer = layer.env
    return repeat


def _single_step(env: gym.Env) -> StepFunction | None:
    inner = env.unwrapped
    if isinstance(inner, CartPoleSwingUpEnv):
        params, dt, substeps = inner.params, inner.dt, inner.substeps
        return lambda obs, action: cartpole_step(obs, action, params, dt, substeps)
    if isinstance(inner, PendulumSwingUpEnv):
        params, dt = inner.params, inner.dt
        return lambda obs, action: pendulum_step(obs, action, params, dt)
    if isinstance(inner, PendulumEnv):
        return lambda obs, action: gymnasium_pendulum_step(obs, action, inner)
    if isinstance(inner, LinearSystemEnv):
        A, B, c = (torch.as_tensor(m, dtype=torch.float64) for m in (inner.A, inner.B, inner.c))
        return lambda obs, action: (obs.double() @ A.T.to(obs.device) + action.double() @ B.T.to(obs.device)
                                    + c.to(obs.device)).to(obs.dtype)
    if env.spec is not None and hasattr(inner, "frame_skip") and hasattr(inner, "model"):
        return mujoco_step(gym.make(inner.spec or env.spec))
    return None


def gymnasium_pendulum_step(obs: torch.Tensor, action: torch.Tensor, env: PendulumEnv) -> torch.Tensor:
    """Gymnasium Pendulum-v1's step, batched: ``obs [B, 3]`` = (cos th, sin th, th_dot [rad/s]),
    ``action [B, 1]`` torque [N m] (clipped to the env's ``max_torque``) -> ``next_obs [B, 3]``,
    with the env instance's ``g``, ``m``, ``l``, ``dt`` and speed limit."""
    theta = torch.atan2(obs[:, 1], obs[:, 0])
    torque = action[:, 0].clamp(-env.max_torque, env.max_torque)
    accel = 3.0 * env.g / (2.0 * env.l) * torch.sin(theta) + 3.0 / (env.m * env.l**2) * torque
    speed = (obs[:, 2] + accel * env.dt).clamp(-env.max_speed, env.max_speed)
    theta = theta + speed * env.dt
    return torch.stack([torch.cos(theta), torch.sin(theta), speed], dim=1)
