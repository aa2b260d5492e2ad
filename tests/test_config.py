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
    ("seed.x=1", "seed must be an integer"),
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
