"""MC dropout and last-layer Laplace models: the member interface, persistence, where their
epistemic variance grows, and the settings they refuse."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.agents.mbpo import MBPO, MBPOConfig
from forethought.agents.sac import SACConfig
from forethought.cli import main
from forethought.evaluation.calibration import disagreement_shift
from forethought.models import DynamicsModel, LastLayerLaplaceDynamics, MCDropoutDynamics, ModelConfig, make_model
from forethought.models.config import MODEL_KINDS, TrainConfig, build_model
from forethought.planning.rollout import TrajectoryEvaluator

SMALL = dict(hidden_size=32, hidden_layers=2, mc_samples=6, max_epochs=20, patience=5)
KINDS = [("dropout", {"dropout_rate": 0.2}), ("laplace", {"prior_precision": 1.0})]


def toy_data(n: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 1-D system on obs, action in [-1, 1]: ``next = obs + 0.3 sin(3 obs) + 0.2 action + noise``."""
    g = torch.Generator().manual_seed(seed)
    obs, act = torch.rand(n, 1, generator=g) * 2 - 1, torch.rand(n, 1, generator=g) * 2 - 1
    return obs, act, obs + 0.3 * torch.sin(3 * obs) + 0.2 * act + 0.02 * torch.randn(n, 1, generator=g)


def fitted(kind: str, options: dict, **overrides) -> DynamicsModel:
    model = make_model(kind, 1, 1, **{**SMALL, **options, **overrides})
    model.fit(*toy_data(), generator=torch.Generator().manual_seed(0))
    return model


@pytest.mark.parametrize("kind, options", KINDS)
def test_members_predictors_and_predict_agree(kind, options):
    model = fitted(kind, options)
    obs, act = torch.linspace(-1, 1, 7)[:, None], torch.zeros(7, 1)
    means, variances = model.predict_members(obs, act)
    assert means.shape == variances.shape == (6, 7, 1) and model.ensemble_size == 6 and model.elites == list(range(6))
    assert (variances > 0).all() and (means.std(dim=0) > 0).all()  # the members differ
    block_obs, block_act = obs.expand(6, 7, 1), act.expand(6, 7, 1)
    for predictor in (model.member_predictor(), model.frozen_member_predictor("float32")):
        m, s = predictor(block_obs, block_act)
        assert predictor.members == list(range(6)) and predictor.probabilistic
        torch.testing.assert_close(m, means)
        torch.testing.assert_close(s, variances.sqrt())
    # the frozen members in bfloat16: 8-bit mantissas, within a few percent of a one-step change
    m, s = model.frozen_member_predictor("bfloat16")(block_obs, block_act)
    assert ((m - means).abs() / model.delta_scale()).max() < 0.05
    assert model.frozen_member_predictor("float32") is model.frozen_member_predictor(torch.float32)  # built once
    # member t reads block t
    shifted = model.predict_members(block_obs + torch.arange(6.0)[:, None, None] * 0.1, block_act)[0]
    torch.testing.assert_close(shifted[3], model.predict_members(obs + 0.3, act)[0][3])
    pred = model.predict(obs, act)
    assert pred.mean.shape == pred.aleatoric_var.shape == pred.epistemic_var.shape == (7, 1)
    if kind == "dropout":  # predict is the statistics of the passes
        torch.testing.assert_close(pred.mean, means.mean(dim=0))
        torch.testing.assert_close(pred.aleatoric_var, variances.mean(dim=0))
        torch.testing.assert_close(pred.epistemic_var, means.var(dim=0, unbiased=False))
    else:  # predict is the exact posterior; the shared head's noise is every member's
        torch.testing.assert_close(pred.aleatoric_var, variances[0])
        assert (pred.epistemic_var > 0).all()


def test_laplace_members_are_draws_from_the_posterior_predict_gives():
    model = fitted("laplace", {}, mc_samples=4000)
    obs, act = torch.tensor([[-0.5], [0.0], [0.9], [2.5]]), torch.zeros(4, 1)
    means, _ = model.predict_members(obs, act)
    pred = model.predict(obs, act)
    spread = pred.epistemic_var.sqrt()
    # 4000 draws: the sample mean is within 4 standard errors, the sample variance within 10 %
    assert ((means.mean(dim=0) - pred.mean).abs() < 4 * spread / 4000 ** 0.5).all()
    ratio = means.var(dim=0) / pred.epistemic_var
    assert ((ratio > 0.9) & (ratio < 1.1)).all()


