"""The one model interface planners use, implemented by every model kind, and the checkpoint code
every model shares."""

import pytest
import torch

from forethought.models import (ConstantDelta, DynamicsModel, KnownDynamics, LinearGaussian, MemberPredictor,
                                ProbabilisticEnsemble, ProbabilisticMLP, ResidualModel, RewardModel)
from forethought.models.base import require_model
from forethought.models.checkpointed import CheckpointedModel
from forethought.serialization import CheckpointError

SMALL = dict(hidden_size=16, hidden_layers=1, max_epochs=2)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def data(n: int = 120, seed: int = 0):
    g = gen(seed)
    obs, action = torch.randn(n, 2, generator=g), torch.rand(n, 1, generator=g) * 2 - 1
    return obs, action, linear_step(obs, action) + 0.01 * torch.randn(n, 2, generator=g)


def linear_step(obs, action):
    return obs @ torch.tensor([[0.9, 0.1], [0.0, 0.8]]).T + action @ torch.tensor([[0.0, 1.0]])


def fitted(kind: str) -> DynamicsModel:
    models = {
        "linear": lambda: LinearGaussian(2, 1),
        "mlp": lambda: ProbabilisticMLP(2, 1, **SMALL),
        "ensemble": lambda: ProbabilisticEnsemble(2, 1, ensemble_size=4, elite_count=3, **SMALL),
        "residual": lambda: ResidualModel(lambda o, a: o, ProbabilisticEnsemble(2, 1, ensemble_size=3, **SMALL)),
        "known": lambda: KnownDynamics(linear_step, 2, 1),
        "constant": lambda: ConstantDelta(2, 1),
    }
    model = models[kind]()
    model.fit(*data(), generator=gen(1))
    return model


KINDS = ["linear", "mlp", "ensemble", "residual", "known", "constant"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_model_kind_implements_the_member_interface(kind):
    model = fitted(kind)
    obs, action, _ = data(7, seed=2)
    means, variances = model.predict_members(obs, action)
    assert means.shape == (model.ensemble_size, 7, 2)
    assert variances is None or variances.shape == means.shape
    assert model.delta_scale().shape == (2,) and model.delta_scale().dtype == torch.float32
    assert all(0 <= k < model.ensemble_size for k in model.elites)
    predictor, frozen = model.member_predictor(), model.frozen_member_predictor("bfloat16")
    if model.ensemble_size == 1:
        assert predictor is None and frozen is None  # planners propagate it through sample / predict
        assert torch.equal(means[0], model.predict(obs, action).mean)
    else:
        assert isinstance(predictor, MemberPredictor) and predictor.members == sorted(model.elites)
        blocks = obs.expand(predictor.size, -1, -1), action.expand(predictor.size, -1, -1)
        member_means, member_stds = predictor(*blocks)
        assert torch.allclose(member_means, means[predictor.members], atol=1e-5)
        assert torch.allclose(member_stds, variances[predictor.members].sqrt(), atol=1e-5)
        assert frozen.members == predictor.members and frozen.probabilistic


def test_ensemble_members_expose_elites_and_the_delta_scale():
    model = fitted("ensemble")
    assert model.ensemble_size == 4 and len(model.elites) == 3
    assert torch.equal(model.delta_scale(), model.delta_norm.std)
    residual = fitted("residual")
    assert torch.equal(residual.delta_scale(), residual.learned.delta_scale()) and residual.ensemble_size == 1
    assert torch.equal(fitted("linear").delta_scale(), torch.ones(2))


def test_the_member_predictor_keeps_gradients_and_the_frozen_one_does_not():
    model = fitted("ensemble")
    obs = torch.zeros(3, 5, 2, requires_grad=True)
    means, _ = model.member_predictor()(obs, torch.zeros(3, 5, 1))
    means.sum().backward()
    assert obs.grad is not None and bool((obs.grad != 0).any())
    frozen_means, _ = model.frozen_member_predictor()(obs, torch.zeros(3, 5, 1))
    assert not frozen_means.requires_grad and torch.allclose(frozen_means, means.detach(), atol=1e-5)
    with pytest.raises(ValueError, match="compute_dtype must be one of"):
        model.frozen_member_predictor("float16")


def test_linearization_is_exact_for_linear_models_and_the_jacobian_otherwise():
    A, B, c = fitted("linear").linearization()
    assert A.dtype == torch.float64 and A.shape == (2, 2) and B.shape == (2, 1) and c.shape == (2,)
    assert torch.allclose(A, torch.tensor([[0.9, 0.1], [0.0, 0.8]], dtype=torch.float64), atol=0.01)
    known = fitted("known")
    A, B, c = known.linearization(torch.tensor([0.3, -0.2]), torch.tensor([0.5]))
    assert torch.allclose(A, torch.tensor([[0.9, 0.1], [0.0, 0.8]], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(B, torch.tensor([[0.0], [1.0]], dtype=torch.float64))
    assert torch.allclose(c, torch.zeros(2, dtype=torch.float64), atol=1e-6)
    mlp = fitted("mlp")
    x, u = torch.tensor([0.3, -0.2]), torch.tensor([0.5])
    A, B, c = mlp.linearization(x, u)
    with torch.no_grad():
        step = 1e-2 * torch.tensor([1.0, -1.0])
        expected = mlp.predict(x + step, u).mean.double()
    assert torch.allclose(A @ (x + step).double() + B @ u.double() + c, expected, atol=1e-3)
    with pytest.raises(ValueError, match="ProbabilisticMLP is not linear: linearization needs a point"):
        mlp.linearization()


def test_planners_accept_only_dynamics_models():
    assert require_model(fitted("known")) is not None
    with pytest.raises(TypeError, match=r"model must be a dynamics model \(forethought.models.DynamicsModel\), got dict"):
        require_model({})


def test_reward_models_share_the_dynamics_models_checkpoints(tmp_path):
    obs, action, next_obs = data()
    reward = RewardModel(2, 1, **SMALL)
    reward.fit(obs, action, next_obs, -(next_obs ** 2).sum(-1), generator=gen(0))
    reward.save(tmp_path / "reward")
    ensemble = fitted("ensemble")
    ensemble.save(tmp_path / "dynamics")
    loaded = CheckpointedModel.load(tmp_path / "reward")  # the stored kind picks the class
    assert type(loaded) is RewardModel and loaded.train_config == reward.train_config
    assert torch.equal(loaded(obs, action, next_obs), reward(obs, action, next_obs))
    assert type(CheckpointedModel.load(tmp_path / "dynamics")) is ProbabilisticEnsemble
    with pytest.raises(CheckpointError, match="holds a 'reward_model' model, not a DynamicsModel"):
        DynamicsModel.load(tmp_path / "reward")
    with pytest.raises(CheckpointError, match="holds a 'probabilistic_ensemble' model, not a RewardModel"):
        RewardModel.load(tmp_path / "dynamics")


def test_a_single_model_predict_members_refuses_member_blocks():
    model = fitted("linear")
    with pytest.raises(ValueError, match=r"predict_members expects obs of shape \(B, 2\) or \(1, B, 2\)"):
        model.predict_members(torch.zeros(3, 4, 2), torch.zeros(3, 4, 1))
