"""Planner + policy: policy plans seed the population; fallback where the model is unsure."""

import numpy as np
import pytest
import torch

from forethought import envs
from forethought.agents.hybrid import HybridConfig, PolicyGuidedMPC, policy_rollouts
from forethought.data import collect
from forethought.data.env_loop import run_episode
from forethought.envs import analytic_step, env_task_functions
from forethought.models import KnownDynamics, LinearGaussian
from forethought.planning import PlannerConfig


def deadbeat(obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
    """For s' = 0.5 s + a: a = -0.5 s reaches 0 in one step."""
    return (-0.5 * obs).clamp(-1.0, 1.0)


def agent_for(env, model, hybrid, fallback=None, population=2):
    planner = PlannerConfig(optimizer="random", horizon=5, particles=1, propagation="expectation",
                            settings={"population": population})
    return PolicyGuidedMPC(model, env_task_functions(env), env.action_space, deadbeat, planner, hybrid,
                           torch.Generator().manual_seed(0), fallback=fallback)


def test_policy_rollouts_follow_the_policy_in_the_model():
    env = envs.make("linear", noise_std=0.0)
    model = KnownDynamics(analytic_step(env), 1, 1)
    sequences = policy_rollouts(model, deadbeat, torch.tensor([0.8]), horizon=3, count=2,
                                generator=torch.Generator().manual_seed(0))
    assert sequences.shape == (2, 3, 1)
    assert torch.allclose(sequences[0, :, 0], torch.tensor([-0.4, 0.0, 0.0]), atol=1e-6)


def test_policy_plans_in_the_population_make_a_tiny_planner_as_good_as_the_policy():
    env = envs.make("linear", noise_std=0.0)
    model = KnownDynamics(analytic_step(env), 1, 1)
    seeded = agent_for(env, model, HybridConfig(proposals=2))
    plain = agent_for(env, model, HybridConfig(proposals=0))
    policy_return = run_episode(env, lambda o: deadbeat(torch.as_tensor(o), True).numpy(), seed=4).total_reward
    seeded_return = run_episode(env, seeded.act, seed=4).total_reward
    plain_return = run_episode(env, plain.act, seed=4).total_reward
    assert seeded_return >= policy_return - 1e-6  # the policy's plan is always a candidate
    assert plain_return < seeded_return - 0.1  # two random sequences are not
    assert seeded.proposal_wins > 0.5 * seeded.steps and plain.proposal_wins == 0
    assert seeded.fallbacks == 0 and seeded.last_disagreement is None


def test_fallback_acts_when_the_plan_is_too_uncertain_and_counts_it():
    env = envs.make("linear")
    model = LinearGaussian(1, 1)
    model.fit(collect(env, steps=8, seed=0))  # few rows: parameter uncertainty gives disagreement > 0
    safe = lambda obs: np.array([0.123], dtype=np.float32)
    always = agent_for(env, model, HybridConfig(proposals=2, fallback_threshold=0.0), fallback=safe)
    obs, _ = env.reset(seed=1)
    assert always.act(obs) == pytest.approx([0.123])
    run_episode(env, always.act, seed=2, max_steps=10)
    assert always.fallbacks == always.steps == 11 and always.fallback_fraction == 1.0
    assert always.last_disagreement > 0.0
    never = agent_for(env, model, HybridConfig(proposals=2, fallback_threshold=1e9), fallback=safe)
    run_episode(env, never.act, seed=2, max_steps=10)
    assert never.fallbacks == 0 and never.steps == 10


def test_bad_hybrid_settings_are_rejected():
    with pytest.raises(ValueError, match="proposals"):
        HybridConfig(proposals=-1)
    with pytest.raises(ValueError, match="fallback_threshold"):
        HybridConfig(fallback_threshold=-0.1)
    env = envs.make("linear")
    with pytest.raises(ValueError, match="replan_every"):
        PolicyGuidedMPC(KnownDynamics(analytic_step(env), 1, 1), env_task_functions(env), env.action_space, deadbeat,
                        PlannerConfig(horizon=5, replan_every=2))
