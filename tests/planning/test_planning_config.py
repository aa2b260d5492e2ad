"""PlannerConfig and the typed optimiser settings: defaults defined once, every value checked by
name, overrides from the command line, and the iLQR optimisers' contract."""

import pytest
import torch
from gymnasium.spaces import Box

from forethought.agents import PETSConfig
from forethought.config import ConfigError, load_config
from forethought.models import KnownDynamics, ProbabilisticMLP
from forethought.planning import (CEM, CEMSettings, GradientSettings, ICEMSettings, ILQROptimizer, ILQRSettings,
                                  LQRSettings, MPPISettings, PlannerConfig, RandomSettings, TrajectoryEvaluator,
                                  lqr_from_model, make_optimizer, optimizer_names)

BOX = Box(-1.0, 1.0, (1,))


def test_defaults_are_the_pets_planner():
    config = PlannerConfig()
    assert (config.optimizer, config.horizon, config.particles, config.propagation) == ("icem", 15, 5, "tsinf")
    assert (config.replan_every, config.compute_dtype, config.risk_penalty, config.veto_threshold) == (
        1, "float32", 0.0, None)
    assert config.optimizer_settings() == ICEMSettings(population=100, elites=10, iterations=3)
    assert PETSConfig().planner == config
    evaluator = TrajectoryEvaluator(KnownDynamics(lambda o, a: o, 1, 1), lambda o, a, n: n[:, 0])
    assert (evaluator.particles, evaluator.propagation) == (config.particles, config.propagation)


@pytest.mark.parametrize("values, message", [
    ({"horizon": 0}, "planner.horizon must be an integer >= 1 or 'auto', got 0"),
    ({"horizon": "long"}, "planner.horizon must be an integer >= 1 or 'auto', got 'long'"),
    ({"horizon": "auto", "horizon_bounds": (8, 4)}, r"planner.horizon_bounds must be \[low, high\] with integers 1 <= low <= high"),
    ({"horizon": "auto", "horizon_threshold": 0}, "planner.horizon_threshold must be a finite number > 0"),
    ({"horizon": "auto", "replan_every": 6}, r"planner.replan_every must be an integer between 1 and the \(shortest\) horizon 5, got 6"),
    ({"particles": 0}, "planner.particles must be an integer >= 1, got 0"),
    ({"particles": 2.5}, "planner.particles must be an integer >= 1, got 2.5"),
    ({"horizon": 5, "replan_every": 6}, r"planner.replan_every must be an integer between 1 and the \(shortest\) horizon 5, got 6"),
    ({"replan_every": 0}, r"planner.replan_every must be an integer between 1 and the \(shortest\) horizon 15, got 0"),
    ({"optimizer": "annealing"}, r"planner.optimizer must be one of \['cem', 'gradient', 'icem', 'ilqr', 'lqr', "
                                 r"'mppi', 'random'\], got 'annealing'"),
    ({"propagation": "ts2"}, r"planner.propagation must be one of \['ts1', 'tsinf', 'expectation', 'all-members'\]"),
    ({"compute_dtype": "float16"}, r"planner.compute_dtype must be one of \['float32', 'bfloat16'\], got 'float16'"),
    ({"risk_penalty": -1.0}, "planner.risk_penalty must be a finite number >= 0, got -1.0"),
    ({"veto_threshold": -0.5}, "planner.veto_threshold must be None or a finite number >= 0, got -0.5"),
    ({"settings": [1, 2]}, r"planner.settings must be a mapping of 'icem' settings, got \[1, 2\]"),
    ({"settings": {"popsize": 50}}, r"unknown setting\(s\) \['planner.settings.popsize'\] for optimizer 'icem'; "
                                    r"expected some of \['population', 'elites', 'iterations', "),
    ({"optimizer": "mppi", "settings": {"elites": 5}}, r"unknown setting\(s\) \['planner.settings.elites'\] for "
                                                       r"optimizer 'mppi'; expected some of \['population', "
                                                       r"'temperature', 'noise_std', 'iterations'\]"),
    ({"settings": {"elites": 200}}, r"planner.settings.elites must be between 1 and population \(100\), got 200 "
                                    r"\(optimizer 'icem'\)"),
    ({"settings": {"population": 0}}, r"planner.settings.population must be an integer >= 1, got 0 \(optimizer 'icem'\)"),
    ({"optimizer": "cem", "settings": {"iterations": 0}},
     r"planner.settings.iterations must be an integer >= 1, got 0 \(optimizer 'cem'\)"),
    ({"optimizer": "mppi", "settings": {"temperature": "hot"}},
     r"planner.settings.temperature must be a finite number > 0, got 'hot' \(optimizer 'mppi'\)"),
    ({"optimizer": "ilqr", "settings": {"iterations": 0}},
     r"planner.settings.iterations must be an integer >= 1, got 0 \(optimizer 'ilqr'\)"),
])
def test_every_planner_value_is_checked_by_name(values, message):
    with pytest.raises(ValueError, match=message):
        PlannerConfig(**values)


def test_settings_are_typed_per_optimizer():
    assert PlannerConfig(optimizer="cem", settings={"population": 40, "elites": 4}).optimizer_settings() == \
        CEMSettings(population=40, elites=4)
    assert PlannerConfig(optimizer="cem").optimizer_settings() == CEMSettings()  # 350 / 35 / 5, PETS paper
    # a number YAML reads as a string (1e-3) is read as the number it is
    assert PlannerConfig(optimizer="cem", settings={"min_std": "1e-3"}).optimizer_settings().min_std == 1e-3
    assert PlannerConfig(optimizer="ilqr").optimizer_settings() == ILQRSettings()
    assert PlannerConfig(optimizer="lqr").optimizer_settings() == LQRSettings()


