"""Scoring action sequences in a model: propagation modes, returns, termination, risk and veto."""

import math

import pytest
import torch

from forethought.envs.task_functions import linear_reward
from forethought.models import DynamicsModel, LinearGaussian, ProbabilisticEnsemble
from forethought.models.neural import MLPDynamics
from forethought.planning.propagation import fixed_slots
from forethought.planning.rollout import PROPAGATIONS, TrajectoryEvaluator


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def linear_members(weights, biases, probabilistic=False, raw_log_std=None, elites=None,
                   delta_std=None) -> MLPDynamics:
    """An MLPDynamics without hidden layers whose member k predicts
    ``s' = s + delta_std * ([s, a] @ weights[k] + biases[k])`` (identity input normalisers)."""
    weights = torch.as_tensor(weights, dtype=torch.float32)
    members, inputs, obs_dim = weights.shape
    model = MLPDynamics(obs_dim, inputs - obs_dim, probabilistic=probabilistic, ensemble_size=members,
                        hidden_layers=0, elite_count=len(elites) if elites else members)
    body = model.network.body
    with torch.no_grad():
        body.weights[0].zero_()
        body.biases[0].zero_()
        body.weights[0][:, :, :obs_dim] = weights
        body.biases[0][:, 0, :obs_dim] = torch.as_tensor(biases, dtype=torch.float32)
        if probabilistic:
            body.biases[0][:, 0, obs_dim:] = torch.as_tensor(raw_log_std, dtype=torch.float32)
    if delta_std is not None:
        model.delta_norm.std = torch.as_tensor(delta_std, dtype=torch.float32)
    model.elites = list(elites) if elites else list(range(members))
    model.fitted = True
    return model


def offsets_model(offsets, **kwargs) -> MLPDynamics:
    """1-D members ``s' = s + offsets[k]``: which member moved a particle shows in its state."""
    return linear_members(torch.zeros(len(offsets), 2, 1), torch.tensor(offsets)[:, None], **kwargs)


def next_state(obs, action, next_obs):
    return next_obs[:, 0]


def returns_from_members(offsets, member_indices, start=0.0):
    """Mean over particles of sum_t s_t for ``s' = s + offsets[member]``: ``[P]``."""
    states = start + torch.tensor(offsets)[member_indices].cumsum(dim=-1)
    return states.sum(dim=-1).mean(dim=-1)


class MembersOnly(DynamicsModel):
    """An ensemble that implements only the interface's members (``predict_members``, ``elites``,
    ``ensemble_size``), so planners use DynamicsModel's generic member predictors."""

    def __init__(self, inner: MLPDynamics) -> None:
        super().__init__(inner.obs_dim, inner.act_dim)
        self.inner, self.fitted = inner, True
        self.ensemble_size, self.elites, self.probabilistic = inner.ensemble_size, inner.elites, inner.probabilistic

    def predict_members(self, obs, action):
        return self.inner.predict_members(obs, action)

    def _predict(self, obs, action):
        return self.inner.predict(obs, action)

    def sample(self, obs, action, generator):
        return self.inner.sample(obs, action, generator)

    def delta_scale(self):
        return self.inner.delta_scale()

    def _fit(self, obs, action, next_obs, generator):
        raise NotImplementedError

    def _state(self):
        raise NotImplementedError

    @classmethod
    def _from_state(cls, tensors, config, obs_dim, act_dim, **kwargs):
        raise NotImplementedError


def known_linear_model(noise_var: float = 0.0) -> LinearGaussian:
    """The linear env's dynamics s' = 0.5 s + a, set by hand (zero parameter uncertainty)."""
    model = LinearGaussian(1, 1)
    model.A, model.B = torch.tensor([[0.5]], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64)
    model.noise_cov = torch.tensor([[noise_var]], dtype=torch.float64)
    model.fitted = True
    return model


# ---------------------------------------------------------------- trajectory sampling
OFFSETS = [0.0, 1.0, 10.0, 100.0, 1000.0]