@pytest.mark.parametrize("kind, options", KINDS)
def test_save_and_load_give_identical_predictions(kind, options, tmp_path):
    model = fitted(kind, options)
    model.save(tmp_path / "model")
    loaded = DynamicsModel.load(tmp_path / "model")
    assert type(loaded) is type(model) and loaded.ensemble_size == model.ensemble_size
    obs, act = torch.linspace(-2, 2, 9)[:, None], torch.linspace(1, -1, 9)[:, None]
    for a, b in zip(model.predict_members(obs, act), loaded.predict_members(obs, act)):
        assert torch.equal(a, b)
    first, second = model.predict(obs, act), loaded.predict(obs, act)
    for field in ("mean", "aleatoric_var", "epistemic_var"):
        assert torch.equal(getattr(first, field), getattr(second, field))
    draws = [m.sample(obs, act, torch.Generator().manual_seed(3)) for m in (model, loaded)]
    assert torch.equal(*draws)


@pytest.mark.parametrize("kind, options, least_ratio", [("dropout", {"dropout_rate": 0.1}, 2.0),
                                                        ("laplace", {}, 10.0)])
def test_epistemic_variance_grows_away_from_the_data(kind, options, least_ratio):
    model = fitted(kind, options, mc_samples=30, max_epochs=200, patience=20)
    near = torch.linspace(-0.9, 0.9, 50)[:, None]
    far = torch.linspace(3.0, 4.0, 50)[:, None]
    with torch.no_grad():
        shift = disagreement_shift(model, near, torch.zeros(50, 1), far, torch.zeros(50, 1))
    assert shift["ratio"] > least_ratio, shift


def test_dropout_rate_zero_gives_zero_epistemic_variance_exactly():
    model = fitted("dropout", {"dropout_rate": 0.0})
    obs, act = torch.linspace(-3, 3, 11)[:, None], torch.zeros(11, 1)
    pred = model.predict(obs, act)
    assert torch.equal(pred.epistemic_var, torch.zeros(11, 1))
    means, _ = model.member_predictor()(obs.expand(6, 11, 1), act.expand(6, 11, 1))
    assert torch.equal(means, means[:1].expand_as(means))


