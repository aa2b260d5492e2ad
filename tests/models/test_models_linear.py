"""LinearGaussian: exact recovery, statistical behaviour of the estimates, rank handling, I/O."""

import numpy as np
import pytest
import torch

from forethought.data.buffer import ReplayBuffer
from forethought.models import DynamicsModel, LinearGaussian

# The five noise-free 1-D transitions (s, a, s') of s' = 0.5 s + 1.0 a.
FIVE = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [0.5, -1.0, -0.75], [-1.0, 1.0, 0.5], [2.0, -0.5, 0.5]])


def linear_data(n, a_true, b_true, c_true, noise_std, generator):
    """n transitions of s' = A s + B a + c + noise_std * N(0, I) with standard-normal s and a."""
    obs = torch.randn(n, a_true.shape[0], generator=generator, dtype=torch.float64)
    act = torch.randn(n, b_true.shape[1], generator=generator, dtype=torch.float64)
    noise = noise_std * torch.randn(n, a_true.shape[0], generator=generator, dtype=torch.float64)
    return obs, act, obs @ a_true.T + act @ b_true.T + c_true + noise


def test_five_noise_free_transitions_give_exact_a_and_b():
    model = LinearGaussian(1, 1)
    report = model.fit(FIVE[:, :1], FIVE[:, 1:2], FIVE[:, 2:])
    assert model.A.dtype == torch.float64 and model.A.shape == (1, 1) and model.B.shape == (1, 1)
    assert abs(model.A.item() - 0.5) < 1e-9
    assert abs(model.B.item() - 1.0) < 1e-9
    assert abs(model.c.item()) < 1e-9
    assert model.noise_cov.shape == (1, 1) and abs(model.noise_cov.item()) < 1e-18
    assert report.train_loss[0] < 1e-18 and "5 transitions" in report.message
    pred = model.predict(FIVE[:, :1], FIVE[:, 1:2])
    torch.testing.assert_close(pred.mean, FIVE[:, 2:], atol=1e-6, rtol=0)


def test_multidimensional_recovery_and_buffer_input():
    gen = torch.Generator().manual_seed(1)
    a_true = torch.tensor([[0.9, 0.2, 0.0], [-0.1, 1.0, 0.3], [0.0, 0.5, 0.7]], dtype=torch.float64)
    b_true = torch.tensor([[1.0, 0.0], [0.0, -2.0], [0.5, 0.5]], dtype=torch.float64)
    c_true = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    obs, act, nxt = linear_data(50, a_true, b_true, c_true, 0.0, gen)
    buffer = ReplayBuffer(3, 2)
    buffer.add_batch(obs.numpy(), act.numpy(), np.zeros(50), nxt.numpy())
    model = LinearGaussian(3, 2)
    model.fit(buffer)
    # Inputs are stored as float32, so recovery is exact only up to float32 rounding.
    torch.testing.assert_close(model.A, a_true, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.B, b_true, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.c, c_true, atol=1e-5, rtol=0)
    pred = model.predict(obs[:4].float().reshape(2, 2, 3), act[:4].float().reshape(2, 2, 2))
    assert pred.mean.shape == pred.aleatoric_var.shape == pred.epistemic_var.shape == (2, 2, 3)


def test_estimates_are_unbiased_and_shrink_like_one_over_sqrt_n():
    gen = torch.Generator().manual_seed(7)
    a_true, b_true = torch.tensor([[0.8]], dtype=torch.float64), torch.tensor([[0.5]], dtype=torch.float64)
    c_true, noise_std, reps = torch.tensor([0.1], dtype=torch.float64), 0.2, 200
    spread = {}
    for n in (25, 400):
        estimates = []
        for _ in range(reps):
            model = LinearGaussian(1, 1)
            model.fit(*linear_data(n, a_true, b_true, c_true, noise_std, gen))
            estimates.append([model.A.item(), model.B.item(), model.c.item(), model.noise_cov.item()])
        est = torch.tensor(estimates, dtype=torch.float64)
        mean, std = est.mean(0), est.std(0)
        standard_error = std / reps ** 0.5
        truth = torch.tensor([0.8, 0.5, 0.1, noise_std ** 2], dtype=torch.float64)
        assert torch.all((mean - truth).abs() < 4 * standard_error), (n, mean, truth, standard_error)
        spread[n] = std[:3]
        if n == 25:
            # The N - (o + a + 1) correction matters: dividing by N would be biased low by 12 %,
            # which is well outside the band the corrected estimate sits in.
            biased = mean[3] * (n - 3) / n
            assert (truth[3] - biased) > 4 * standard_error[3]
    ratio = spread[25] / spread[400]
    # 1/sqrt(N) predicts 4; with a random design the exact factor is about sqrt(396 / 21) = 4.3.
    assert torch.all((ratio > 3.4) & (ratio < 5.3)), ratio


