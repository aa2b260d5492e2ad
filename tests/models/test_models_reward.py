"""Learned reward and termination: what they learn, persistence, use in planning, and input checks."""

import math

import pytest
import torch

from forethought import envs
from forethought.data import collect
from forethought.envs.task_functions import inverted_pendulum_termination, linear_reward
from forethought.models import KnownDynamics, LinearGaussian, RewardModel, TerminationClassifier
from forethought.planning import TrajectoryEvaluator
from forethought.serialization import CheckpointError

SMALL = dict(hidden_size=32, hidden_layers=2, max_epochs=3)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def cartpole_transitions(n: int, seed: int):
    """Random cart-pole observations (any angle) for obs and next_obs, actions in [-1, 1], and the
    swing-up reward of each transition."""
    g = gen(seed)

    def states():
        angle = (torch.rand(n, generator=g) * 2 - 1) * math.pi
        x, x_dot = torch.rand(n, generator=g) * 2 - 1, torch.randn(n, generator=g)
        angle_dot = torch.randn(n, generator=g)
        return torch.stack([x, x_dot, angle.cos(), angle.sin(), angle_dot], dim=-1)

    obs, next_obs, action = states(), states(), torch.rand(n, 1, generator=g) * 2 - 1
    return obs, action, next_obs, envs.task_functions("cartpole-swingup").reward(obs, action, next_obs)


def pendulum_transitions(n: int, seed: int):
    """InvertedPendulum-like transitions (obs: x, angle, x_dot, angle_dot): the angle wanders so that
    about 8 % of next observations leave |angle| <= 0.2, the termination rule."""
    g = gen(seed)
    obs = torch.randn(n, 4, generator=g) * torch.tensor([0.3, 0.1, 0.5, 0.5])
    next_obs = obs + torch.randn(n, 4, generator=g) * torch.tensor([0.05, 0.05, 0.2, 0.2])
    action = torch.rand(n, 1, generator=g) * 6 - 3
    return obs, action, next_obs, inverted_pendulum_termination(obs, action, next_obs)


def known_linear_model() -> LinearGaussian:
    """The linear env's dynamics s' = 0.5 s + a, set by hand."""
    model = LinearGaussian(1, 1)
    model.A, model.B = torch.tensor([[0.5]], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64)
    model.fitted = True
    return model


@pytest.fixture(scope="module")
def linear_buffer():
    return collect(envs.make("linear"), steps=1000, seed=0)


@pytest.fixture(scope="module")
def linear_reward_model(linear_buffer):
    model = RewardModel(1, 1, hidden_size=64, max_epochs=60)
    model.fit(linear_buffer, generator=gen(0))
    return model


@pytest.fixture(scope="module")
def pendulum_classifier():
    classifier = TerminationClassifier(4, 1, hidden_size=64, max_epochs=40)
    classifier.fit(*pendulum_transitions(2500, 0), generator=gen(0))
    return classifier


def test_reward_model_fits_the_cartpole_swingup_reward():
    model = RewardModel(5, 1, hidden_size=128, hidden_layers=2, max_epochs=30, lr=3e-3)
    report = model.fit(*cartpole_transitions(3000, 0), generator=gen(0))
    assert report.epochs > 0 and report.val_loss[report.best_epoch] < report.val_loss[0]
    obs, action, next_obs, reward = cartpole_transitions(1000, 1)
    with torch.no_grad():
        error = model(obs, action, next_obs) - reward
    assert float(error.pow(2).mean().sqrt()) < 0.3 * float(reward.std())  # R^2 above 0.91 on held-out rows


def test_reward_model_fits_the_linear_reward_from_a_buffer(linear_reward_model):
    model = linear_reward_model
    held_out = collect(envs.make("linear"), steps=300, seed=1).all()
    with torch.no_grad():
        predicted = model(held_out.obs, held_out.action, held_out.next_obs)
    assert predicted.shape == (300,) and predicted.dtype == torch.float32
    assert float((predicted - held_out.reward).abs().mean()) < 0.1 * float(held_out.reward.std())


def test_termination_classifier_recovers_the_pendulum_angle_limit(pendulum_classifier):
    classifier = pendulum_classifier
    obs, action, next_obs, terminated = pendulum_transitions(2500, 0)
    assert 0.04 < float(terminated.float().mean()) < 0.12  # terminations are rare in the training data
    obs, action, next_obs, terminated = pendulum_transitions(2000, 1)
    with torch.no_grad():
        predicted = classifier(obs, action, next_obs)
    assert predicted.dtype == torch.bool and predicted.shape == (2000,)
    assert float((predicted == terminated).float().mean()) > 0.95
    assert float(predicted[terminated].float().mean()) > 0.85  # class balancing: the rare class is found
    assert float((~predicted[~terminated]).float().mean()) > 0.95
    probability = classifier.probability(obs, action, next_obs)
    assert bool(((probability >= 0) & (probability <= 1)).all())
    diverged = next_obs.clone()
    diverged[0, 1] = float("nan")
    assert bool(classifier(obs, action, diverged)[0])  # a non-finite next observation terminates


def test_learned_reward_drives_the_planner_like_the_true_reward(linear_reward_model):
    reward_model = linear_reward_model
    model = known_linear_model()
    actions = torch.rand(16, 5, 1, generator=gen(2)) * 2 - 1
    learned = TrajectoryEvaluator(model, reward_model, propagation="expectation").evaluate(torch.tensor([0.5]), actions)
    true = TrajectoryEvaluator(model, linear_reward, propagation="expectation").evaluate(torch.tensor([0.5]), actions)
    assert torch.allclose(learned.mean_return, true.mean_return, atol=0.3)
    assert int(torch.argmax(learned.score)) in torch.topk(true.score, 3).indices.tolist()