@pytest.mark.parametrize("cls, key, value, message", [
    (CEMSettings, "elites", 0, "elites must be an integer >= 1, got 0"),
    (CEMSettings, "momentum", 1.0, r"momentum must be a number in \[0, 1\), got 1.0"),
    (CEMSettings, "init_std", [0.1, -1.0], "init_std must be None, a finite number > 0 or a list of them"),
    (CEMSettings, "min_std", -1.0, "min_std must be a finite number >= 0, got -1.0"),
    (CEMSettings, "stop_std", 0.0, "stop_std must be a finite number > 0, got 0.0"),
    (ICEMSettings, "decay", 0.5, "decay must be >= 1"),
    (ICEMSettings, "beta", -1.0, "beta must be a finite number >= 0, got -1.0"),
    (ICEMSettings, "min_population", 200, r"min_population must be between elites \(10\) and population \(100\)"),
    (ICEMSettings, "keep_fraction", 1.5, r"keep_fraction must be a number in \[0, 1\], got 1.5"),
    (MPPISettings, "temperature", 0.0, "temperature must be a finite number > 0, got 0.0"),
    (MPPISettings, "noise_std", 0.0, "noise_std must be None, a finite number > 0"),
    (GradientSettings, "learning_rate", -1.0, "learning_rate must be a finite number > 0, got -1.0"),
    (GradientSettings, "tolerance", 0.0, "tolerance must be a finite number > 0, got 0.0"),
    (RandomSettings, "population", True, "population must be an integer >= 1, got True"),
    (ILQRSettings, "regularization", -1.0, "regularization must be a finite number >= 0, got -1.0"),
    (ILQRSettings, "max_regularization", 0.0, "max_regularization must be a finite number > 0, got 0.0"),
    (LQRSettings, "regularization", -1.0, "regularization must be a finite number >= 0, got -1.0"),
])
def test_each_settings_class_checks_its_values(cls, key, value, message):
    with pytest.raises(ValueError, match=message):
        cls(**{key: value})


def test_optimizers_take_a_settings_object_and_overrides():
    settings = CEMSettings(population=40, elites=4, iterations=2)
    cem = CEM(BOX, 3, settings=settings)
    assert cem.settings is settings and (cem.population, cem.elites, cem.iterations) == (40, 4, 2)
    assert make_optimizer("cem", BOX, 3, settings=settings, elites=8).elites == 8
    with pytest.raises(TypeError, match=r"CEM takes settings=CEMSettings\(...\), got MPPISettings"):
        CEM(BOX, 3, settings=MPPISettings())
    with pytest.raises(ValueError, match=r"elites must be between 1 and population \(40\), got 41"):
        CEM(BOX, 3, settings=settings, elites=41)


def test_command_line_overrides_fill_the_typed_planner():
    config = load_config(PETSConfig, None, ["planner.optimizer=cem", "planner.settings.population=40",
                                            "planner.settings.elites=4", "planner.horizon=8"])
    assert config.planner.optimizer_settings() == CEMSettings(population=40, elites=4)
    assert load_config(PETSConfig, None, ["planner.optimizer=ilqr"]).planner.optimizer == "ilqr"
    with pytest.raises(ConfigError, match=r"planner.settings.popsize'\] for optimizer 'icem'"):
        load_config(PETSConfig, None, ["planner.settings.popsize=40"])
    with pytest.raises(ConfigError, match=r"planner.particles must be an integer >= 1, got 0"):
        load_config(PETSConfig, None, ["planner.particles=0"])


def test_ilqr_needs_a_rollout_objective_and_is_not_offered_for_plain_objectives():
    assert "ilqr" not in optimizer_names() and {"ilqr", "lqr"} <= set(optimizer_names(include_model_based=True))
    with pytest.raises(TypeError, match="optimizer 'ilqr' differentiates the model step by step, so it needs the "
                                        r"objective of a TrajectoryEvaluator \(evaluator.objective\(obs\)\)"):
        make_optimizer("ilqr", BOX, 3).optimize(lambda seqs: -(seqs ** 2).sum(dim=(1, 2)))


def test_ilqr_starts_from_the_best_proposal():
    model = KnownDynamics(lambda obs, action: obs + action, 1, 1)  # s' = s + a, reward -s'^2: a = -s is optimal
    evaluator = TrajectoryEvaluator(model, lambda o, a, n: -(n[:, 0] ** 2), propagation="expectation", particles=1)
    optimizer = ILQROptimizer(BOX, 4, iterations=1)
    objective = evaluator.objective(torch.tensor([0.8]))
    proposals = torch.tensor([[[0.5]] * 4, [[-0.8], [0.0], [0.0], [0.0]]])  # the second is already optimal
    plan = optimizer.optimize(objective, proposals=proposals)
    assert torch.allclose(plan, proposals[1], atol=1e-5) and optimizer.last_info["evaluations"] == 3 + 1  # start and proposals, then the plan
    assert optimizer.last_info["best_score"] == pytest.approx(0.0, abs=1e-8)
    assert optimizer.solver.states.shape == (5, 1) and optimizer.solver.gains.shape == (4, 1, 1)


def test_lqr_from_a_nonlinear_model_needs_a_point():
    model = ProbabilisticMLP(1, 1, hidden_size=8, hidden_layers=1, max_epochs=1)
    model.fit(torch.randn(20, 1), torch.randn(20, 1), torch.randn(20, 1))
    with pytest.raises(ValueError, match="ProbabilisticMLP is not linear: linearization needs a point"):
        lqr_from_model(model, [[1.0]], [[0.1]], 5)
