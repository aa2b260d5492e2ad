"""TrajectoryEvaluator refuses bad settings, inputs and task functions with errors that name them."""

import pytest
import torch

from forethought.envs.task_functions import linear_reward
from forethought.models import LinearGaussian
from forethought.planning import PROPAGATIONS, TrajectoryEvaluator


def linear_model(fitted: bool = True, A: float = 0.5) -> LinearGaussian:
    model = LinearGaussian(1, 1)
    model.A = torch.tensor([[A]], dtype=torch.float64)
    model.B = torch.tensor([[1.0]], dtype=torch.float64)
    model.fitted = fitted
    return model


def evaluate(reward=linear_reward, termination=None, obs=None, actions=None, model=None):
    evaluator = TrajectoryEvaluator(model or linear_model(), reward, termination, particles=2)
    return evaluator.evaluate(torch.zeros(1) if obs is None else obs,
                              torch.zeros(3, 4, 1) if actions is None else actions)


def test_propagations_are_the_four_documented_modes():
    assert PROPAGATIONS == ("ts1", "tsinf", "expectation", "all-members")


@pytest.mark.parametrize("settings, message", [
    ({"propagation": "ts2"},
     r"unknown propagation 'ts2'; choose one of \['ts1', 'tsinf', 'expectation', 'all-members'\]"),
    ({"particles": 0}, "particles must be an integer >= 1, got 0"),
    ({"particles": 2.5}, "particles must be an integer >= 1, got 2.5"),
    ({"risk_penalty": -0.1}, "risk_penalty must be finite and >= 0, got -0.1"),
    ({"risk_penalty": float("nan")}, "risk_penalty must be finite"),
    ({"veto_threshold": -1.0}, "veto_threshold must be None or finite and >= 0, got -1.0"),
    ({"discount": 0.0}, r"discount must be in \(0, 1\], got 0.0"),
    ({"discount": 1.5}, r"discount must be in \(0, 1\], got 1.5"),
])
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        TrajectoryEvaluator(linear_model(), linear_reward, **settings)


def test_bad_collaborators_are_rejected():
    with pytest.raises(TypeError, match=r"model must be a dynamics model \(forethought.models.DynamicsModel\), got object"):
        TrajectoryEvaluator(object(), linear_reward)
    with pytest.raises(TypeError, match="reward_fn must be callable"):
        TrajectoryEvaluator(linear_model(), 3.0)
    with pytest.raises(TypeError, match="termination_fn must be callable"):
        TrajectoryEvaluator(linear_model(), linear_reward, "never")
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        TrajectoryEvaluator(linear_model(), linear_reward, generator=0)
    with pytest.raises(RuntimeError, match="LinearGaussian has not been fitted"):
        evaluate(model=linear_model(fitted=False))


@pytest.mark.parametrize("obs, message", [
    (torch.zeros(2), r"obs has shape \(2,\), expected \(1,\): one observation of the model's obs_dim=1"),
    (torch.zeros(1, 1), r"obs has shape \(1, 1\), expected \(1,\)"),
    (torch.tensor([float("inf")]), "obs has a non-finite value"),
])
def test_bad_observations_are_named(obs, message):
    with pytest.raises(ValueError, match=message):
        evaluate(obs=obs)


@pytest.mark.parametrize("actions, message", [
    (torch.zeros(3, 4), r"actions has shape \(3, 4\), expected \(P, H, 1\) = \(population >= 1, horizon >= 1, "
                        r"the model's act_dim=1\)"),
    (torch.zeros(3, 4, 2), r"actions has shape \(3, 4, 2\), expected \(P, H, 1\)"),
    (torch.zeros(0, 4, 1), r"actions has shape \(0, 4, 1\)"),
    (torch.zeros(3, 0, 1), r"actions has shape \(3, 0, 1\)"),
    (torch.tensor([[[0.0]], [[float("nan")]]]), "actions has a non-finite value in candidate 1"),
])
def test_bad_action_sequences_are_named(actions, message):
    with pytest.raises(ValueError, match=message):
        evaluate(actions=actions)


def test_reward_functions_with_wrong_shapes_or_values_are_named():
    def column_reward(obs, action, next_obs):
        return next_obs

    def scalar_reward(obs, action, next_obs):
        return 1.0

    def nan_reward(obs, action, next_obs):
        return torch.where(next_obs[:, 0] > 0.5, float("nan"), 0.0)

    with pytest.raises(ValueError, match=r"reward function .*column_reward returned \(6, 1\), expected shape \(6,\)"):
        evaluate(column_reward)
    with pytest.raises(ValueError, match=r"reward function .*scalar_reward returned float, expected shape \(6,\)"):
        evaluate(scalar_reward)
    with pytest.raises(ValueError, match=r"reward function .*nan_reward returned non-finite rewards for 2 of 6"):
        evaluate(nan_reward, actions=torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand(3, 4, 1))
    with pytest.raises(ValueError, match="the model predicted non-finite next observations"):
        evaluate(model=linear_model(A=1e300), obs=torch.ones(1))  # overflows float32


def test_termination_functions_must_return_bools_per_row():
    def float_termination(obs, action, next_obs):
        return torch.zeros(next_obs.shape[0])

    def short_termination(obs, action, next_obs):
        return torch.zeros(2, dtype=torch.bool)

    with pytest.raises(ValueError, match=r"termination function .*float_termination returned torch.float32 of shape "
                                         r"\(6,\), expected a torch.bool tensor of shape \(6,\)"):
        evaluate(termination=float_termination)
    with pytest.raises(ValueError, match=r"short_termination returned torch.bool of shape \(2,\)"):
        evaluate(termination=short_termination)


def test_a_terminated_particle_may_diverge_without_an_error():
    def fell(obs, action, next_obs):
        return next_obs[:, 0].abs() > 1e3

    def bounded_reward(obs, action, next_obs):
        return torch.where(next_obs[:, 0].abs() > 1e30, float("inf"), 1.0)

    evaluation = evaluate(bounded_reward, fell, model=linear_model(A=1e10), obs=torch.ones(1))
    assert torch.equal(evaluation.mean_return, torch.ones(3))  # step 1 pays and terminates; later infs are masked