def test_ts1_redraws_each_particles_member_uniformly_at_every_step():
    evaluator = TrajectoryEvaluator(offsets_model(OFFSETS), next_state, particles=20, propagation="ts1",
                                    generator=gen(0))
    evaluation = evaluator.evaluate(torch.zeros(1), torch.zeros(50, 10, 1), record_members=True)
    members = evaluation.member_indices
    assert members.shape == (50, 20, 10)
    frequencies = torch.bincount(members.flatten(), minlength=5).float() / members.numel()
    assert torch.allclose(frequencies, torch.full((5,), 0.2), atol=0.02)
    changed = (members[..., 1:] != members[..., :-1]).float().mean()
    assert abs(float(changed) - 0.8) < 0.03  # independent uniform draws differ with probability 1 - 1/5
    # the recorded members are the ones that moved the particles
    assert torch.allclose(evaluation.mean_return, returns_from_members(OFFSETS, members), rtol=1e-5)


def test_ts1_pads_rows_that_do_not_fill_the_member_blocks():
    evaluator = TrajectoryEvaluator(offsets_model(OFFSETS), next_state, particles=7, propagation="ts1",
                                    generator=gen(1))
    evaluation = evaluator.evaluate(torch.zeros(1), torch.zeros(3, 40, 1), record_members=True)  # 21 rows, 5 members
    members = evaluation.member_indices
    assert members.shape == (3, 7, 40)
    assert torch.allclose(evaluation.mean_return, returns_from_members(OFFSETS, members), rtol=1e-5)
    frequencies = torch.bincount(members.flatten(), minlength=5).float() / members.numel()
    assert torch.allclose(frequencies, torch.full((5,), 0.2), atol=0.04)


def test_tsinf_keeps_each_particles_member_and_spreads_candidates_over_members():
    evaluator = TrajectoryEvaluator(offsets_model(OFFSETS), next_state, particles=10, propagation="tsinf",
                                    generator=gen(0))
    evaluation = evaluator.evaluate(torch.zeros(1), torch.zeros(30, 6, 1), record_members=True)
    members = evaluation.member_indices
    assert torch.equal(members, members[..., :1].expand_as(members))  # constant over the horizon
    per_candidate = torch.stack([torch.bincount(m[:, 0], minlength=5) for m in members])
    assert torch.equal(per_candidate, torch.full((30, 5), 2))  # 10 particles over 5 members: 2 each
    assert torch.allclose(evaluation.mean_return, returns_from_members(OFFSETS, members), rtol=1e-5)
    assert len({tuple(m[:, 0].tolist()) for m in members}) > 1  # the assignment differs between candidates


def test_tsinf_with_fewer_particles_than_members_uses_each_member_at_random():
    evaluator = TrajectoryEvaluator(offsets_model(OFFSETS), next_state, particles=3, propagation="tsinf",
                                    generator=gen(2))
    evaluation = evaluator.evaluate(torch.zeros(1), torch.zeros(400, 4, 1), record_members=True)
    members = evaluation.member_indices
    assert torch.equal(members, members[..., :1].expand_as(members))
    assert all(len(set(m[:, 0].tolist())) == 3 for m in members)  # a candidate's particles use distinct members
    frequencies = torch.bincount(members[..., 0].flatten(), minlength=5).float() / (400 * 3)
    assert torch.allclose(frequencies, torch.full((5,), 0.2), atol=0.04)
    assert torch.allclose(evaluation.mean_return, returns_from_members(OFFSETS, members), rtol=1e-5)


def test_fixed_slots_groups_rows_into_equal_member_blocks():
    order, block = fixed_slots(candidates=4, particles=7, members=3, generator=gen(0))
    assert block == 10 and sorted(order.tolist()) == list(range(30))  # 28 rows + 2 padding rows
    member_of_row = torch.empty(30, dtype=torch.long)
    member_of_row[order] = torch.arange(30) // block
    real = member_of_row[:28].view(4, 7)
    assert torch.equal(real, (real[:, :1] + torch.arange(7)) % 3)  # consecutive members from a random offset


