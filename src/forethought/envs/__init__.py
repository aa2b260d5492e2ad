"""Environments: our own (linear system, cart-pole and pendulum swing-up), any Gymnasium id through
:func:`make`, and the batched reward/termination functions planners score imagined steps with."""

from forethought.envs.headless import choose_headless_gl

choose_headless_gl()  # before anything imports MuJoCo

from forethought.envs.action_repeat import ActionRepeat
from forethought.envs.analytic import StepFunction, analytic_step, env_task_functions
from forethought.envs.cartpole_swingup import CartPoleParams, CartPoleSwingUpEnv, cartpole_step
from forethought.envs.linear import LinearSystemEnv
from forethought.envs.make import OWN_ENVS, make, make_vector, register_with_gymnasium
from forethought.envs.pendulum_swingup import PendulumParams, PendulumSwingUpEnv, pendulum_step
from forethought.envs.task_functions import TaskFunctions, register_task_functions, task_functions, with_state_cost

register_with_gymnasium()

__all__ = [
    "OWN_ENVS",
    "ActionRepeat",
    "CartPoleParams",
    "CartPoleSwingUpEnv",
    "LinearSystemEnv",
    "PendulumParams",
    "PendulumSwingUpEnv",
    "StepFunction",
    "TaskFunctions",
    "analytic_step",
    "env_task_functions",
    "cartpole_step",
    "make",
    "make_vector",
    "pendulum_step",
    "register_task_functions",
    "task_functions",
    "with_state_cost",
]
