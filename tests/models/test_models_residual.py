import dataclasses

import pytest
import torch

from forethought import envs
from forethought.data import collect
from forethought.envs import CartPoleParams, cartpole_step
from forethought.evaluation import one_step_error
from forethought.models import DeterministicEnsemble, DynamicsModel, LinearGaussian, ResidualModel


def simulator_with_pole_length(scale: float, env):
    params = dataclasses.replace(CartPoleParams(), pole_length=CartPoleParams().pole_length * scale)
    return lambda obs, action: cartpole_step(obs, action, params, env.unwrapped.dt, env.unwrapped.substeps)


def small_ensemble():
    return DeterministicEnsemble(5, 1, ensemble_size=3, hidden_size=64, hidden_layers=2, max_epochs=100)


@pytest.fixture(scope="module")
def cartpole():
    env = envs.make("cartpole-swingup")
    return env, collect(env, 800, seed=0), collect(env, 1000, seed=123)


def test_physics_prior_needs_far_fewer_transitions(cartpole):
    """A simulator with a 30 % too long pole plus a learned correction, fitted on 200 transitions,
    beats a model from scratch fitted on 4x as many (measured held-out MSE: residual 0.063,
    from scratch 0.49, the wrong simulator alone 0.083)."""
    env, train, held_out = cartpole
    generator = torch.Generator().manual_seed(0)
    residual = ResidualModel(simulator_with_pole_length(1.3, env), small_ensemble())
    residual.fit(train.subset(torch.arange(200)), generator=generator)
    scratch = small_ensemble()
    scratch.fit(train, generator=torch.Generator().manual_seed(0))
    residual_mse = one_step_error(residual, held_out)["mse"]
    scratch_mse = one_step_error(scratch, held_out)["mse"]
    prior = residual.simulator
    data = held_out.all()
    prior_mse = float(((prior(data.obs, data.action) - data.next_obs) ** 2).mean())
    assert residual_mse < 0.5 * scratch_mse
    assert residual_mse < prior_mse  # the correction improves on the wrong simulator


def test_correct_simulator_leaves_nothing_to_learn(cartpole):
    env, train, held_out = cartpole
    model = ResidualModel(simulator_with_pole_length(1.0, env), LinearGaussian(5, 1))
    model.fit(train)
    data = held_out.all()
    pred = model.predict(data.obs, data.action)
    torch.testing.assert_close(pred.mean, data.next_obs, atol=1e-4, rtol=0)


def test_save_load_needs_the_simulator(cartpole, tmp_path):
    env, train, held_out = cartpole
    simulator = simulator_with_pole_length(1.3, env)
    model = ResidualModel(simulator, LinearGaussian(5, 1))
    model.fit(train)
    model.save(tmp_path / "residual")
    with pytest.raises(ValueError, match="pass it when loading"):
        DynamicsModel.load(tmp_path / "residual")
    restored = DynamicsModel.load(tmp_path / "residual", simulator=simulator)
    data = held_out.all()
    assert torch.equal(restored.predict(data.obs, data.action).mean, model.predict(data.obs, data.action).mean)
    draw = restored.sample(data.obs[:3], data.action[:3], torch.Generator().manual_seed(0))
    assert draw.shape == (3, 5)


def test_simulator_of_the_wrong_shape_is_rejected(cartpole):
    _, train, _ = cartpole
    model = ResidualModel(lambda obs, action: obs[:, :2], LinearGaussian(5, 1))
    with pytest.raises(ValueError, match=r"simulator returned \(800, 2\), expected a tensor of shape \(800, 5\)"):
        model.fit(train)
    with pytest.raises(TypeError, match="callable"):
        ResidualModel("not a function", LinearGaussian(5, 1))
