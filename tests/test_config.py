from dataclasses import dataclass, field

import pytest
import yaml

from forethought.config import ConfigError, load_config, save_config


@dataclass
class Inner:
    lr: float = 1e-3
    layers: int = 4
    name: str = "pe"


@dataclass
class Outer:
    seed: int = 0
    out: str | None = None
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    env_kwargs: dict = field(default_factory=dict)


def test_defaults_yaml_and_overrides_in_that_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ninner:\n  lr: 0.01\n  layers: 2\n")
    cfg = load_config(Outer, path, ["inner.layers=5", "flag=true", "env_kwargs={dt: 0.05}", "inner.lr=3e-4"])
    assert cfg == Outer(seed=3, flag=True, inner=Inner(lr=3e-4, layers=5), env_kwargs={"dt": 0.05})


def test_saved_config_loads_back_identically(tmp_path):
    cfg = load_config(Outer, None, ["out=runs/x", "inner.name=de"])
    save_config(cfg, tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["inner"]["name"] == "de"
    assert load_config(Outer, tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("override, message", [
    ("inner.depth=3", "unknown config key inner.depth"),
    ("seed=abc", "seed must be an integer"),
    ("flag=3", "flag must be true or false"),
    ("inner.lr=fast", "inner.lr must be a number"),
    ("noequals", "not of the form key.sub=value"),
    ("seed.x=1", "cannot set seed.x: seed is a value, not a section"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, None, [override])


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Outer, path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "missing.yaml")


def test_an_override_keeps_the_other_defaults_of_the_section_it_changes(tmp_path):
    from forethought.experiments.run_config import PETSRunConfig as RunPETSConfig

    default = RunPETSConfig().agent.planner  # PETS's own planner: iCEM 100/10/3, 5 particles
    planner = load_config(RunPETSConfig, None, ["agent.planner.horizon=7"]).agent.planner
    assert planner.horizon == 7 and planner.optimizer == default.optimizer == "icem"
    assert planner.particles == default.particles and planner.settings == default.settings
    planner = load_config(RunPETSConfig, None, ["agent.planner.settings.population=40"]).agent.planner
    assert planner.settings == {**default.settings, "population": 40}  # one entry of a mapping
    assert planner.optimizer_settings().elites == default.optimizer_settings().elites
    planner = load_config(RunPETSConfig, None, ["agent.planner.settings={population: 40}"]).agent.planner
    assert planner.settings == {"population": 40}  # a mapping given whole replaces it
    path = tmp_path / "c.yaml"
    path.write_text("agent:\n  planner:\n    horizon: 9\n  model:\n    hidden_size: 64\n")
    config = load_config(RunPETSConfig, path)
    assert config.agent.planner.horizon == 9 and config.agent.planner.optimizer == "icem"
    assert config.agent.model.hidden_size == 64 and config.agent.model.hidden_layers == RunPETSConfig().agent.model.hidden_layers
    with pytest.raises(ConfigError, match="unknown config key agent.planner.horizn"):
        load_config(RunPETSConfig, None, ["agent.planner.horizn=7"])


@pytest.mark.parametrize("override, message", [
    ("agent.planner.particles=0", "particles"),
    ("agent.planner.settings.elites=500", "elites"),
    ("agent.planner.settings.colour=3", "colour"),
    ("seed=-1", "seed must be an integer >= 0"),
    ("steps=0", "steps must be >= 1"),
])
def test_every_run_setting_is_checked_when_the_config_is_built(override, message):
    from forethought.experiments.run_config import PETSRunConfig

    with pytest.raises(ConfigError, match=message):
        load_config(PETSRunConfig, None, [override])


def test_agent_defaults_are_the_one_set_of_defaults():
    from forethought.agents import PETSConfig
    from forethought.models.config import ModelConfig, TrainConfig
    from forethought.planning import PlannerConfig

    assert PETSConfig().planner == PlannerConfig()
    assert PETSConfig().model.hidden_layers == ModelConfig().hidden_layers == 3
    assert PETSConfig().train.max_epochs == TrainConfig().max_epochs
