import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought import envs
from forethought.agents import MPCAgent, PlannerConfig, run_episode
from forethought.envs import TaskFunctions, analytic_step, env_task_functions
from forethought.models import KnownDynamics


def true_model_agent(env, **planner):
    model = KnownDynamics(analytic_step(env), 1, 1)
    config = PlannerConfig(**{"horizon": 8, "particles": 1, "propagation": "expectation",
                              "settings": {"population": 100, "elites": 10, "iterations": 5}, **planner})
    return MPCAgent(model, env_task_functions(env), env.action_space, config, torch.Generator().manual_seed(0))


def test_mpc_with_the_true_model_drives_the_linear_state_to_the_target():
    env = envs.make("linear", noise_std=0.0, init_range=1.0)
    agent = true_model_agent(env)
    obs, _ = env.reset(seed=3)
    obs = np.array([1.0])
    env.unwrapped._state = obs.copy()  # start far from the target
    states = []
    for _ in range(10):
        obs, *_ = env.step(agent.act(obs))
        states.append(float(obs[0]))
    # optimal LQR-like behaviour: the state collapses towards 0 within a couple of steps and stays there
    assert abs(states[-1]) < 0.05 and max(abs(s) for s in states[3:]) < 0.1
    assert len(agent.plan_ms) == 10 and all(ms > 0 for ms in agent.plan_ms)


def test_replanning_every_k_steps_plans_k_times_fewer():
    env = envs.make("linear", noise_std=0.0)
    agent = true_model_agent(env, replan_every=4)
    agent.reset()
    run_episode(env, agent.act, seed=0, max_steps=12)
    assert len(agent.plan_ms) == 3


def test_actions_stay_inside_the_action_space():
    env = envs.make("linear", noise_std=0.0, action_bound=0.2)
    agent = true_model_agent(env)
    obs, _ = env.reset(seed=0)
    env.unwrapped._state = np.array([5.0])  # the unconstrained optimum would need |a| >> 0.2
    action = agent.act(np.array([5.0]))
    assert env.action_space.contains(action) and abs(action[0]) == pytest.approx(0.2, abs=1e-6)


def test_discrete_actions_are_indices_of_the_space():
    space = gym.spaces.Discrete(3, start=-1)  # actions -1, 0, 1
    model = KnownDynamics(lambda obs, action: obs + action - 1.0, 1, 1)  # index i moves by i - 1
    task = TaskFunctions(lambda o, a, n: -(n[:, 0] - 2.0).abs(), lambda o, a, n: torch.zeros(len(n), dtype=torch.bool))
    agent = MPCAgent(model, task, space, PlannerConfig(horizon=3, particles=1, propagation="expectation"))
    assert agent.act(np.array([0.0])) == 1  # move up towards 2


def test_bad_planner_settings_are_named():
    with pytest.raises(ValueError, match="planner.horizon"):
        PlannerConfig(horizon=0)
    with pytest.raises(ValueError, match="replan_every"):
        PlannerConfig(horizon=5, replan_every=6)
    with pytest.raises(ValueError, match="planner.propagation must be one of"):
        PlannerConfig(propagation="sideways")
    with pytest.raises(ValueError, match="planner.compute_dtype must be"):
        PlannerConfig(compute_dtype="float16")
    with pytest.raises(ValueError, match="planner.optimizer must be one of .*'cem'"):
        PlannerConfig(optimizer="annealing")