def test_only_elite_members_are_used_and_fast_path_matches_predict_members():
    weights = torch.tensor([[[0.9], [1.0]], [[0.8], [0.5]], [[1.1], [-1.0]], [[0.7], [2.0]], [[1.0], [0.1]]])
    model = linear_members(weights - torch.tensor([[[1.0], [0.0]]]), torch.arange(5.0)[:, None], probabilistic=True,
                           raw_log_std=torch.full((5, 1), -1.0), elites=[0, 2, 4])
    obs, actions = torch.tensor([0.3]), torch.rand(6, 5, 1, generator=gen(0)) * 2 - 1
    results = {}
    for name, candidate in (("network", model), ("double", MembersOnly(model))):
        for propagation in ("ts1", "tsinf", "all-members"):
            evaluator = TrajectoryEvaluator(candidate, linear_reward, particles=6, propagation=propagation,
                                            generator=gen(3), measure_disagreement=True)
            results[name, propagation] = evaluator.evaluate(obs, actions, record_members=True)
            assert set(results[name, propagation].member_indices.unique().tolist()) == {0, 2, 4}
    for propagation in ("ts1", "tsinf", "all-members"):
        fast, slow = results["network", propagation], results["double", propagation]
        assert torch.allclose(fast.mean_return, slow.mean_return, atol=1e-5)
        assert torch.allclose(fast.disagreement, slow.disagreement, atol=1e-6)
    # the elite network computes what predict_members computes for the elites
    predictor = model.member_predictor()
    assert predictor.members == [0, 2, 4]
    blocks, block_actions = torch.randn(3, 4, 1, generator=gen(1)), torch.randn(3, 4, 1, generator=gen(2))
    means, stds = predictor(blocks, block_actions)
    full = torch.zeros(5, 4, 1)
    full[[0, 2, 4]] = blocks
    full_actions = torch.zeros(5, 4, 1)
    full_actions[[0, 2, 4]] = block_actions
    ref_means, ref_vars = model.predict_members(full, full_actions)
    assert torch.allclose(means, ref_means[[0, 2, 4]], atol=1e-6)
    assert torch.allclose(stds, ref_vars[[0, 2, 4]].sqrt(), atol=1e-6)


def test_elite_network_follows_a_model_changed_in_place():
    model = offsets_model([0.0, 1.0, 2.0], elites=[1, 2])
    evaluator = TrajectoryEvaluator(model, next_state, particles=4, propagation="all-members")
    assert torch.allclose(evaluator.evaluate(torch.zeros(1), torch.zeros(1, 1, 1)).mean_return, torch.tensor([1.5]))
    with torch.no_grad():
        model.network.body.biases[0][:, 0, 0] = torch.tensor([0.0, 3.0, 5.0])  # a refit, in effect
    assert torch.allclose(evaluator.evaluate(torch.zeros(1), torch.zeros(1, 1, 1)).mean_return, torch.tensor([4.0]))
    model.elites = [0, 1]
    assert torch.allclose(evaluator.evaluate(torch.zeros(1), torch.zeros(1, 1, 1)).mean_return, torch.tensor([1.5]))


def test_probabilistic_members_sample_with_the_explicit_generator():
    model = linear_members(torch.zeros(3, 2, 1), torch.zeros(3, 1), probabilistic=True,
                           raw_log_std=torch.full((3, 1), -1.0))
    scores = []
    for seed in (0, 0, 1):
        evaluator = TrajectoryEvaluator(model, next_state, particles=1, propagation="ts1", generator=gen(seed))
        scores.append(evaluator.evaluate(torch.zeros(1), torch.zeros(64, 5, 1)).mean_return)
    assert torch.equal(scores[0], scores[1]) and not torch.equal(scores[0], scores[2])
    assert float(scores[0].std()) > 0.3  # zero-mean noise with std exp(-1) per step accumulates


# ---------------------------------------------------------------- expectation and all-members
def two_dim_members() -> MLPDynamics:
    """Three different linear maps on obs 2, action 1 with a delta normaliser of mixed units."""
    weights = torch.tensor([[[-0.5, 0.1], [0.0, -0.2], [1.0, 0.0]],
                            [[-0.4, 0.0], [0.2, -0.1], [0.5, 3.0]],
                            [[-0.6, -0.1], [0.0, 0.0], [1.5, -2.0]]])
    return linear_members(weights, [[0.1, 0.0], [0.0, 1.0], [-0.1, -0.5]], delta_std=[1.0, 10.0])