def test_learned_termination_works_as_a_planner_termination_function(pendulum_classifier):
    drift = KnownDynamics(lambda obs, action: obs + torch.nn.functional.pad(action, (1, 2)), 4, 1)  # angle += action
    actions = torch.tensor([0.05, 0.15])[:, None, None].expand(2, 3, 1)
    evaluation = TrajectoryEvaluator(drift, lambda o, a, n: torch.ones(n.shape[0]), pendulum_classifier,
                                     particles=1).evaluate(torch.zeros(4), actions)
    # angles 0.05, 0.10, 0.15 never leave the limit; 0.15, 0.30 ends on step 2
    assert torch.allclose(evaluation.mean_return, torch.tensor([3.0, 2.0]))


def test_reward_model_is_differentiable_in_its_inputs(linear_buffer):
    model = RewardModel(1, 1, **SMALL)
    model.fit(linear_buffer)
    next_obs = torch.zeros(3, 1, requires_grad=True)
    model(torch.zeros(3, 1), torch.zeros(3, 1), next_obs).sum().backward()
    assert next_obs.grad is not None and bool(torch.isfinite(next_obs.grad).all())


def test_save_and_load_round_trip(tmp_path, linear_buffer):
    reward_model = RewardModel(1, 1, **SMALL)
    reward_model.fit(linear_buffer)
    reward_model.save(tmp_path / "reward")
    restored = RewardModel.load(tmp_path / "reward")
    batch = linear_buffer.all()
    assert torch.equal(restored(batch.obs, batch.action, batch.next_obs),
                       reward_model(batch.obs, batch.action, batch.next_obs))
    assert restored.hidden_size == 32 and restored.train_config.max_epochs == 3

    classifier = TerminationClassifier(4, 1, threshold=0.3, **SMALL)
    classifier.fit(*pendulum_transitions(200, 0))
    classifier.save(tmp_path / "done")
    loaded = TerminationClassifier.load(tmp_path / "done")
    obs, action, next_obs, _ = pendulum_transitions(50, 1)
    assert loaded.threshold == 0.3
    assert torch.equal(loaded.probability(obs, action, next_obs), classifier.probability(obs, action, next_obs))
    with pytest.raises(CheckpointError, match="holds a 'reward_model' model, not a TerminationClassifier"):
        TerminationClassifier.load(tmp_path / "reward")


def test_bad_inputs_are_named(linear_buffer):
    with pytest.raises(RuntimeError, match="RewardModel has not been fitted"):
        RewardModel(1, 1)(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 1))
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['epochs'\] for RewardModel"):
        RewardModel(1, 1, epochs=3)
    with pytest.raises(ValueError, match="obs_dim and act_dim must be >= 1"):
        TerminationClassifier(0, 1)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\), got 1.0"):
        TerminationClassifier(1, 1, threshold=1.0)
    model = RewardModel(1, 1, **SMALL)
    with pytest.raises(TypeError, match=r"needs the reward targets when no buffer is given"):
        model.fit(torch.zeros(5, 1), torch.zeros(5, 1), torch.zeros(5, 1))
    with pytest.raises(TypeError, match="pass either a buffer/batch or the four arrays"):
        model.fit(linear_buffer, targets=torch.zeros(5))
    with pytest.raises(ValueError, match=r"'reward' targets have shape \(5, 1\), expected \(5,\)"):
        model.fit(torch.zeros(5, 1), torch.zeros(5, 1), torch.zeros(5, 1), torch.zeros(5, 1))
    with pytest.raises(ValueError, match="'reward' has a non-finite value at row 2"):
        model.fit(torch.zeros(5, 1), torch.zeros(5, 1), torch.zeros(5, 1), torch.tensor([0, 0, math.inf, 0, 0]))
    with pytest.raises(ValueError, match=r"'next_obs' has shape \(5, 2\), expected \(..., 1\)"):
        model.fit(torch.zeros(5, 1), torch.zeros(5, 1), torch.zeros(5, 2), torch.zeros(5))
    with pytest.raises(ValueError, match="'terminated' targets must be booleans or 0/1"):
        TerminationClassifier(1, 1).fit(torch.zeros(5, 1), torch.zeros(5, 1), torch.zeros(5, 1), torch.full((5,), 0.5))
    model.fit(linear_buffer)
    with pytest.raises(ValueError, match=r"RewardModel expects obs \(B, 1\), action \(B, 1\), next_obs \(B, 1\); "
                                         r"got \(3, 1\), \(2, 1\), \(3, 1\)"):
        model(torch.zeros(3, 1), torch.zeros(2, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"'action' has shape \(3, 2\), expected \(..., 1\)"):
        model(torch.zeros(3, 1), torch.zeros(3, 2), torch.zeros(3, 1))


def test_classifier_trained_on_one_class_says_so():
    obs, action, next_obs, _ = pendulum_transitions(100, 0)
    classifier = TerminationClassifier(4, 1, **SMALL)
    report = classifier.fit(obs, action, next_obs, torch.zeros(100, dtype=torch.bool))
    assert "only non-terminating transitions" in report.message and report.epochs == 0
    assert not classifier(obs, action, next_obs).any()
    report = classifier.fit(obs, action, next_obs, torch.ones(100, dtype=torch.bool))
    assert "only terminating transitions" in report.message
    assert classifier(obs, action, next_obs).all()
