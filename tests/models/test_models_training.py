"""One training config (TrainConfig) and one training loop for every neural model: defaults,
checks, divergence reports."""

import math

import pytest
import torch

import forethought.models.training as training
from forethought.models import ModelConfig, ProbabilisticEnsemble, RewardModel, TerminationClassifier, TrainConfig
from forethought.models.config import train_config


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def transitions(n: int = 200, seed: int = 0):
    g = gen(seed)
    obs, action = torch.randn(n, 2, generator=g), torch.rand(n, 1, generator=g) * 2 - 1
    next_obs = obs + 0.1 * action
    return obs, action, next_obs


def test_defaults_are_what_the_agents_use():
    assert (TrainConfig().max_epochs, TrainConfig().patience, TrainConfig().min_epoch_batches) == (50, 5, 1)
    assert TrainConfig().lr == 1e-3 and TrainConfig().weight_decay == 5e-5
    assert (ModelConfig().kind, ModelConfig().ensemble_size, ModelConfig().hidden_size,
            ModelConfig().hidden_layers) == ("pe", 5, 200, 3)
    model = ProbabilisticEnsemble(2, 1)  # the model classes' sizes and training default to the configs'
    assert model.hidden_layers == 3 and model.hidden_size == 200 and model.ensemble_size == 5
    assert model.train_config == TrainConfig()


@pytest.mark.parametrize("key, value, message", [
    ("max_epochs", 0, "train.max_epochs must be an integer >= 1, got 0"),
    ("patience", 0, "train.patience must be an integer >= 1, got 0"),
    ("batch_size", 2.5, "train.batch_size must be an integer >= 1, got 2.5"),
    ("min_epoch_batches", 0, "train.min_epoch_batches must be an integer >= 1, got 0"),
    ("frozen_layers", -1, "train.frozen_layers must be an integer >= 0, got -1"),
    ("lr", 0.0, "train.lr must be a finite number > 0, got 0.0"),
    ("lr", math.inf, "train.lr must be a finite number > 0, got inf"),
    ("weight_decay", -1e-3, "train.weight_decay must be a finite number >= 0, got -0.001"),
    ("val_fraction", 1.0, r"train.val_fraction must be a number in \(0, 1\), got 1.0"),
    ("grad_clip", 0.0, "train.grad_clip must be None or a finite number > 0, got 0.0"),
    ("bound_penalty", -1.0, "train.bound_penalty must be a finite number >= 0, got -1.0"),
    ("bootstrap", 1, "train.bootstrap must be true or false, got 1"),
])
def test_every_training_setting_is_checked_by_name(key, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{key: value})


@pytest.mark.parametrize("key, value, message", [
    ("kind", "gp", r"model.kind must be one of \('linear', 'd', 'p', 'de', 'pe', 'dropout', 'laplace'.*\), got 'gp'"),
    ("ensemble_size", 0, "model.ensemble_size must be an integer >= 1, got 0"),
    ("hidden_layers", -1, "model.hidden_layers must be an integer >= 0, got -1"),
    ("ridge", -0.5, "model.ridge must be a finite number >= 0, got -0.5"),
])
def test_model_config_values_are_checked_by_name(key, value, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{key: value})


def test_models_take_a_train_config_and_field_overrides():
    base = TrainConfig(max_epochs=7, min_epoch_batches=10)
    assert train_config(base, {"lr": 3e-4}, "X") == TrainConfig(max_epochs=7, min_epoch_batches=10, lr=3e-4)
    model = ProbabilisticEnsemble(2, 1, train=base, patience=2)
    assert model.train_config == TrainConfig(max_epochs=7, min_epoch_batches=10, patience=2)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['learning_rate'\] for ProbabilisticEnsemble"):
        ProbabilisticEnsemble(2, 1, learning_rate=1e-3)


def test_a_diverging_reward_fit_says_where_and_leaves_the_model_unfitted():
    obs, action, next_obs = transitions()
    model = RewardModel(2, 1, hidden_size=16, max_epochs=3, lr=1e8, grad_clip=None)
    report = model.fit(obs, action, next_obs, 100.0 * next_obs[:, 0] ** 3, generator=gen(0))
    assert report.nonfinite and report.nonfinite_epoch == 0 and report.nonfinite_members == [0]
    assert report.epochs == 0 and not report.produced_model and not model.fitted
    assert "diverged" in report.message and "epoch 0" in report.message


def test_the_termination_classifier_trains_through_the_shared_loop(monkeypatch):
    obs, action, next_obs = transitions(300)
    done = next_obs[:, 0] > 1.0
    steps = []
    real_step = training.train_step
    monkeypatch.setattr(training, "train_step", lambda *a: (steps.append(a[4]), real_step(*a))[1])
    classifier = TerminationClassifier(2, 1, hidden_size=16, max_epochs=4, patience=50, batch_size=64)
    report = classifier.fit(obs, action, next_obs, done, generator=gen(0))
    assert report.epochs == 4 and len(steps) == 4 * 5  # 270 training rows: 5 minibatches of 64 per epoch
    assert all(type(loss).__name__ == "BalancedCrossEntropy" for loss in steps)
    assert report.member_val_loss is not None and report.best_epoch == min(range(4), key=report.val_loss.__getitem__)
    # each class carries half the weight, so predicting the base rate everywhere scores log 2
    assert report.val_loss[-1] < math.log(2.0)