def quadratic_reward(obs, action, next_obs):
    return -(next_obs**2).sum(-1) - 0.1 * (action**2).sum(-1)


def test_all_members_averages_the_return_of_every_member():
    model, obs = two_dim_members(), torch.tensor([1.0, -0.5])
    actions = torch.rand(4, 6, 1, generator=gen(0)) * 2 - 1
    evaluation = TrajectoryEvaluator(model, quadratic_reward, particles=5, propagation="all-members").evaluate(
        obs, actions)
    member_returns = []
    for k in range(3):
        state, total = obs.expand(4, 2), torch.zeros(4)
        for t in range(6):
            nxt = model.predict_members(state, actions[:, t])[0][k]
            total, state = total + quadratic_reward(state, actions[:, t], nxt), nxt
        member_returns.append(total)
    assert torch.allclose(evaluation.mean_return, torch.stack(member_returns).mean(0), rtol=1e-5)
    assert not torch.allclose(member_returns[0], member_returns[1])  # the members really differ


def test_expectation_propagates_the_members_mean_and_measures_scaled_disagreement():
    model, obs = two_dim_members(), torch.tensor([1.0, -0.5])
    actions = torch.rand(4, 6, 1, generator=gen(0)) * 2 - 1
    evaluation = TrajectoryEvaluator(model, quadratic_reward, propagation="expectation").evaluate(obs, actions)
    state, total, spread = obs.expand(4, 2), torch.zeros(4), torch.zeros(4)
    for t in range(6):
        means = model.predict_members(state, actions[:, t])[0]
        spread += (means.std(0, unbiased=False) / torch.tensor([1.0, 10.0])).mean(-1)
        total, state = total + quadratic_reward(state, actions[:, t], means.mean(0)), means.mean(0)
    assert torch.allclose(evaluation.mean_return, total, rtol=1e-5)
    assert torch.allclose(evaluation.disagreement, spread / 6, rtol=1e-5)
    again = TrajectoryEvaluator(model, quadratic_reward, propagation="expectation", generator=gen(9))
    assert torch.equal(again.evaluate(obs, actions).mean_return, evaluation.mean_return)  # no sampling


def test_disagreement_is_the_same_along_the_reference_trajectory_in_every_mode():
    model, obs = two_dim_members(), torch.tensor([1.0, -0.5])
    actions = torch.rand(5, 4, 1, generator=gen(4)) * 2 - 1
    measured = [TrajectoryEvaluator(model, quadratic_reward, propagation=p, measure_disagreement=True)
                .evaluate(obs, actions).disagreement for p in ("ts1", "tsinf", "expectation", "all-members")]
    for other in measured[1:]:
        assert torch.allclose(other, measured[0], rtol=1e-5)
    assert bool((measured[0] > 0).all())
    unmeasured = TrajectoryEvaluator(model, quadratic_reward, propagation="ts1").evaluate(obs, actions)
    assert bool(unmeasured.disagreement.isnan().all())  # not asked for, not paid for


# ---------------------------------------------------------------- returns
@pytest.mark.parametrize("propagation", ["ts1", "tsinf", "expectation", "all-members"])
def test_perfect_linear_model_returns_equal_the_analytic_sum_of_rewards(propagation):
    actions = torch.rand(8, 10, 1, generator=gen(5)) * 2 - 1
    obs = torch.tensor([0.7])
    evaluation = TrajectoryEvaluator(known_linear_model(), linear_reward, particles=3,
                                     propagation=propagation).evaluate(obs, actions)
    expected = []
    for sequence in actions[:, :, 0].tolist():
        state, total = 0.7, 0.0
        for a in sequence:
            state = 0.5 * state + a
            total += -(state**2) - 0.1 * a**2
        expected.append(total)
    assert torch.allclose(evaluation.mean_return, torch.tensor(expected), atol=1e-5)
    assert torch.equal(evaluation.score, evaluation.mean_return)