def test_epistemic_variance_is_the_sampling_variance_of_the_mean():
    gen = torch.Generator().manual_seed(3)
    a_true, b_true = torch.tensor([[0.8]], dtype=torch.float64), torch.tensor([[0.5]], dtype=torch.float64)
    c_true, noise_std = torch.tensor([0.1], dtype=torch.float64), 0.3
    obs, act, _ = linear_data(30, a_true, b_true, c_true, 0.0, gen)  # a fixed design
    query_obs, query_act = torch.tensor([[2.0]]), torch.tensor([[-1.5]])
    means, epistemic = [], []
    for _ in range(300):
        nxt = obs @ a_true.T + act @ b_true.T + c_true + noise_std * torch.randn(30, 1, generator=gen, dtype=torch.float64)
        model = LinearGaussian(1, 1)
        model.fit(obs, act, nxt)
        pred = model.predict(query_obs, query_act)
        means.append(pred.mean.item())
        epistemic.append(pred.epistemic_var.item())
    # Closed form of the variance of the fitted mean at x = [s, a, 1] for this design.
    design = torch.cat([obs, act, torch.ones(30, 1, dtype=torch.float64)], 1).float().double()
    x = torch.tensor([2.0, -1.5, 1.0], dtype=torch.float64)
    exact = float(x @ torch.linalg.solve(design.T @ design, x)) * noise_std ** 2
    assert abs(np.mean(epistemic) / exact - 1) < 0.05  # unbiased noise estimate times exact leverage
    assert 0.75 < np.var(means, ddof=1) / exact < 1.3  # 300 reps: relative SE of a variance ~ 8 %


def test_predict_formulas_match_explicit_computation():
    gen = torch.Generator().manual_seed(4)
    a_true = torch.tensor([[1.0, 0.1], [0.0, 0.9]], dtype=torch.float64)
    b_true = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    obs, act, nxt = linear_data(40, a_true, b_true, torch.zeros(2, dtype=torch.float64), 0.1, gen)
    model = LinearGaussian(2, 1)
    model.fit(obs, act, nxt)
    design = np.concatenate([obs.float().numpy(), act.float().numpy(), np.ones((40, 1), np.float32)], 1).astype(np.float64)
    theta, *_ = np.linalg.lstsq(design, nxt.float().double().numpy(), rcond=None)
    residual = nxt.float().double().numpy() - design @ theta
    noise_cov = residual.T @ residual / (40 - 4)
    np.testing.assert_allclose(model.noise_cov.numpy(), noise_cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.A.numpy(), theta[:2].T, rtol=1e-9, atol=1e-12)
    query = np.array([0.3, -2.0, 4.0, 1.0])
    pred = model.predict(torch.tensor(query[None, :2]), torch.tensor(query[None, 2:3]))
    np.testing.assert_allclose(pred.mean.numpy()[0], query @ theta, rtol=1e-6)
    np.testing.assert_allclose(pred.aleatoric_var.numpy()[0], np.diag(noise_cov), rtol=1e-6)
    leverage = query @ np.linalg.solve(design.T @ design, query)
    np.testing.assert_allclose(pred.epistemic_var.numpy()[0], leverage * np.diag(noise_cov), rtol=1e-5)


def test_rank_deficient_data_raises_without_ridge():
    obs, nxt = FIVE[:, :1], FIVE[:, 2:]
    with pytest.raises(ValueError, match=r"rank-deficient.*action\[0\].*ridge > 0"):
        LinearGaussian(1, 1).fit(obs, torch.zeros(5, 1), nxt)
    with pytest.raises(ValueError, match=r"only 2 rows for 3 parameters"):
        LinearGaussian(1, 1).fit(obs[:2], FIVE[:2, 1:2], nxt[:2])
    twins = torch.cat([obs, 2 * obs], dim=1)  # second state dimension is a copy of the first
    with pytest.raises(ValueError, match=r"obs\[1\]"):
        LinearGaussian(2, 1).fit(twins, FIVE[:, 1:2], torch.cat([nxt, nxt], 1))


