import pytest
import torch

from forethought import envs
from forethought.data import collect
from forethought.envs import analytic_step
from forethought.models import DynamicsModel, KnownDynamics


def test_known_dynamics_predicts_the_system_and_fit_reports_its_error(tmp_path):
    env = envs.make("pendulum-swingup")
    data = collect(env, 50, seed=0)
    model = KnownDynamics(analytic_step(env), 3, 1)
    batch = data.all()
    torch.testing.assert_close(model.predict(batch.obs, batch.action).mean, batch.next_obs, atol=1e-5, rtol=0)
    report = model.fit(data)
    assert report.train_loss[0] < 1e-10
    model.save(tmp_path / "oracle")
    with pytest.raises(ValueError, match="pass the simulator when loading"):
        DynamicsModel.load(tmp_path / "oracle")
    restored = DynamicsModel.load(tmp_path / "oracle", simulator=analytic_step(env))
    assert torch.equal(restored.predict(batch.obs, batch.action).mean, model.predict(batch.obs, batch.action).mean)
    assert model.sample(batch.obs, batch.action, torch.Generator()).shape == batch.obs.shape


def test_known_dynamics_rejects_a_bad_simulator():
    with pytest.raises(TypeError, match="callable"):
        KnownDynamics(None, 3, 1)
    model = KnownDynamics(lambda obs, action: obs[:, :1], 3, 1)
    with pytest.raises(ValueError, match=r"simulator returned \(4, 1\)"):
        model.predict(torch.zeros(4, 3), torch.zeros(4, 1))