def test_a_one_member_ensemble_is_scored_as_a_single_model():
    single = linear_members(torch.tensor([[[-0.5], [1.0]]]), torch.zeros(1, 1))  # s' = 0.5 s + a
    assert single.member_predictor() is None and single.frozen_member_predictor() is None
    actions, obs = torch.rand(5, 4, 1, generator=gen(6)) * 2 - 1, torch.tensor([0.7])
    expected = TrajectoryEvaluator(known_linear_model(), linear_reward, propagation="expectation").evaluate(
        obs, actions).mean_return
    for propagation in PROPAGATIONS:
        evaluation = TrajectoryEvaluator(single, linear_reward, propagation=propagation, particles=2,
                                         measure_disagreement=True).evaluate(obs, actions)
        assert torch.allclose(evaluation.mean_return, expected, atol=1e-5)
        assert torch.equal(evaluation.disagreement, torch.zeros(5))  # nothing to disagree with


def test_single_stochastic_model_samples_and_expectation_does_not():
    model, obs = known_linear_model(noise_var=0.04), torch.tensor([0.0])
    actions = torch.zeros(200, 5, 1)
    sampled = TrajectoryEvaluator(model, next_state, particles=1, generator=gen(0)).evaluate(obs, actions)
    assert 0.3 < float(sampled.mean_return.std()) < 0.8  # sum of 5 states with 0.2-std noise: about 0.53
    mean = TrajectoryEvaluator(model, next_state, propagation="expectation").evaluate(obs, actions)
    assert torch.equal(mean.mean_return, torch.zeros(200))
    assert torch.equal(mean.disagreement, torch.zeros(200))  # no parameter uncertainty in this model


def test_terminated_particles_earn_nothing_after_the_terminating_step():
    model = linear_members(torch.zeros(1, 2, 1) + torch.tensor([[[0.0], [1.0]]]), torch.zeros(1, 1))  # s' = s + a

    def reward(obs, action, next_obs):
        return torch.where(next_obs[:, 0] > 2.5, 100.0, 1.0)  # the terminating step pays 100

    def over(obs, action, next_obs):
        return next_obs[:, 0] > 2.5

    actions = torch.tensor([1.0, 0.5, 0.2])[:, None, None].expand(3, 6, 1)
    evaluation = TrajectoryEvaluator(model, reward, over, particles=2).evaluate(torch.zeros(1), actions)
    # a = 1: steps 1, 2 pay 1, step 3 (s = 3) terminates and pays 100, then nothing
    assert torch.allclose(evaluation.mean_return, torch.tensor([102.0, 105.0, 6.0]))
    discounted = TrajectoryEvaluator(model, reward, over, discount=0.9).evaluate(torch.zeros(1), actions)
    assert torch.allclose(discounted.mean_return[0], torch.tensor(1.0 + 0.9 + 0.81 * 100.0))
    assert torch.allclose(discounted.mean_return[2], torch.tensor(sum(0.9**t for t in range(6))))


def test_differentiable_scores_carry_gradients_to_the_actions():
    actions = torch.tensor([[[0.3]], [[-0.6]]], requires_grad=True)
    evaluator = TrajectoryEvaluator(known_linear_model(), linear_reward, propagation="expectation", differentiable=True)
    evaluator.evaluate(torch.tensor([0.4]), actions).score.sum().backward()
    a = actions.detach()[:, 0, 0]
    assert torch.allclose(actions.grad[:, 0, 0], -2 * (0.5 * 0.4 + a) - 0.2 * a, atol=1e-5)
    ensemble = TrajectoryEvaluator(two_dim_members(), quadratic_reward, differentiable=True, risk_penalty=1.0)
    actions = torch.zeros(3, 4, 1, requires_grad=True)
    ensemble.evaluate(torch.tensor([1.0, -0.5]), actions).score.sum().backward()
    assert actions.grad is not None and bool(torch.isfinite(actions.grad).all()) and bool((actions.grad != 0).any())
    plain = TrajectoryEvaluator(known_linear_model(), linear_reward).evaluate(torch.tensor([0.4]), actions)
    assert not plain.score.requires_grad


