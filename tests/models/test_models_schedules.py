"""Learning-rate schedules of model training: warm-up + cosine within a fit, reduce-on-plateau
across fits (kept in the model and its checkpoint), the constant default, bad settings."""

import math

import pytest
import torch

import forethought.models.training as training
from forethought.models import DynamicsModel, ProbabilisticEnsemble, TrainConfig, make_model
from forethought.models.schedules import PlateauScale, schedule_factor


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def transitions(n: int = 100, seed: int = 0):
    g = gen(seed)
    obs, action = torch.randn(n, 2, generator=g), torch.rand(n, 1, generator=g) * 2 - 1
    return obs, action, obs + 0.1 * action


@pytest.fixture
def step_lrs(monkeypatch):
    """The learning rate of every Adam step taken by train_ensemble, in order."""
    seen: list[float] = []
    original = training.train_step

    def recording(network, optimizer, x, y, loss, grad_clip):
        seen.append(optimizer.param_groups[0]["lr"])
        assert all(group["lr"] == seen[-1] for group in optimizer.param_groups)
        return original(network, optimizer, x, y, loss, grad_clip)

    monkeypatch.setattr(training, "train_step", recording)
    return seen


def test_warmup_is_linear_and_the_cosine_runs_from_one_to_the_floor():
    assert [schedule_factor(s, 4, 20, 0.1) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert schedule_factor(4, 4, 20, 0.1) == 1.0
    assert schedule_factor(12, 4, 20, 0.1) == pytest.approx(0.55, abs=1e-15)  # midpoint: (1 + m) / 2
    assert schedule_factor(20, 4, 20, 0.1) == pytest.approx(0.1, abs=1e-15)
    assert schedule_factor(35, 4, 20, 0.1) == pytest.approx(0.1, abs=1e-15)  # flat after the end
    assert schedule_factor(0, 0, 10, 0.0) == 1.0 and schedule_factor(10, 0, 10, 0.0) == pytest.approx(0.0, abs=1e-15)


def test_a_fit_follows_warmup_cosine_over_its_possible_steps(step_lrs):
    # no held-out split: 100 rows, 25 a minibatch, 3 epochs -> 12 steps, warm-up 2, floor 0.1
    train = TrainConfig(lr_schedule="warmup_cosine", warmup_steps=2, min_lr_fraction=0.1, max_epochs=3,
                        batch_size=25, early_stopping=False)
    model = ProbabilisticEnsemble(2, 1, ensemble_size=2, hidden_size=8, train=train)
    model.fit(*transitions(), generator=gen(0))
    expected = [1e-3 * schedule_factor(s, 2, 12, 0.1) for s in range(12)]
    assert step_lrs == pytest.approx(expected, rel=1e-12)
    assert step_lrs[:3] == pytest.approx([5e-4, 1e-3, 1e-3], rel=1e-12)
    assert step_lrs[7] == pytest.approx(0.55e-3, rel=1e-12)  # halfway through the cosine
    model.fit(*transitions(seed=1), generator=gen(1))  # every fit runs the schedule afresh
    assert step_lrs[12:] == pytest.approx(expected, rel=1e-12)


def test_the_default_is_the_constant_rate(step_lrs):
    assert TrainConfig().lr_schedule == "constant"
    ProbabilisticEnsemble(2, 1, ensemble_size=2, hidden_size=8, max_epochs=3).fit(*transitions(), generator=gen(0))
    assert len(step_lrs) == 3 and set(step_lrs) == {1e-3}


def test_plateau_scale_reduces_after_patience_fits_without_improvement():
    plateau = PlateauScale(factor=0.5, patience=2, min_fraction=0.2)
    scales = [plateau.update(v) for v in (1.0, 0.9, 0.95, 0.95, 0.8, 0.9, math.nan, 0.9, 0.9)]
    assert scales == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2]
    assert (plateau.best, plateau.bad_fits) == (0.8, 0)


def test_a_model_lowers_its_rate_across_fits_and_keeps_it_in_its_checkpoint(step_lrs, tmp_path):
    train = TrainConfig(lr_schedule="plateau", plateau_factor=0.5, plateau_patience=1, max_epochs=2)
    model = ProbabilisticEnsemble(2, 1, ensemble_size=2, hidden_size=8, train=train)
    report = model.fit(*transitions(), generator=gen(0))
    assert model.lr_plateau.best == pytest.approx(sum(report.member_val_loss) / 2, rel=1e-6)
    assert model.lr_plateau.scale == 1.0
    model.lr_plateau.best = 0.0  # no mean squared error beats it: the next fit cannot improve
    model.fit(*transitions(seed=1), generator=gen(1))
    assert model.lr_plateau.scale == 0.5 and set(step_lrs) == {1e-3}
    model.save(tmp_path / "model")
    loaded = DynamicsModel.load(tmp_path / "model")
    assert (loaded.lr_plateau.scale, loaded.lr_plateau.best, loaded.lr_plateau.bad_fits) == (0.5, 0.0, 0)
    del step_lrs[:]
    loaded.fit(*transitions(seed=2), generator=gen(2))
    assert set(step_lrs) == {5e-4}
    assert loaded.lr_plateau.scale == 0.25


def test_sampled_member_models_keep_the_plateau_state_too(tmp_path):
    model = make_model("dropout", 2, 1, hidden_size=8, mc_samples=2, lr_schedule="plateau", max_epochs=2)
    model.fit(*transitions(), generator=gen(0))
    model.lr_plateau.best, model.lr_plateau.scale = 0.0, 0.5
    model.save(tmp_path / "model")
    loaded = DynamicsModel.load(tmp_path / "model")
    assert (loaded.lr_plateau.scale, loaded.lr_plateau.best) == (0.5, 0.0)


def test_a_fresh_plateau_state_survives_a_checkpoint(tmp_path):
    model = ProbabilisticEnsemble(2, 1, ensemble_size=2, hidden_size=8)
    model.save(tmp_path / "model")
    loaded = DynamicsModel.load(tmp_path / "model")
    assert (loaded.lr_plateau.scale, loaded.lr_plateau.best, loaded.lr_plateau.bad_fits) == (1.0, math.inf, 0)


@pytest.mark.parametrize("key, value, message", [
    ("lr_schedule", "cosine", "train.lr_schedule must be one of ('constant', 'warmup_cosine', 'plateau'), "
                              "got 'cosine'"),
    ("warmup_steps", -1, "train.warmup_steps must be an integer >= 0, got -1"),
    ("min_lr_fraction", 1.5, "train.min_lr_fraction must be a number in [0, 1], got 1.5"),
    ("plateau_factor", 1.0, "train.plateau_factor must be a number in (0, 1), got 1.0"),
    ("plateau_patience", 0, "train.plateau_patience must be an integer >= 1, got 0"),
])
def test_bad_schedule_settings_are_refused_by_name(key, value, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**{key: value})
    assert str(err.value) == message
