"""Neural dynamics models: shapes, what they learn, ensembles, persistence and training safeguards."""

import pytest
import torch

import forethought.models.training as training
from forethought.data.buffer import ReplayBuffer
from forethought.models import DynamicsModel
from forethought.models.config import TrainConfig
from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork
from forethought.models.neural import (DeterministicEnsemble, DeterministicMLP, MLPDynamics, ProbabilisticEnsemble,
                                       ProbabilisticMLP, make_model)

SMALL = dict(hidden_size=32, hidden_layers=2)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_system(n: int, seed: int, obs_dim: int = 1, act_dim: int = 1):
    """s' = s + 0.5 sin(3 s) + 0.3 a (row-wise sums for several dims), inputs uniform on [-1, 1]."""
    g = gen(seed)
    obs = torch.rand(n, obs_dim, generator=g) * 2 - 1
    act = torch.rand(n, act_dim, generator=g) * 2 - 1
    return obs, act, truth(obs, act)


def truth(obs, act):
    return obs + 0.5 * torch.sin(3 * obs) + 0.3 * act.sum(dim=-1, keepdim=True)


@pytest.fixture(scope="module")
def fitted_pe():
    """A small 3-member probabilistic ensemble on a 3-D obs, 2-D action system."""
    obs, act, nxt = smooth_system(400, 0, obs_dim=3, act_dim=2)
    model = ProbabilisticEnsemble(3, 2, ensemble_size=3, max_epochs=5, **SMALL)
    model.fit(obs, act, nxt, generator=gen(0))
    return model


# ---------------------------------------------------------------- construction
def test_factory_kinds_and_named_classes():
    expectations = {"d": (DeterministicMLP, False, 1), "p": (ProbabilisticMLP, True, 1),
                    "de": (DeterministicEnsemble, False, 5), "pe": (ProbabilisticEnsemble, True, 5)}
    for kind, (cls, probabilistic, k) in expectations.items():
        model = make_model(kind, 3, 2, **SMALL)
        assert type(model) is cls and model.probabilistic is probabilistic and model.ensemble_size == k
    assert make_model("pe", 3, 2, ensemble_size=7).elite_count == 5  # default min(K, 5)
    assert make_model("de", 3, 2).elite_count == 5
    assert make_model("pe", 3, 2, ensemble_size=7, elite_count=6, max_epochs=3).train_config.max_epochs == 3
    with pytest.raises(ValueError, match="unknown model kind 'x'"):
        make_model("x", 3, 2)
    with pytest.raises(TypeError, match="unknown option"):
        make_model("pe", 3, 2, learning_rat=1e-3)
    with pytest.raises(ValueError, match="elite_count"):
        make_model("pe", 3, 2, ensemble_size=3, elite_count=4)
    with pytest.raises(ValueError, match="ensemble_size"):
        MLPDynamics(3, 2, probabilistic=True, ensemble_size=0)


def test_factory_builds_the_linear_model_when_it_exists():
    linear = pytest.importorskip("forethought.models.linear")
    assert isinstance(make_model("linear", 3, 2), linear.LinearGaussian)


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("batch", [1, 1000])
def test_shape_contracts(fitted_pe, batch):
    obs, act = torch.zeros(batch, 3), torch.zeros(batch, 2)
    pred = fitted_pe.predict(obs, act)
    for field in (pred.mean, pred.aleatoric_var, pred.epistemic_var):
        assert field.shape == (batch, 3)
    assert fitted_pe.predict(torch.zeros(4, batch, 3), torch.zeros(4, batch, 2)).mean.shape == (4, batch, 3)
    means, variances = fitted_pe.predict_members(obs, act)
    assert means.shape == variances.shape == (3, batch, 3)
    means, variances = fitted_pe.predict_members(torch.zeros(3, batch, 3), torch.zeros(3, batch, 2))
    assert means.shape == variances.shape == (3, batch, 3)
    assert fitted_pe.sample(torch.zeros(2, batch, 3), torch.zeros(2, batch, 2), gen(0)).shape == (2, batch, 3)


