"""one_step_error: exact numbers on hand-made data, and behaviour for models with/without variance."""

import math

import numpy as np
import pytest
import torch

from forethought.data.buffer import ReplayBuffer
from forethought.evaluation import one_step_error, predict_batched
from forethought.models import LinearGaussian
from forethought.models.base import DynamicsModel, FitReport, Prediction


class ShiftModel(DynamicsModel):
    """Predicts s' = s + shift with fixed aleatoric/epistemic variances (None = not provided)."""

    def __init__(self, obs_dim, act_dim, shift, aleatoric=None, epistemic=None):
        super().__init__(obs_dim, act_dim)
        self.shift, self.aleatoric, self.epistemic = torch.as_tensor(shift, dtype=torch.float32), aleatoric, epistemic
        self.fitted = True

    def _fit(self, obs, action, next_obs, generator):
        return FitReport()

    def _predict(self, obs, action):
        mean = obs + self.shift
        fill = lambda v: None if v is None else torch.full_like(mean, v)
        return Prediction(mean, fill(self.aleatoric), fill(self.epistemic))

    def _state(self):
        return {}, {}

    @classmethod
    def _from_state(cls, tensors, config, obs_dim, act_dim, **kwargs):
        raise NotImplementedError


# Two state dimensions; true changes are [1, 2, 3] and [0, 0, 4]; the model always predicts +1.
OBS = torch.tensor([[0.0, 5.0], [1.0, -2.0], [3.0, 0.5]])
ACT = torch.zeros(3, 1)
NEXT = OBS + torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 4.0]])


def test_exact_mse_normalised_mse_and_nll():
    model = ShiftModel(2, 1, shift=1.0, aleatoric=0.75, epistemic=0.25)  # total variance 1
    result = one_step_error(model, (OBS, ACT, NEXT), var_floor=0.0)
    # errors: dim 0 [0, -1, -2] -> 5/3; dim 1 [1, 1, -3] -> 11/3
    assert result["n"] == 3
    np.testing.assert_allclose(result["mse_per_dim"], [5 / 3, 11 / 3], rtol=1e-12)
    assert result["mse"] == pytest.approx(8 / 3, rel=1e-12)
    # population variances of the true changes: 2/3 and 32/9
    np.testing.assert_allclose(result["normalized_mse_per_dim"], [2.5, 33 / 32], rtol=1e-12)
    assert result["normalized_mse"] == pytest.approx((2.5 + 33 / 32) / 2, rel=1e-12)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(result["nll_per_dim"], [half_log_2pi + 5 / 6, half_log_2pi + 11 / 6], rtol=1e-12)
    assert result["nll"] == pytest.approx(half_log_2pi + 4 / 3, rel=1e-12)


def test_variance_floor_and_models_without_variance():
    deterministic = one_step_error(ShiftModel(2, 1, shift=1.0), (OBS, ACT, NEXT))
    assert deterministic["nll"] is None and deterministic["nll_per_dim"] is None
    assert deterministic["mse"] == pytest.approx(8 / 3, rel=1e-12)
    # Zero predicted variance: the floor keeps the NLL finite, 0.5 * (log(2 pi f) + e^2 / f).
    overconfident = one_step_error(ShiftModel(2, 1, shift=1.0, aleatoric=0.0), (OBS, ACT, NEXT), var_floor=1e-6)
    expected = 0.5 * (math.log(2 * math.pi * 1e-6) + (5 / 3) / 1e-6)
    assert overconfident["nll_per_dim"][0] == pytest.approx(expected, rel=1e-9)


def test_predicting_the_average_change_scores_one_and_constant_dims_are_nan():
    next_obs = OBS + torch.tensor([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]])  # dim 1 always changes by 2
    result = one_step_error(ShiftModel(2, 1, shift=[2.0, 2.0]), (OBS, ACT, next_obs))
    assert result["normalized_mse_per_dim"][0] == pytest.approx(1.0, rel=1e-12)
    assert math.isnan(result["normalized_mse_per_dim"][1])
    assert result["normalized_mse"] == pytest.approx(1.0, rel=1e-12)  # the constant dim is skipped
    assert result["mse_per_dim"][1] == 0.0


def test_buffer_batch_and_arrays_agree_and_batching_does_not_change_results():
    gen = torch.Generator().manual_seed(0)
    obs, act = torch.randn(300, 2, generator=gen), torch.randn(300, 1, generator=gen)
    nxt = 0.9 * obs + act + 0.1 * torch.randn(300, 2, generator=gen)
    buffer = ReplayBuffer(2, 1)
    buffer.add_batch(obs.numpy(), act.numpy(), np.zeros(300), nxt.numpy())
    train, test = buffer.split(0.3, gen)
    model = LinearGaussian(2, 1)
    model.fit(train)
    from_batch = one_step_error(model, test)
    from_arrays = one_step_error(model, (test.obs, test.action, test.next_obs), batch_size=7)
    for key, value in from_batch.items():
        assert value == pytest.approx(from_arrays[key], rel=1e-12), key
    assert one_step_error(model, buffer)["n"] == 300
    # Held-out error of a correct linear model is close to the noise level 0.01 per dimension.
    assert all(0.006 < m < 0.016 for m in from_batch["mse_per_dim"])
    pred = predict_batched(model, test.obs, test.action, batch_size=16)
    assert pred.mean.dtype == torch.float64 and pred.mean.shape == (90, 2)


def test_bad_inputs_are_rejected():
    model = ShiftModel(2, 1, shift=1.0)
    with pytest.raises(ValueError, match="0 transitions"):
        one_step_error(model, (torch.zeros(0, 2), torch.zeros(0, 1), torch.zeros(0, 2)))
    with pytest.raises(ValueError, match="obs"):
        one_step_error(model, (torch.zeros(3, 3), ACT, NEXT))
    with pytest.raises(TypeError):
        one_step_error(model, OBS)