def test_dropout_masks_are_drawn_at_each_fit_and_fits_repeat_exactly():
    data = toy_data()
    first, second = (make_model("dropout", 1, 1, **SMALL) for _ in range(2))
    for model in (first, second):
        model.fit(*data, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first.masks, second.masks) and first.masks.shape == (2, 6, 1, 32)
    kept = first.masks[first.masks > 0]
    rate = ModelConfig.dropout_rate
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - rate)))  # inverted dropout: kept units scaled up
    assert abs(1 - kept.numel() / first.masks.numel() - rate) < 0.05  # 384 units, each dropped with p = rate
    masks, frozen = first.masks.clone(), first.frozen_member_predictor()
    first.fit(*data, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(first.masks, masks)
    obs, act = torch.zeros(6, 3, 1), torch.zeros(6, 3, 1)
    assert first.frozen_member_predictor() is not frozen  # the new masks, not a stale snapshot
    torch.testing.assert_close(first.frozen_member_predictor()(obs, act)[0], first.predict_members(obs, act)[0])


@pytest.mark.parametrize("kind", ["dropout", "laplace"])
@pytest.mark.parametrize("propagation", ["ts1", "tsinf", "expectation", "all-members"])
def test_planners_roll_out_the_members(kind, propagation):
    model = fitted(kind, dict(KINDS)[kind])
    evaluator = TrajectoryEvaluator(model, lambda o, a, n: -n.pow(2).sum(-1), None, particles=6,
                                    propagation=propagation, generator=torch.Generator().manual_seed(0),
                                    risk_penalty=0.5)
    actions = torch.stack([torch.full((5, 1), -1.0), torch.full((5, 1), 1.0)])
    evaluation = evaluator.evaluate(torch.tensor([0.5]), actions)
    assert evaluation.score.shape == (2,) and torch.isfinite(evaluation.score).all()
    assert (evaluation.disagreement > 0).all()
    # driving towards 0 (action -1 from 0.5) keeps the state nearer 0: a better return
    assert evaluation.mean_return[0] > evaluation.mean_return[1]


def test_build_model_passes_the_config():
    config = ModelConfig(kind="dropout", dropout_rate=0.3, mc_samples=4, hidden_size=16, hidden_layers=1)
    model = build_model(config, TrainConfig(max_epochs=3), 3, 2)
    assert isinstance(model, MCDropoutDynamics)
    assert (model.dropout_rate, model.mc_samples, model.hidden_size, model.train_config.max_epochs) == (0.3, 4, 16, 3)
    laplace = build_model(ModelConfig(kind="laplace", prior_precision=2.5, mc_samples=3), TrainConfig(), 3, 2)
    assert isinstance(laplace, LastLayerLaplaceDynamics) and (laplace.prior_precision, laplace.mc_samples) == (2.5, 3)
    assert {"dropout", "laplace"} <= set(MODEL_KINDS)


@pytest.mark.parametrize("key, value, message", [
    ("dropout_rate", 1.0, "model.dropout_rate must be a number in [0, 1), got 1.0"),
    ("dropout_rate", -0.1, "model.dropout_rate must be a number in [0, 1), got -0.1"),
    ("mc_samples", 1, "model.mc_samples must be an integer >= 2, got 1"),
    ("prior_precision", 0.0, "model.prior_precision must be a finite number > 0, got 0.0"),
])
def test_config_refuses_bad_settings(key, value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)").replace("(", r"\(")):
        ModelConfig(kind="dropout", **{key: value})


def test_models_refuse_bad_settings():
    with pytest.raises(ValueError, match=r"dropout_rate must be a number in \[0, 1\)"):
        MCDropoutDynamics(2, 1, dropout_rate=1.5)
    with pytest.raises(ValueError, match="mc_samples must be an integer >= 2"):
        LastLayerLaplaceDynamics(2, 1, mc_samples=1)
    with pytest.raises(ValueError, match="prior_precision must be a finite number > 0"):
        LastLayerLaplaceDynamics(2, 1, prior_precision=-1.0)


@pytest.mark.parametrize("args, message", [
    (["run", "pets", "--env", "linear", "agent.model.kind=dropout", "agent.model.dropout_rate=1.5"],
     "model.dropout_rate must be a number in [0, 1), got 1.5"),
    (["run", "mbpo", "--env", "linear", "agent.model.kind=dropout", "agent.model.dropout_rate=-0.5"],
     "model.dropout_rate must be a number in [0, 1), got -0.5"),
    (["fit-model", "--model", "laplace", "model.prior_precision=0"], "model.prior_precision must be a finite number"),
    (["compare-models", "--models", "dropout,laplace", "model.mc_samples=1"], "model.mc_samples must be an integer"),
])
def test_cli_refuses_bad_settings_before_writing_anything(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main([*args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_compare_models_scores_the_new_kinds_with_the_ensembles(tmp_path):
    out = tmp_path / "compare"
    assert main(["compare-models", "--env", "pendulum-swingup", "--models", "pe,dropout,laplace", "--steps", "400",
                 "--out", str(out), "--quiet", "eval_steps=200", "model.hidden_size=32", "model.hidden_layers=2",
                 "model.ensemble_size=3", "model.mc_samples=5", "train.max_epochs=10", "horizon=5"]) == 0
    models = json.loads((out / "summary.json").read_text())["models"]
    assert list(models) == ["pe", "dropout", "laplace", "constant"]
    for kind in ("pe", "dropout", "laplace"):
        row = models[kind]
        assert row["one_step_mse"] < models["constant"]["one_step_mse"]
        assert 0 < row["coverage_1sigma"] <= row["coverage_2sigma"] <= 1
        assert -1 <= row["epistemic_var_sq_error_spearman"] <= 1 and -1 <= row["disagreement_error_spearman"] <= 1
        assert len(row["rollout_mse_by_horizon"]) == 5
    assert "| dropout |" in (out / "comparison.md").read_text()


@pytest.mark.parametrize("kind", ["dropout", "laplace"])
def test_mbpo_imagines_with_the_sampled_members(kind):
    config = MBPOConfig(sac=SACConfig(hidden_size=16), rollout_starts=40, min_rollout_length=3, max_rollout_length=3,
                        model=ModelConfig(kind=kind, hidden_size=16, hidden_layers=1, mc_samples=4),
                        train=TrainConfig(max_epochs=3))
    agent = MBPO(gym.make("Pendulum-v1"), config, seed=0)
    agent.sac.learn(steps=100)
    agent._fit_model()
    agent._rollouts(agent.sac.env_steps)
    assert agent.log[-1]["rows"] == 120 and len(agent.model_buffer) == 120  # Pendulum never terminates
    imagined = agent.model_buffer.arrays()
    assert np.isfinite(imagined["next_obs"]).all() and not np.allclose(imagined["next_obs"], imagined["obs"])


def test_ablate_takes_the_new_kinds_and_keeps_the_paper_grid_by_default():
    from forethought.agents import PETSConfig
    from forethought.experiments.ablate import AblateConfig, variant_config

    assert AblateConfig().models == ["d", "p", "de", "pe"]
    assert AblateConfig(models=["pe", "dropout", "laplace"]).models == ["pe", "dropout", "laplace"]
    assert variant_config(PETSConfig(), "laplace", "tsinf").model.kind == "laplace"
    with pytest.raises(ValueError, match="models must be a non-empty list drawn from"):
        AblateConfig(models=["gp"])