def test_single_deterministic_model_has_no_variances():
    obs, act, nxt = smooth_system(100, 1)
    model = DeterministicMLP(1, 1, max_epochs=2, **SMALL)
    model.fit(obs, act, nxt)
    pred = model.predict(obs[:5], act[:5])
    assert pred.aleatoric_var is None and pred.epistemic_var is None and pred.variance is None
    means, variances = model.predict_members(obs[:5], act[:5])
    assert means.shape == (1, 5, 1) and variances is None
    assert torch.equal(model.sample(obs[:5], act[:5], gen(0)), pred.mean)


def test_predict_members_with_member_blocks_matches_each_member_on_its_own_rows(fitted_pe):
    obs, act, _ = smooth_system(3 * 8, 5, obs_dim=3, act_dim=2)
    obs, act = obs.reshape(3, 8, 3), act.reshape(3, 8, 2)
    means, variances = fitted_pe.predict_members(obs, act)
    for k in range(3):
        shared_means, shared_vars = fitted_pe.predict_members(obs[k], act[k])
        torch.testing.assert_close(means[k], shared_means[k])
        torch.testing.assert_close(variances[k], shared_vars[k])


# ---------------------------------------------------------------- ensemble semantics
def test_prediction_combines_elite_members():
    obs, act, nxt = smooth_system(300, 2)
    model = ProbabilisticEnsemble(1, 1, ensemble_size=7, max_epochs=3, **SMALL)
    report = model.fit(obs, act, nxt, generator=gen(2))
    assert len(model.elites) == 5 and report.elites == model.elites
    ranked = sorted(range(7), key=lambda k: report.member_val_loss[k])
    assert set(model.elites) == set(ranked[:5])
    means, variances = model.predict_members(obs[:20], act[:20])
    pred = model.predict(obs[:20], act[:20])
    elite = torch.tensor(model.elites)
    torch.testing.assert_close(pred.mean, means[elite].mean(0))
    torch.testing.assert_close(pred.aleatoric_var, variances[elite].mean(0))
    torch.testing.assert_close(pred.epistemic_var, means[elite].var(0, unbiased=False))


def test_sample_draws_from_a_random_elite_member_per_row():
    obs, act, nxt = smooth_system(300, 3)
    model = DeterministicEnsemble(1, 1, ensemble_size=4, elite_count=2, max_epochs=3, **SMALL)
    model.fit(obs, act, nxt, generator=gen(3))
    x, a = torch.full((400, 1), 2.5), torch.zeros(400, 1)  # off-distribution: members disagree
    means, _ = model.predict_members(x, a)  # [4, 400, 1]
    draws = model.sample(x, a, gen(7))
    assert torch.equal(draws, model.sample(x, a, gen(7)))
    assert means[model.elites[0], 0] != means[model.elites[1], 0]
    same = (draws[None] == means).all(dim=-1)  # [4, 400]: which member each row came from
    assert (same.sum(dim=0) == 1).all()
    assert set(same.float().argmax(dim=0).tolist()) == set(model.elites)


def test_probabilistic_sample_spread_matches_predicted_variance(fitted_pe):
    x, a = torch.zeros(4000, 3), torch.zeros(4000, 2)
    draws = fitted_pe.sample(x, a, gen(11))
    pred = fitted_pe.predict(x[:1], a[:1])
    torch.testing.assert_close(draws.var(0), pred.variance[0], rtol=0.15, atol=1e-4)
    torch.testing.assert_close(draws.mean(0), pred.mean[0], rtol=0, atol=4 * float(pred.variance.max().sqrt()) / 60)


# ---------------------------------------------------------------- what the models learn
def test_deterministic_mlp_fits_a_nonlinear_function():
    obs, act, nxt = smooth_system(1000, 4)
    model = DeterministicMLP(1, 1, hidden_size=64, hidden_layers=2, max_epochs=40, batch_size=64, lr=3e-3)
    model.fit(obs, act, nxt, generator=gen(4))
    test_obs, test_act, test_next = smooth_system(500, 40)
    mse = float((model.predict(test_obs, test_act).mean - test_next).pow(2).mean())
    assert mse < 2e-3  # target variance is about 0.4


