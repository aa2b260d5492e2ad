import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought import envs
from forethought.agents import MPCAgent
from forethought.data.env_loop import run_episode
from forethought.envs import TaskFunctions, analytic_step, env_task_functions
from forethought.models import KnownDynamics
from forethought.planning import ILQROptimizer, LQROptimizer, PlannerConfig, lqr


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
    agent = MPCAgent(model, task, space, PlannerConfig(optimizer="cem", horizon=3, particles=1,
                                                       propagation="expectation"))
    assert agent.act(np.array([0.0])) == 1  # move up towards 2


def test_act_is_the_agent_signature_and_reset_forgets_the_plan():
    env = envs.make("linear", noise_std=0.0)
    first, second = true_model_agent(env, replan_every=3), true_model_agent(env, replan_every=3)
    obs = np.array([0.8])
    assert np.array_equal(first.act(obs), second.act(obs, deterministic=False))  # MPC has no exploration
    assert np.array_equal(first.act(obs, deterministic=True), second.act(obs, deterministic=False))
    assert len(first.plan_ms) == 1  # the second step came from the plan
    first.reset()
    first.act(obs)
    assert len(first.plan_ms) == 2 and first.optimizer._warm is not None  # reset made it plan again


def test_the_default_planner_is_what_pets_plans_with():
    agent = MPCAgent(KnownDynamics(lambda o, a: o, 1, 1), TaskFunctions(lambda o, a, n: -n[:, 0] ** 2, None),
                     gym.spaces.Box(-1.0, 1.0, (1,)))
    assert type(agent.optimizer).__name__ == "ICEM" and agent.optimizer.population == 100
    assert agent.optimizer.elites == 10 and agent.optimizer.iterations == 3 and agent.optimizer.horizon == 15
    assert agent.evaluator.particles == 5 and agent.evaluator.propagation == "tsinf"


def unstable_linear_env():
    """x' = A x + B u with an unstable mode (eigenvalue 1.2), quadratic regulation reward."""
    return envs.make("linear", A=[[1.2, 0.1], [0.0, 0.8]], B=[[0.5], [1.0]], noise_std=0.0, action_bound=5.0,
                     init_range=1.0)


@pytest.mark.parametrize("optimizer", ["ilqr", "lqr"])
def test_mpc_with_ilqr_stabilises_an_unstable_linear_system(optimizer):
    env = unstable_linear_env()
    model = KnownDynamics(analytic_step(env), 2, 1)
    config = PlannerConfig(optimizer=optimizer, horizon=20, particles=1, propagation="expectation")
    agent = MPCAgent(model, env_task_functions(env), env.action_space, config, torch.Generator().manual_seed(0))
    assert isinstance(agent.optimizer, LQROptimizer if optimizer == "lqr" else ILQROptimizer)
    agent.reset()
    obs, _ = env.reset(seed=4)
    obs = np.array([1.0, -1.0])
    env.unwrapped._state = obs.copy()
    norms = []
    for _ in range(30):
        obs, *_ = env.step(agent.act(obs))
        norms.append(float(np.linalg.norm(obs)))
    # without control the unstable mode grows 1.2^30 = 237x; here the state shrinks every step to under 1 %
    assert norms[-1] < 0.01 * np.sqrt(2.0) and all(later < earlier for earlier, later in zip(norms[1:], norms[2:]))
    assert agent.optimizer.last_info["optimizer"] == optimizer and np.isfinite(agent.optimizer.last_info["best_score"])


def test_ilqr_first_action_is_the_finite_horizon_lqr_action():
    env = unstable_linear_env()
    model = KnownDynamics(analytic_step(env), 2, 1)
    config = PlannerConfig(optimizer="ilqr", horizon=10, particles=1, propagation="expectation")
    agent = MPCAgent(model, env_task_functions(env), env.action_space, config)
    x0 = np.array([0.5, -0.3])
    action = agent.act(x0)
    A, B = np.array([[1.2, 0.1], [0.0, 0.8]]), np.array([[0.5], [1.0]])
    # reward -(x'^T x' + 0.1 u^2) of the next state: stage cost x^T Q x + u^T R u with the state
    # cost one step later, i.e. LQR with Q on x_1..x_H, which is lqr(...) with Qf = Q and no cost on x_0
    solution = lqr(A, B, np.eye(2), [[0.1]], 10)
    assert action[0] == pytest.approx(float(solution.action(torch.tensor(x0))[0]), abs=1e-3)


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