def test_ridge_fallback_matches_normal_equations_and_leaves_bias_unpenalised():
    obs, nxt, act = FIVE[:, :1], FIVE[:, 2:], torch.zeros(5, 1)
    ridge = 0.1
    model = LinearGaussian(1, 1, ridge=ridge)
    report = model.fit(obs, act, nxt)
    assert "ridge" in report.message
    design = np.concatenate([obs.numpy(), act.numpy(), np.ones((5, 1))], 1).astype(np.float64)
    delta = (nxt - obs).numpy().astype(np.float64)
    penalty = ridge * np.diag([1.0, 1.0, 0.0])
    theta = np.linalg.solve(design.T @ design + penalty, design.T @ delta)
    assert abs(model.A.item() - (1 + theta[0, 0])) < 1e-12
    assert model.B.item() == 0.0  # an action never seen is shrunk to no effect
    assert abs(model.c.item() - theta[2, 0]) < 1e-12
    np.testing.assert_allclose(model.gram_inverse.numpy(), np.linalg.inv(design.T @ design + penalty), rtol=1e-10)
    # A huge ridge pins A - I and B to zero, but the unpenalised bias still fits the mean change.
    heavy = LinearGaussian(1, 1, ridge=1e12)
    heavy.fit(obs, act, nxt)
    assert abs(heavy.A.item() - 1) < 1e-9 and abs(heavy.c.item() - float(delta.mean())) < 1e-9
    # Fewer rows than parameters is fine with ridge > 0 (the noise estimate is flagged).
    few = LinearGaussian(2, 1, ridge=1.0)
    report = few.fit(torch.randn(2, 2), torch.randn(2, 1), torch.randn(2, 2))
    assert "unreliable" in report.message and torch.isfinite(few.A).all()


def test_sample_uses_full_noise_covariance_and_the_generator():
    gen = torch.Generator().manual_seed(5)
    n = 4000
    obs = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    act = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64) * 0.04
    noise = torch.randn(n, 2, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    model = LinearGaussian(2, 1)
    model.fit(obs, act, 0.9 * obs + act + noise)
    query_obs, query_act = torch.ones(20000, 2), torch.zeros(20000, 1)
    draws = model.sample(query_obs, query_act, torch.Generator().manual_seed(0)).double()
    empirical = torch.cov((draws - draws.mean(0)).T)
    torch.testing.assert_close(empirical, model.noise_cov, atol=0.003, rtol=0)
    assert empirical[0, 1] / empirical.diagonal().prod().sqrt() > 0.75  # correlation kept, not diagonal
    again = model.sample(query_obs, query_act, torch.Generator().manual_seed(0))
    assert torch.equal(draws.float(), again)
    assert model.sample(torch.ones(4, 3, 2), torch.zeros(4, 3, 1), gen).shape == (4, 3, 2)
    # A noise-free fit has a singular covariance; sampling then returns the mean.
    exact = LinearGaussian(1, 1)
    exact.fit(FIVE[:, :1], FIVE[:, 1:2], FIVE[:, 2:])
    torch.testing.assert_close(exact.sample(FIVE[:, :1], FIVE[:, 1:2], gen), FIVE[:, 2:], atol=1e-6, rtol=0)


def test_save_load_round_trip_is_exact(tmp_path):
    gen = torch.Generator().manual_seed(6)
    obs, act, nxt = linear_data(30, torch.eye(2, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64),
                                torch.zeros(2, dtype=torch.float64), 0.1, gen)
    model = LinearGaussian(2, 1, ridge=0.5)
    model.fit(obs, act, nxt)
    model.save(tmp_path / "linear")
    loaded = DynamicsModel.load(tmp_path / "linear")
    assert isinstance(loaded, LinearGaussian) and loaded.ridge == 0.5 and loaded.n_samples == 30 and loaded.fitted
    for name in ("A", "B", "c", "noise_cov", "gram_inverse"):
        assert torch.equal(getattr(loaded, name), getattr(model, name)), name
    query_obs, query_act = torch.randn(5, 2, generator=gen), torch.randn(5, 1, generator=gen)
    first, second = model.predict(query_obs, query_act), loaded.predict(query_obs, query_act)
    for field in ("mean", "aleatoric_var", "epistemic_var"):
        assert torch.equal(getattr(first, field), getattr(second, field)), field


def test_invalid_construction_and_use():
    with pytest.raises(ValueError, match="ridge"):
        LinearGaussian(1, 1, ridge=-1.0)
    with pytest.raises(RuntimeError, match="fit"):
        LinearGaussian(1, 1).predict(torch.zeros(1, 1), torch.zeros(1, 1))
