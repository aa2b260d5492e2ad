"""Planning past the horizon: the terminal value in the score, the state value's temporal-difference
fit, its persistence, and PETS with ``terminal_value``."""

import numpy as np
import pytest
import torch

from forethought import envs
from forethought.agents import PETS, PETSConfig
from forethought.agents.mpc import MPCAgent
from forethought.data.buffer import ReplayBuffer
from forethought.envs.task_functions import TaskFunctions
from forethought.models import KnownDynamics
from forethought.models.config import ModelConfig, TrainConfig
from forethought.models.value import StateValue, ValueConfig
from forethought.planning import PlannerConfig
from forethought.planning.rollout import TrajectoryEvaluator


def shift_model() -> KnownDynamics:
    return KnownDynamics(lambda obs, action: obs + action, 1, 1)  # s' = s + a


def test_the_score_adds_the_discounted_value_of_the_final_state():
    evaluator = TrajectoryEvaluator(shift_model(), lambda o, a, n: n[:, 0], discount=0.5,
                                    terminal_value=lambda obs: 10.0 * obs[:, 0], propagation="expectation",
                                    particles=1)
    actions = torch.tensor([[[1.0], [2.0]], [[-1.0], [0.0]]])  # from s0 = 1: states 2, 4 and 0, 0
    score = evaluator.evaluate(torch.tensor([1.0]), actions).score
    # r0 + 0.5 r1 + 0.5^2 V(s2): 2 + 0.5 * 4 + 0.25 * 40 = 14; 0 + 0 + 0 = 0
    assert score.tolist() == [14.0, 0.0]


def test_a_rollout_that_terminated_earns_no_terminal_value():
    evaluator = TrajectoryEvaluator(shift_model(), lambda o, a, n: torch.zeros(n.shape[0]),
                                    lambda o, a, n: n[:, 0] > 1.5, terminal_value=lambda obs: torch.ones(obs.shape[0]),
                                    propagation="expectation", particles=1)
    score = evaluator.evaluate(torch.tensor([1.0]), torch.tensor([[[1.0], [0.0]], [[0.0], [0.0]]])).score
    assert score.tolist() == [0.0, 1.0]  # the first candidate ends at s = 2 > 1.5 after its first step


def test_a_bad_terminal_value_is_named():
    with pytest.raises(TypeError, match="terminal_value must be callable"):
        TrajectoryEvaluator(shift_model(), lambda o, a, n: n[:, 0], terminal_value=3.0)
    evaluator = TrajectoryEvaluator(shift_model(), lambda o, a, n: n[:, 0], terminal_value=lambda obs: obs)
    with pytest.raises(ValueError, match=r"terminal value .* returned \(10, 1\), expected shape \(10,\)"):
        evaluator.evaluate(torch.tensor([0.0]), torch.zeros(2, 3, 1))  # 2 candidates x 5 particles


def chain_buffer(repeats: int = 50) -> ReplayBuffer:
    """A three-state chain 0 -> 1 -> 2 (terminal), reward 1 on the last step only, many times over."""
    buffer = ReplayBuffer(1, 1)
    for _ in range(repeats):
        buffer.add([0.0], [0.0], 0.0, [1.0])
        buffer.add([1.0], [0.0], 1.0, [2.0], terminated=True)
    return buffer


def test_the_value_learns_a_chain_by_temporal_differences():
    config = ValueConfig(discount=0.9, backup="data", rounds=10, updates=2000, batch_size=32)
    value = StateValue(1, 1, config, torch.Generator().manual_seed(0))
    assert value(torch.tensor([[0.0], [1.0]])).tolist() == [0.0, 0.0]  # zero until rewards are seen
    value.fit(chain_buffer(), torch.Generator().manual_seed(1))
    v0, v1 = value(torch.tensor([[0.0], [1.0]])).tolist()
    assert v1 == pytest.approx(1.0, abs=0.05) and v0 == pytest.approx(0.9, abs=0.05)  # V(1) = 1, V(0) = 0.9 V(1)


def test_a_saved_value_predicts_and_fits_on_exactly(tmp_path):
    config = ValueConfig(backup="data", rounds=2, updates=50, batch_size=16)
    value = StateValue(1, 1, config, torch.Generator().manual_seed(0))
    value.fit(chain_buffer(5), torch.Generator().manual_seed(1))
    value.save(tmp_path / "value")
    loaded = StateValue.load(tmp_path / "value")
    obs = torch.linspace(-1, 3, 9)[:, None]
    assert torch.equal(loaded(obs), value(obs)) and loaded.config == config and loaded.fitted
    value.fit(chain_buffer(5), torch.Generator().manual_seed(2))
    loaded.fit(chain_buffer(5), torch.Generator().manual_seed(2))
    assert torch.equal(loaded(obs), value(obs))


