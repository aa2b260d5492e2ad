"""Rank correlation, interval coverage and disagreement shift."""

import math

import numpy as np
import pytest
import torch

from forethought.evaluation import (EXPECTED_1SIGMA, EXPECTED_2SIGMA, average_ranks, calibration, disagreement_shift,
                                    spearman_correlation)
from forethought.models import LinearGaussian
from forethought.models.base import DynamicsModel, FitReport, Prediction

A_TRUE = torch.tensor([[0.9, 0.1], [-0.2, 1.0]])
B_TRUE = torch.tensor([[0.0], [0.5]])
NOISE_STD = torch.tensor([0.1, 0.5])


class KnownLinear(DynamicsModel):
    """The true mean x' = A x + B u with a chosen per-dim aleatoric std and an optional
    epistemic variance computed from the input (``epistemic(obs) -> [B, o]``)."""

    def __init__(self, noise_std=None, epistemic=None):
        super().__init__(2, 1)
        self.noise_std, self.epistemic, self.fitted = noise_std, epistemic, True

    def _fit(self, obs, action, next_obs, generator):
        return FitReport()

    def _predict(self, obs, action):
        mean = obs @ A_TRUE.T + action @ B_TRUE.T
        aleatoric = None if self.noise_std is None else (self.noise_std ** 2).expand_as(mean)
        return Prediction(mean, aleatoric, None if self.epistemic is None else self.epistemic(obs))

    def _state(self):
        return {}, {}

    @classmethod
    def _from_state(cls, tensors, config, obs_dim, act_dim, **kwargs):
        raise NotImplementedError


def linear_gaussian_data(n, seed, shift=0.0):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 2, generator=gen) + shift
    act = torch.randn(n, 1, generator=gen)
    nxt = obs @ A_TRUE.T + act @ B_TRUE.T + NOISE_STD * torch.randn(n, 2, generator=gen)
    return obs, act, nxt


def test_average_ranks_share_ties():
    assert average_ranks(torch.tensor([10.0, 20.0, 20.0, 30.0])).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert average_ranks(torch.tensor([3, 1, 3, 2, 3])).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]
    assert average_ranks(torch.full((4,), 7.0)).tolist() == [2.5] * 4
    assert average_ranks(torch.tensor([0.5])).tolist() == [1.0]
    with pytest.raises(ValueError, match="1-D"):
        average_ranks(torch.zeros(2, 2))


def test_spearman_known_values():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    # Ties in y: ranks [1, 2, 3.5, 5, 3.5] -> 8 / sqrt(10 * 9.5).
    assert spearman_correlation(x, torch.tensor([5.0, 6.0, 7.0, 8.0, 7.0])) == pytest.approx(8 / math.sqrt(95), abs=1e-12)
    # No ties: 1 - 6 * sum(d^2) / (n (n^2 - 1)) with sum(d^2) = 4 -> 0.8.
    assert spearman_correlation(x, torch.tensor([2.0, 1.0, 4.0, 3.0, 5.0])) == pytest.approx(0.8, abs=1e-12)
    assert spearman_correlation(x, x.exp()) == pytest.approx(1.0, abs=1e-12)  # any monotone map
    assert spearman_correlation(x, -x ** 3) == pytest.approx(-1.0, abs=1e-12)
    assert math.isnan(spearman_correlation(x, torch.ones(5)))
    with pytest.raises(ValueError, match="equal length"):
        spearman_correlation(x, x[:3])


def test_correct_model_covers_68_and_95_percent():
    n = 5000
    data = linear_gaussian_data(n, seed=0)
    result = calibration(KnownLinear(noise_std=NOISE_STD), data)
    assert result["n"] == n
    assert result["expected_1sigma"] == pytest.approx(0.6827, abs=1e-4) == EXPECTED_1SIGMA
    assert result["expected_2sigma"] == pytest.approx(0.9545, abs=1e-4) == EXPECTED_2SIGMA
    for k, expected in ((1, EXPECTED_1SIGMA), (2, EXPECTED_2SIGMA)):
        band = 4 * math.sqrt(expected * (1 - expected) / n)  # binomial standard errors
        per_dim = result[f"coverage_{k}sigma_per_dim"]
        assert len(per_dim) == 2 and all(abs(c - expected) < band for c in per_dim), (k, per_dim)
        assert abs(result[f"coverage_{k}sigma"] - expected) < band
        assert result[f"coverage_{k}sigma"] == pytest.approx(np.mean(per_dim), abs=1e-12)
    assert result["mean_disagreement"] is None and result["spearman_disagreement_error"] is None
    assert result["spearman_epistemic_var_sq_error"] is None