def test_probabilistic_mlp_learns_heteroscedastic_noise():
    """s' = s + a + noise with std 0.1 + 0.15 (s + 1): from 0.1 at s = -1 to 0.4 at s = 1."""
    g = gen(0)
    n = 3000
    obs, act = torch.rand(n, 1, generator=g) * 2 - 1, torch.rand(n, 1, generator=g) * 2 - 1

    def true_std(s):
        return 0.1 + 0.15 * (s + 1)

    nxt = obs + act + true_std(obs) * torch.randn(n, 1, generator=g)
    model = ProbabilisticMLP(1, 1, hidden_size=64, hidden_layers=2, max_epochs=40, batch_size=100,
                             lr=2e-3, val_fraction=0.2, patience=40)
    model.fit(obs, act, nxt, generator=gen(0))
    query = torch.tensor([[-0.8], [-0.4], [0.0], [0.4], [0.8]])
    learned = model.predict(query, torch.zeros(5, 1)).aleatoric_var.sqrt()
    ratio = learned / true_std(query)
    assert ((ratio > 0.75) & (ratio < 1.25)).all(), ratio  # within 25% of the true std everywhere
    assert learned[-1] > 2.2 * learned[0]  # the true ratio is 0.37 / 0.13 = 2.85


def test_ensemble_disagrees_more_off_distribution():
    obs, act, nxt = smooth_system(1000, 5)
    model = ProbabilisticEnsemble(1, 1, max_epochs=30, batch_size=64, lr=3e-3, **SMALL)
    model.fit(obs, act, nxt, generator=gen(5))
    on = torch.linspace(-0.9, 0.9, 50)[:, None]
    off = torch.linspace(3.0, 5.0, 50)[:, None]
    epistemic_on = model.predict(on, torch.zeros_like(on)).epistemic_var.sqrt().mean()
    epistemic_off = model.predict(off, torch.zeros_like(off)).epistemic_var.sqrt().mean()
    assert epistemic_off > 10 * epistemic_on


# ---------------------------------------------------------------- determinism, persistence, refits
def test_same_seed_gives_identical_weights_and_a_different_seed_does_not():
    obs, act, nxt = smooth_system(200, 6)

    def weights(seed):
        model = ProbabilisticEnsemble(1, 1, ensemble_size=2, max_epochs=3, **SMALL)
        report = model.fit(obs, act, nxt, generator=gen(seed))
        return model.network.state_dict(), report

    (first, report_a), (second, report_b), (other, _) = weights(1), weights(1), weights(2)
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert report_a.val_loss == report_b.val_loss
    assert not torch.equal(first["body.weights.0"], other["body.weights.0"])


def test_save_load_round_trip_is_bit_identical(fitted_pe, tmp_path):
    fitted_pe.save(tmp_path / "pe")
    loaded = DynamicsModel.load(tmp_path / "pe")
    assert type(loaded) is ProbabilisticEnsemble and loaded.elites == fitted_pe.elites
    assert ProbabilisticEnsemble.load(tmp_path / "pe").ensemble_size == 3
    obs, act, _ = smooth_system(64, 8, obs_dim=3, act_dim=2)
    before, after = fitted_pe.predict(obs, act), loaded.predict(obs, act)
    for a, b in ((before.mean, after.mean), (before.aleatoric_var, after.aleatoric_var),
                 (before.epistemic_var, after.epistemic_var)):
        assert torch.equal(a, b)
    assert torch.equal(fitted_pe.sample(obs, act, gen(1)), loaded.sample(obs, act, gen(1)))
    assert loaded.train_config == fitted_pe.train_config


def test_deterministic_model_round_trips_and_unfitted_state_is_kept(tmp_path):
    obs, act, nxt = smooth_system(100, 9)
    model = DeterministicMLP(1, 1, max_epochs=2, **SMALL)
    model.save(tmp_path / "unfitted")
    with pytest.raises(RuntimeError, match="not been fitted"):
        DynamicsModel.load(tmp_path / "unfitted").predict(obs, act)
    model.fit(obs, act, nxt)
    model.save(tmp_path / "d")
    loaded = DynamicsModel.load(tmp_path / "d")
    assert type(loaded) is DeterministicMLP
    assert torch.equal(loaded.predict(obs, act).mean, model.predict(obs, act).mean)


