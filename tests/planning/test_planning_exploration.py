"""Exploration by disagreement: the annealed bonus, the spread of a transition, and how the planner
and imagined rollouts add it to the reward."""

import math

import pytest
import torch

from forethought.agents.imagination import imagine
from forethought.envs.task_functions import TaskFunctions
from forethought.models import DynamicsModel, Prediction
from forethought.planning.config import PlannerConfig
from forethought.planning.exploration import annealed_bonus, check_exploration, transition_spread
from forethought.planning.rollout import TrajectoryEvaluator
from test_planning_rollout import RISK_ACTIONS, risky_members, x_reward


def test_bonus_falls_linearly_to_zero_over_the_anneal_steps():
    assert annealed_bonus(2.0, None, 10_000) == 2.0
    assert annealed_bonus(2.0, 1000, 0) == 2.0
    assert annealed_bonus(2.0, 1000, 250) == 1.5
    assert annealed_bonus(2.0, 1000, 1000) == 0.0
    assert annealed_bonus(2.0, 1000, 5000) == 0.0
    assert annealed_bonus(0.0, 1000, 10) == 0.0


@pytest.mark.parametrize("bonus, anneal, message", [
    (-1.0, None, "planner.exploration_bonus must be a finite number >= 0 (0: no exploration bonus), got -1.0"),
    (math.inf, None, "planner.exploration_bonus must be a finite number >= 0"),
    (True, None, "planner.exploration_bonus must be a finite number >= 0"),
    (1.0, 0, "planner.exploration_anneal_steps must be None (keep the bonus) or an integer >= 1"),
    (1.0, 2.5, "planner.exploration_anneal_steps must be None"),
])
def test_bad_exploration_settings_are_named(bonus, anneal, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PlannerConfig(exploration_bonus=bonus, exploration_anneal_steps=anneal)
    with pytest.raises(ValueError):
        check_exploration(bonus, anneal, prefix="planner.")


class FixedSpread(DynamicsModel):
    """Predicts no change, with epistemic variance ``variance`` in every dimension; its
    one-step-change scale is ``scale``."""

    kind = "fixed-spread-test"

    def __init__(self, variance: list[float], scale: list[float]) -> None:
        super().__init__(len(variance), 1)
        self.variance, self.scale, self.fitted = torch.tensor(variance), torch.tensor(scale), True

    def _fit(self, obs, action, next_obs, generator):
        raise NotImplementedError

    def _predict(self, obs, action):
        return Prediction(obs.clone(), None, self.variance.expand_as(obs).clone())

    def delta_scale(self):
        return self.scale

    def _state(self):
        raise NotImplementedError

    @classmethod
    def _from_state(cls, *args):
        raise NotImplementedError


def test_spread_is_the_members_std_in_units_of_a_one_step_change_averaged_over_dimensions():
    model = FixedSpread([4.0, 9.0], [1.0, 0.5])
    spread = transition_spread(model, torch.zeros(3, 2), torch.zeros(3, 1))
    assert torch.allclose(spread, torch.full((3,), (2.0 / 1.0 + 3.0 / 0.5) / 2))


def test_planner_bonus_adds_beta_times_the_spread_of_every_step():
    neutral = TrajectoryEvaluator(risky_members(), x_reward, particles=4).evaluate(torch.zeros(2), RISK_ACTIONS)
    curious = TrajectoryEvaluator(risky_members(), x_reward, particles=4, exploration_bonus=0.5).evaluate(
        torch.zeros(2), RISK_ACTIONS)
    assert torch.allclose(curious.mean_return, neutral.mean_return)
    # per step: sqrt(1.25) |a2| over 2 dimensions; 3 steps of it
    spread = torch.tensor([0.0, 1.0, 0.5]) * math.sqrt(1.25) / 2
    assert torch.allclose(curious.disagreement, spread, atol=1e-5)
    assert torch.allclose(curious.score, 6.0 + 0.5 * 3 * spread, atol=1e-5)
    assert int(torch.argmax(curious.score)) == 1  # the uncertain candidate, where the others tie
    both = TrajectoryEvaluator(risky_members(), x_reward, particles=4, exploration_bonus=0.5,
                               risk_penalty=1.0).evaluate(torch.zeros(2), RISK_ACTIONS)
    assert torch.allclose(both.score, 6.0 + (0.5 * 3 - 1.0) * spread, atol=1e-5)


def test_candidates_whose_disagreement_is_not_finite_earn_no_bonus():
    evaluator = TrajectoryEvaluator(risky_members(), x_reward, particles=2, exploration_bonus=1.0)
    evaluation = evaluator._score(torch.tensor([1.0, 2.0]), torch.tensor([0.5, math.inf]), horizon=3)
    assert evaluation.score.tolist() == [2.5, -math.inf]


def test_a_bonus_needs_the_disagreement_measured():
    with pytest.raises(ValueError, match="need measure_disagreement=True"):
        TrajectoryEvaluator(risky_members(), x_reward, exploration_bonus=1.0, measure_disagreement=False)


def test_imagined_rewards_carry_the_bonus_times_each_transitions_spread():
    model = risky_members()
    task = TaskFunctions(reward=x_reward, termination=lambda o, a, n: torch.zeros(o.shape[0], dtype=torch.bool))
    start = torch.zeros(4, 2)

    def policy(obs):
        return torch.tensor([[0.0, 1.0]]).expand(obs.shape[0], 2)

    plain = imagine(model, task, policy, start, 2, torch.Generator().manual_seed(0))
    curious = imagine(model, task, policy, start, 2, torch.Generator().manual_seed(0), exploration_bonus=2.0)
    assert torch.equal(plain.next_obs, curious.next_obs)
    spread = transition_spread(model, plain.obs, plain.action)
    assert torch.allclose(spread, torch.full_like(spread, math.sqrt(1.25) / 2), atol=1e-5)
    assert torch.allclose(curious.reward, plain.reward + 2.0 * spread)


def test_pets_explores_while_learning_with_the_annealed_bonus_and_evaluates_without_it():
    from forethought import envs
    from forethought.agents import PETS, PETSConfig
    from forethought.models.config import ModelConfig, TrainConfig

    config = PETSConfig(model=ModelConfig(kind="pe", ensemble_size=3, hidden_size=32, hidden_layers=2),
                        train=TrainConfig(max_epochs=10, patience=5),
                        planner=PlannerConfig(horizon=4, particles=2, exploration_bonus=2.0, exploration_anneal_steps=200,
                                              settings={"population": 30, "elites": 5, "iterations": 2}))
    agent = PETS(envs.make("linear"), config)
    history = agent.learn(episodes=3)  # 50-step episodes
    assert [r.info["exploration_bonus"] for r in history] == [None, 1.5, 1.0]  # 2 * (1 - steps / 200)
    assert agent.agent.evaluator.exploration_bonus == 1.0 and agent.agent.evaluator.measure_disagreement
    obs, _ = agent.env.reset(seed=5)
    agent.act(obs, deterministic=True)
    assert agent._exploit.evaluator.exploration_bonus == 0.0 and agent._exploit is not agent.agent
    agent.act(obs, deterministic=False)
    assert agent.agent.evaluator.exploration_bonus == 1.0


def test_disagreement_can_be_measured_on_chosen_dimensions_only():
    only_y = TrajectoryEvaluator(risky_members(), x_reward, particles=2, exploration_bonus=1.0,
                                 disagreement_dims=[1]).evaluate(torch.zeros(2), RISK_ACTIONS)
    assert torch.allclose(only_y.disagreement, torch.tensor([0.0, 1.0, 0.5]) * math.sqrt(1.25), atol=1e-5)
    only_x = TrajectoryEvaluator(risky_members(), x_reward, particles=2, exploration_bonus=1.0,
                                 disagreement_dims=[0]).evaluate(torch.zeros(2), RISK_ACTIONS)
    assert torch.equal(only_x.disagreement, torch.zeros(3)) and torch.allclose(only_x.score, only_x.mean_return)
    with pytest.raises(ValueError, match=r"disagreement_dims must be None \(every dimension\) or a non-empty list of "
                                         r"distinct observation indices >= 0 below the observation size 2, got \[2\]"):
        TrajectoryEvaluator(risky_members(), x_reward, disagreement_dims=[2])
    with pytest.raises(ValueError, match="planner.disagreement_dims must be None"):
        PlannerConfig(disagreement_dims=[1, 1])