def test_miscalibrated_models_change_coverage_as_predicted():
    n = 5000
    data = linear_gaussian_data(n, seed=1)
    band = 4 * math.sqrt(0.25 / n)
    # Claiming half the true std: the 1-sigma interval is really +/- 0.5 sigma (38.3 %).
    overconfident = calibration(KnownLinear(noise_std=NOISE_STD / 2), data)
    assert abs(overconfident["coverage_1sigma"] - math.erf(0.5 / math.sqrt(2))) < band
    assert abs(overconfident["coverage_2sigma"] - EXPECTED_1SIGMA) < band
    # Claiming twice the true std: the 1-sigma interval is really +/- 2 sigma (95.4 %).
    underconfident = calibration(KnownLinear(noise_std=NOISE_STD * 2), data)
    assert abs(underconfident["coverage_1sigma"] - EXPECTED_2SIGMA) < band
    # No variance at all: coverage cannot be computed, nothing crashes.
    blind = calibration(KnownLinear(), data)
    assert blind["coverage_1sigma"] is None and blind["coverage_2sigma_per_dim"] is None


def test_disagreement_that_tracks_the_error_has_rank_correlation_one():
    gen = torch.Generator().manual_seed(3)
    obs, act = torch.randn(200, 2, generator=gen), torch.randn(200, 1, generator=gen)
    signs = torch.randint(0, 2, (200, 2), generator=gen) * 2.0 - 1.0
    mean = obs @ A_TRUE.T + act @ B_TRUE.T
    model = KnownLinear(epistemic=lambda o: (o[:, :1] ** 2).expand(-1, 2))  # std = |obs[0]| in both dims
    tracking = calibration(model, (obs, act, mean + signs * obs[:, :1].abs()))
    assert tracking["spearman_disagreement_error"] == pytest.approx(1.0, abs=1e-9)
    assert tracking["spearman_epistemic_var_sq_error"] == pytest.approx(1.0, abs=1e-9)
    assert tracking["mean_disagreement"] == pytest.approx(float(obs[:, 0].abs().mean()), rel=1e-6)
    # Errors largest exactly where the model is most confident: correlation -1.
    inverted = calibration(model, (obs, act, mean + signs / (obs[:, :1].abs() + 0.1)))
    assert inverted["spearman_disagreement_error"] == pytest.approx(-1.0, abs=1e-9)
    assert inverted["spearman_epistemic_var_sq_error"] == pytest.approx(-1.0, abs=1e-9)
    # Epistemic-only variance is still used for coverage.
    assert inverted["coverage_1sigma"] is not None


def test_linear_gaussian_is_calibrated_and_more_uncertain_off_distribution():
    model = LinearGaussian(2, 1)
    model.fit(*linear_gaussian_data(200, seed=4))
    n = 4000
    result = calibration(model, linear_gaussian_data(n, seed=5))
    assert abs(result["coverage_1sigma"] - EXPECTED_1SIGMA) < 4 * math.sqrt(0.683 * 0.317 / n) + 0.01
    assert result["mean_disagreement"] > 0 and -1 <= result["spearman_disagreement_error"] <= 1

    in_obs, in_act, _ = linear_gaussian_data(300, seed=4)
    off_obs, off_act, _ = linear_gaussian_data(300, seed=6, shift=10.0)
    shift = disagreement_shift(model, in_obs, in_act, off_obs, off_act)

    def expected_disagreement(o, a):  # mean over rows of the mean over dims of sqrt(x^T G x * sigma_d^2)
        x = torch.cat([o, a, torch.ones(len(o), 1)], 1).double()
        leverage = ((x @ model.gram_inverse) * x).sum(1, keepdim=True)
        return float((leverage * model.noise_cov.diagonal()).sqrt().mean())

    assert shift["in_distribution"] == pytest.approx(expected_disagreement(in_obs, in_act), rel=1e-5)
    assert shift["off_distribution"] == pytest.approx(expected_disagreement(off_obs, off_act), rel=1e-5)
    assert shift["ratio"] == pytest.approx(shift["off_distribution"] / shift["in_distribution"], rel=1e-12)
    assert shift["ratio"] > 5
    assert disagreement_shift(KnownLinear(noise_std=NOISE_STD), in_obs, in_act, off_obs, off_act) == {
        "in_distribution": None, "off_distribution": None, "ratio": None}