def test_refit_warm_starts_by_default_and_reinitialises_when_asked():
    first, second = smooth_system(300, 10), smooth_system(600, 11)
    options = dict(max_epochs=3, **SMALL)

    warm = DeterministicMLP(1, 1, **options)
    warm.fit(*first, generator=gen(0))
    warm_report = warm.fit(*second, generator=gen(1))
    fresh = DeterministicMLP(1, 1, **options)
    fresh_report = fresh.fit(*second, generator=gen(1))
    assert warm_report.train_loss[0] < fresh_report.train_loss[0]  # continued from trained weights

    cold = DeterministicMLP(1, 1, warm_start=False, **options)
    cold.fit(*first, generator=gen(0))
    cold.fit(*second, generator=gen(1))
    assert all(torch.equal(a, b) for a, b in zip(cold.network.parameters(), fresh.network.parameters()))


def test_fit_accepts_a_replay_buffer_and_reports_progress(capsys):
    obs, act, nxt = smooth_system(200, 12)
    buffer = ReplayBuffer(1, 1)
    buffer.add_batch(obs.numpy(), act.numpy(), torch.zeros(200).numpy(), nxt.numpy())
    model = DeterministicEnsemble(1, 1, ensemble_size=2, max_epochs=2, progress=True, **SMALL)
    report = model.fit(buffer)
    assert report.epochs == 2 and len(report.train_loss) == len(report.val_loss) == 2
    assert "val" in capsys.readouterr().out


# ---------------------------------------------------------------- training safeguards
def test_early_stopping_restores_the_best_weights():
    obs, act, nxt = smooth_system(60, 13)
    nxt = nxt + 0.3 * torch.randn(60, 1, generator=gen(13))  # few noisy rows: the network overfits
    model = DeterministicMLP(1, 1, hidden_size=128, hidden_layers=2, max_epochs=300, patience=8,
                             batch_size=16, lr=1e-2, val_fraction=0.3)
    report = model.fit(obs, act, nxt, generator=gen(13))
    assert report.stopped_early and report.epochs < 300
    assert report.best_epoch == report.epochs - 1 - 8
    assert report.val_loss[-1] > min(report.val_loss)
    # the loss of the weights actually kept, measured afresh, is the minimum of the recorded curve
    assert report.member_val_loss[0] == pytest.approx(min(report.val_loss), rel=1e-6)


def test_exploding_training_is_detected_and_leaves_the_model_unfitted():
    obs, act, nxt = smooth_system(200, 14)
    model = ProbabilisticMLP(1, 1, max_epochs=5, lr=1e6, grad_clip=None, **SMALL)
    report = model.fit(obs, act, nxt, generator=gen(14))
    assert report.nonfinite and "non-finite" in report.message and report.epochs == 0
    assert report.nonfinite_epoch == 0 and report.nonfinite_members == [0] and not report.produced_model
    assert not model.fitted  # no epoch produced a finite model
    with pytest.raises(RuntimeError, match="not been fitted"):
        model.predict(obs, act)
    initial = EnsembleDynamicsNetwork(2, 1, probabilistic=True, **SMALL)
    initial.reset_parameters(gen(14))  # fit draws the initial weights first from its generator
    kept = model.network.state_dict()
    assert all(torch.equal(kept[name], t) for name, t in initial.state_dict().items())


def test_a_refit_that_diverges_at_once_keeps_the_fitted_model_and_its_normalisers():
    obs, act, nxt = smooth_system(200, 14)
    model = ProbabilisticMLP(1, 1, max_epochs=3, **SMALL)
    model.fit(obs, act, nxt, generator=gen(14))
    before = model.predict(obs, act).mean
    model.train_config = TrainConfig(max_epochs=3, lr=1e6, grad_clip=None)
    report = model.fit(obs * 3.0, act, nxt * 3.0, generator=gen(15))  # other data: other normalisers
    assert report.nonfinite and report.nonfinite_epoch == 0 and model.fitted
    assert torch.equal(model.predict(obs, act).mean, before)