# ---------------------------------------------------------------- risk and veto
def risky_members() -> MLPDynamics:
    """obs (x, y), action (a1, a2): every member moves x by a1 + a2; y moves by c_k * a2, so only a2
    is uncertain. The reward reads x alone, so a1 and a2 earn the same."""
    weights = torch.zeros(4, 4, 2)
    weights[:, 2, 0] = 1.0
    weights[:, 3, 0] = 1.0
    weights[:, 3, 1] = torch.tensor([-1.5, -0.5, 0.5, 1.5])
    return linear_members(weights, torch.zeros(4, 2))


def x_reward(obs, action, next_obs):
    return next_obs[:, 0]


# candidates: certain (a1 = 1), uncertain (a2 = 1), half-uncertain (a1 = a2 = 0.5); equal returns
RISK_ACTIONS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])[:, None, :].expand(3, 3, 2)


def test_risk_penalty_prefers_the_sequence_the_members_agree_on():
    neutral = TrajectoryEvaluator(risky_members(), x_reward, particles=4).evaluate(torch.zeros(2), RISK_ACTIONS)
    assert torch.allclose(neutral.mean_return, torch.full((3,), 6.0))
    assert torch.equal(neutral.score, neutral.mean_return)
    averse = TrajectoryEvaluator(risky_members(), x_reward, particles=4, risk_penalty=0.5).evaluate(
        torch.zeros(2), RISK_ACTIONS)
    assert torch.allclose(averse.mean_return, neutral.mean_return)
    # std of c_k = sqrt(1.25); the y column's std per step is that times |a2|, averaged with x's 0
    expected = torch.tensor([0.0, 1.0, 0.5]) * math.sqrt(1.25) / 2
    assert torch.allclose(averse.disagreement, expected, atol=1e-5)
    assert torch.allclose(averse.score, 6.0 - 0.5 * expected, atol=1e-5)
    assert int(torch.argmax(averse.score)) == 0 and not averse.vetoed.any() and not averse.all_vetoed


def test_veto_excludes_uncertain_sequences_and_falls_back_to_the_least_uncertain():
    evaluator = TrajectoryEvaluator(risky_members(), x_reward, particles=2, veto_threshold=0.3)
    evaluation = evaluator.evaluate(torch.zeros(2), RISK_ACTIONS)
    assert evaluation.vetoed.tolist() == [False, True, False] and not evaluation.all_vetoed
    assert evaluation.score[1] == -math.inf and torch.allclose(evaluation.score[[0, 2]], torch.tensor([6.0, 6.0]))
    assert evaluator.last_evaluation is evaluation
    strict = TrajectoryEvaluator(risky_members(), x_reward, particles=2, veto_threshold=0.1, risk_penalty=1.0)
    fallback = strict.evaluate(torch.zeros(2), RISK_ACTIONS[1:])  # both uncertain candidates are over 0.1
    assert fallback.all_vetoed and fallback.vetoed.all()
    assert fallback.score[0] == -math.inf and torch.allclose(fallback.score[1], torch.tensor(6.0))  # its mean return


def test_objective_closure_scores_like_evaluate():
    evaluator = TrajectoryEvaluator(risky_members(), x_reward, particles=2, risk_penalty=1.0)
    objective = evaluator.objective(torch.zeros(2))
    assert torch.allclose(objective(RISK_ACTIONS), evaluator.evaluate(torch.zeros(2), RISK_ACTIONS).score)


def test_pets_sized_rollout_has_the_expected_shapes():
    model = ProbabilisticEnsemble(5, 1, ensemble_size=7, hidden_size=32, hidden_layers=2)
    model.fitted = True  # untrained weights are enough to exercise shapes and elites
    evaluator = TrajectoryEvaluator(model, lambda o, a, n: -(n**2).sum(-1), particles=20, veto_threshold=10.0)
    evaluation = evaluator.evaluate(torch.zeros(5), torch.zeros(35, 15, 1), record_members=True)
    assert evaluation.score.shape == evaluation.disagreement.shape == (35,)
    assert evaluation.member_indices.shape == (35, 20, 15)
    assert set(evaluation.member_indices.unique().tolist()) <= set(model.elites)