@pytest.mark.parametrize("changes, message", [({"discount": 1.0}, "value.discount must be in"),
                                              ({"updates": 0}, "value.updates must be an integer >= 20"),
                                              ({"rounds": 10, "updates": 5}, "value.updates must be an integer >= 10"),
                                              ({"backup": "mc"}, "value.backup must be one of"),
                                              ({"candidate_actions": 1}, "value.candidate_actions must be"),
                                              ({"states_per_round": 0}, "value.states_per_round must be"),
                                              ({"lr": -1.0}, "value.lr must be finite and > 0")])
def test_bad_value_settings_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        ValueConfig(**changes)


def step_to_two(obs, generator):
    """s' = s + a for a in {-1, -0.5, 0, 0.5, 1}; reward 1 and done on reaching s' >= 2."""
    actions = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    next_obs = obs[:, None, :] + actions[None, :, None]
    done = next_obs[..., 0] >= 2.0
    return done.float(), next_obs, done


def test_the_model_backup_is_value_iteration():
    buffer = ReplayBuffer(1, 1)
    for s in (-1.0, 0.0, 1.0):  # only the states matter: the lookahead gives the rest
        buffer.add([s], [0.0], 0.0, [s])
    value = StateValue(1, 1, ValueConfig(discount=0.9, rounds=20, updates=2000, batch_size=3),
                       torch.Generator().manual_seed(0))
    value.fit(buffer, torch.Generator().manual_seed(1), step_to_two)
    # the best action is +1 everywhere: V(1) = 1, V(0) = 0.9, V(-1) = 0.81
    assert value(torch.tensor([[1.0], [0.0], [-1.0]])).tolist() == pytest.approx([1.0, 0.9, 0.81], abs=0.03)
    with pytest.raises(ValueError, match="needs a lookahead"):
        value.fit(buffer, torch.Generator())


def test_past_states_per_round_each_round_backs_up_a_random_draw_of_that_many_states():
    buffer = ReplayBuffer(1, 1)
    for s in (-1.0, 0.0, 1.0) * 20:
        buffer.add([s], [0.0], 0.0, [s])
    seen = []

    def counting(obs, generator):
        seen.append(obs.shape[0])
        return step_to_two(obs, generator)

    value = StateValue(1, 1, ValueConfig(discount=0.9, rounds=20, states_per_round=16, updates=2000, batch_size=8),
                       torch.Generator().manual_seed(0))
    value.fit(buffer, torch.Generator().manual_seed(1), counting)
    assert seen == [16] * 20  # 60 states, 16 drawn per round
    assert value(torch.tensor([[1.0], [0.0], [-1.0]])).tolist() == pytest.approx([1.0, 0.9, 0.81], abs=0.03)


def test_the_mpc_agent_discounts_by_the_value_and_adds_it():
    value = StateValue(1, 1, ValueConfig(discount=0.8))
    agent = MPCAgent(shift_model(), TaskFunctions(lambda o, a, n: n[:, 0], None), envs.make("linear").action_space,
                     PlannerConfig(horizon=3), value=value)
    assert agent.evaluator.terminal_value is value and agent.evaluator.discount == 0.8
    assert MPCAgent(shift_model(), TaskFunctions(lambda o, a, n: n[:, 0], None), envs.make("linear").action_space,
                    PlannerConfig(horizon=3)).evaluator.discount == 1.0


def test_pets_fits_the_value_with_the_model_and_resumes_it_exactly(tmp_path):
    config = PETSConfig(model=ModelConfig(kind="pe", ensemble_size=3, hidden_size=32, hidden_layers=2),
                        train=TrainConfig(max_epochs=10, patience=5),
                        planner=PlannerConfig(horizon=6, particles=4,
                                              settings={"population": 60, "elites": 6, "iterations": 2}),
                        terminal_value=True, value=ValueConfig(updates=100))
    agent = PETS(envs.make("linear"), config, seed=3)
    history = agent.learn(episodes=2)
    assert history[0].info["value_loss"] is None and history[1].info["value_loss"] >= 0.0
    assert agent.agent.evaluator.terminal_value is agent.value and agent.value.fitted
    agent.save(tmp_path / "agent")
    restored = PETS.load(tmp_path / "agent", envs.make("linear"))
    obs = agent.buffer.all().obs[:7]
    assert torch.equal(restored.value(obs), agent.value(obs))
    assert [r.total_reward for r in restored.learn(episodes=1)] == [r.total_reward for r in agent.learn(episodes=1)]
    assert torch.equal(restored.value(obs), agent.value(obs))
    assert np.isfinite(agent.history[-1].info["value_loss"])