def test_nonfinite_loss_mid_training_restores_the_best_epoch(monkeypatch):
    obs, act, nxt = smooth_system(200, 15)
    options = dict(max_epochs=6, patience=50, batch_size=60, **SMALL)  # 180 training rows: 3 batches
    real_loss = training.member_training_loss
    calls = []

    def poisoned(*args):
        calls.append(1)
        loss = real_loss(*args)
        return loss * float("nan") if len(calls) > 3 * 4 + 1 else loss  # epoch 4, second batch

    monkeypatch.setattr(training, "member_training_loss", poisoned)
    model = DeterministicMLP(1, 1, **options)
    report = model.fit(obs, act, nxt, generator=gen(15))
    monkeypatch.undo()
    assert report.nonfinite and "non-finite" in report.message and "epoch 4" in report.message
    assert report.epochs == 4 and len(report.val_loss) == 4 and report.nonfinite_epoch == 4
    assert report.nonfinite_members == [0] and report.produced_model and model.fitted
    assert report.member_val_loss[0] == pytest.approx(report.val_loss[report.best_epoch], rel=1e-6)
    # identical to a clean run that stopped after the best epoch
    clean = DeterministicMLP(1, 1, **{**options, "max_epochs": report.best_epoch + 1})
    clean.fit(obs, act, nxt, generator=gen(15))
    assert all(torch.equal(a, b) for a, b in zip(model.network.parameters(), clean.network.parameters()))
    assert torch.isfinite(model.predict(obs, act).mean).all()


# ---------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors(fitted_pe):
    obs, act, nxt = smooth_system(50, 16)
    model = DeterministicMLP(1, 1, max_epochs=1, **SMALL)
    with pytest.raises(RuntimeError, match="not been fitted"):
        model.predict(obs, act)
    bad = nxt.clone()
    bad[7, 0] = float("nan")
    with pytest.raises(ValueError, match="'next_obs' has a non-finite value at row 7"):
        model.fit(obs, act, bad)
    with pytest.raises(ValueError, match=r"'obs' has shape \(50, 2\)"):
        model.fit(torch.zeros(50, 2), act, nxt)
    with pytest.raises(ValueError, match="at least 2 transitions"):
        model.fit(obs[:1], act[:1], nxt[:1])
    with pytest.raises(ValueError, match=r"'action' has shape \(4, 3\)"):
        fitted_pe.predict(torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="batch shape"):
        fitted_pe.predict(torch.zeros(4, 3), torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"predict_members expects obs of shape"):
        fitted_pe.predict_members(torch.zeros(2, 4, 3), torch.zeros(2, 4, 2))


def test_predictions_are_differentiable_with_respect_to_actions(fitted_pe):
    obs = torch.zeros(4, 3)
    action = torch.zeros(4, 2, requires_grad=True)
    fitted_pe.predict(obs, action).mean.sum().backward()
    assert action.grad is not None and action.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in fitted_pe.network.parameters())  # weights frozen outside fit


def test_min_epoch_batches_repeats_passes_over_a_small_dataset(monkeypatch):
    obs, act, nxt = smooth_system(40, 16)  # 36 training rows: one batch of 32 rows and one of 4 per pass
    steps = []
    real_step = training.train_step
    monkeypatch.setattr(training, "train_step", lambda *a: (steps.append(a[2].shape[1]), real_step(*a))[1])
    options = dict(max_epochs=3, patience=50, batch_size=32, **SMALL)
    DeterministicMLP(1, 1, **options).fit(obs, act, nxt, generator=gen(16))
    assert steps == [32, 4] * 3
    steps.clear()
    DeterministicMLP(1, 1, min_epoch_batches=5, **options).fit(obs, act, nxt, generator=gen(16))
    assert steps == [32] * 5 * 3  # one pass would make 2 batches: an epoch is 5 full batches instead
    monkeypatch.undo()
    # the extra steps are what a tiny dataset needs: the fit is much better after the same epochs
    short = DeterministicMLP(1, 1, max_epochs=20, patience=50, batch_size=32, **SMALL)
    long = DeterministicMLP(1, 1, max_epochs=20, patience=50, batch_size=32, min_epoch_batches=20, **SMALL)
    test_obs, test_act, test_next = smooth_system(200, 17)
    errors = []
    for model in (short, long):
        model.fit(obs, act, nxt, generator=gen(16))
        errors.append(float((model.predict(test_obs, test_act).mean - test_next).pow(2).mean()))
    assert errors[1] < 0.3 * errors[0]
