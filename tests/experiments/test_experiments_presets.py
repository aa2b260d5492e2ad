"""Task presets: every shipped file checks out against the run configs it names, and a preset sits
between the built-in defaults and the user's own config, overrides and choice."""

import json
from importlib import resources

import pytest
import yaml

from forethought.cli import main
from forethought.config import ConfigError, load_config
from forethought.envs.presets import Preset, PresetError, all_presets, file_name, find_preset, parse_preset
from forethought.experiments.compare import CompareConfig, run_job
from forethought.experiments.presets import (choose_preset, describe, describe_runs, preset_values,
                                             resolve_compare_config, resolve_run_config, split_choice)
from forethought.experiments.run_config import RUN_ALGOS, PETSRunConfig
from forethought.experiments.sweep_spec import SweepConfig, resolve_runs

PRESET_SECTIONS = [(name, algo) for name, preset in sorted(all_presets().items()) for algo in preset.algos]
SHIPPED = {"InvertedPendulum-v5", "pendulum-swingup", "HalfCheetah-v5", "Reacher-v5", "Pusher-v5",
           "dm_control/cartpole-swingup-v0", "dm_control/pendulum-swingup-v0", "dm_control/reacher-easy-v0",
           "dm_control/cheetah-run-v0", "dm_control/walker-walk-v0"}


# ---------------------------------------------------------------------------- the shipped files
def test_every_yaml_file_in_the_package_is_a_preset_and_the_promised_ones_are_there():
    files = sorted(e.name for e in resources.files("forethought.envs.presets").iterdir() if e.name.endswith(".yaml"))
    assert files == sorted(file_name(name) for name in all_presets())
    assert SHIPPED <= set(all_presets())


@pytest.mark.parametrize("name,algo", PRESET_SECTIONS)
def test_every_preset_section_validates_against_its_run_config(name, algo):
    assert algo in RUN_ALGOS
    values = preset_values(all_presets()[name], algo)
    config, preset = resolve_run_config(algo, None, [f"env={name}"])
    assert preset.name == name
    resolved = yaml.safe_load(yaml.safe_dump(values))
    for key, value in resolved.items():  # every value the preset gives ends up in the config
        assert _get(config, key) == value or _contains(_get(config, key), value), key


@pytest.mark.parametrize("name", sorted(all_presets()))
def test_the_sections_of_one_preset_agree_on_the_run_settings_they_share(name):
    """compare runs its algorithms with one value of each run setting."""
    preset = all_presets()[name]
    seen: dict[str, object] = {}
    for algo in preset.algos:
        for key, value in preset.section(algo).items():
            if key != "agent":
                assert seen.setdefault(key, value) == value, (name, key)


def test_dmc_presets_set_action_repeat_from_planet_and_the_issue():
    expected = {"cartpole-swingup": 8, "pendulum-swingup": 4, "reacher-easy": 4, "cheetah-run": 4, "walker-walk": 2}
    for task, repeat in expected.items():
        for algo in ("pets", "mbpo"):
            section = dict(all_presets()[f"dm_control/{task}-v0"].section(algo))
            if task == "pendulum-swingup" and algo == "pets":  # its sparse reward needs a terminal value
                assert section.pop("agent") == {"terminal_value": True,
                                                "value": {"discount": 0.97, "rounds": 40, "updates": 2000},
                                                "planner": {"settings": {"population": 300}}}
            assert section == {"action_repeat": repeat}


def test_a_preset_with_an_unknown_key_or_a_bad_value_names_the_preset_and_the_key():
    bad = Preset("Pendulum-v1", "Pendulum-v1.yaml", {"pets": {"agent": {"model": {"kindd": "linear"}}}})
    with pytest.raises(ConfigError, match=r"preset Pendulum-v1 \(Pendulum-v1.yaml\) for pets: unknown config key "
                                          r"agent.model.kindd"):
        preset_values(bad, "pets")
    wrong = Preset("Pendulum-v1", "Pendulum-v1.yaml", {"pets": {"agent": {"planner": {"horizon": "long"}}}})
    with pytest.raises(ConfigError, match="preset Pendulum-v1.*planner.horizon must be an integer >= 1 or 'auto', got 'long'"):
        preset_values(wrong, "pets")


@pytest.mark.parametrize("text,message", [
    ("pets: {episodes: 3}\n", "must be a mapping with env"),
    ("env: Other-v1\npets: {episodes: 3}\n", "is for env 'Other-v1', so it must be named Other-v1.yaml"),
    ("env: X-v1\n", "has no algorithm sections"),
    ("env: X-v1\npets: 3\n", "section 'pets' must be a non-empty mapping"),
    ("env: X-v1\npets: {seed: 3}\n", "pets.seed cannot be preset"),
    ("env: X-v1\npets: {env: Y-v1}\n", "pets.env cannot be preset"),
    ("env: X-v1\npets: {out.x: 1}\n", "pets.out.x cannot be preset"),
    ("env: X-v1\npets: {a: [1\n", "is not valid YAML"),
])
def test_malformed_preset_files_are_refused_naming_the_file(text, message):
    with pytest.raises(PresetError, match=message):
        parse_preset("X-v1.yaml", text)


# ---------------------------------------------------------------------------- choosing and layering
def test_the_preset_is_applied_when_the_env_id_matches_and_not_otherwise():
    config, preset = resolve_run_config("pets", None, ["env=InvertedPendulum-v5"])
    assert preset.name == "InvertedPendulum-v5"
    assert config.agent.model.kind == "linear" and config.agent.model.ridge == 1e-4
    assert config.agent.state_cost == {0: 1.0}
    config, preset = resolve_run_config("pets", None, ["env=Pendulum-v1"])
    assert preset is None and config == load_config(PETSRunConfig, None, ["env=Pendulum-v1"])
    # a preset without a section for the algorithm is not applied
    assert resolve_run_config("sac", None, ["env=InvertedPendulum-v5"])[1] is None
    assert resolve_run_config("pets", None, ["env=pendulum-swingup"])[1] is None


def test_a_module_colon_id_matches_the_preset_of_its_id():
    assert find_preset("shimmy:dm_control/cartpole-swingup-v0").name == "dm_control/cartpole-swingup-v0"
    assert find_preset("shimmy:Nothing-v0") is None and find_preset("Nothing-v0") is None


def test_overrides_and_the_config_file_win_over_the_preset(tmp_path):
    config, _ = resolve_run_config("pets", None, ["env=InvertedPendulum-v5", "agent.model.kind=pe",
                                                  "agent.state_cost={0: 2.0}"])
    assert config.agent.model.kind == "pe" and config.agent.model.ridge == 1e-4  # the rest of the preset stays
    assert config.agent.state_cost == {0: 2.0}
    file = tmp_path / "mine.yaml"
    file.write_text("env: InvertedPendulum-v5\nagent:\n  model: {kind: de}\n  state_cost: {}\n")
    config, preset = resolve_run_config("pets", file, [])
    assert preset.name == "InvertedPendulum-v5"
    assert config.agent.model.kind == "de" and config.agent.state_cost == {}
    config, _ = resolve_run_config("pets", file, ["agent.model.kind=d"])  # overrides over the file
    assert config.agent.model.kind == "d"


def test_preset_none_turns_it_off_and_a_name_applies_it_to_any_env():
    config, preset = resolve_run_config("pets", None, ["env=InvertedPendulum-v5"], "none")
    assert preset is None and config.agent.model.kind == "pe" and config.agent.state_cost == {}
    config, preset = resolve_run_config("pets", None, ["env=cartpole-swingup"], "InvertedPendulum-v5")
    assert preset.name == "InvertedPendulum-v5" and config.agent.model.kind == "linear"
    assert split_choice(["env=x", "preset=none", "seed=1"]) == ("none", ["env=x", "seed=1"])
    assert split_choice(["seed=1"]) == ("auto", ["seed=1"])


def test_a_bad_preset_choice_is_a_clear_error():
    with pytest.raises(PresetError, match=r"preset 'Nope-v0' does not exist; use auto .*, none, or one of "
                                          r"\[.*'InvertedPendulum-v5'"):
        split_choice(["preset=Nope-v0"])
    with pytest.raises(PresetError, match="preset InvertedPendulum-v5 has no settings for sac .it has pets."):
        choose_preset("InvertedPendulum-v5", "Pendulum-v1", "sac")
    with pytest.raises(PresetError, match="preset must be auto, none or a preset's name"):
        split_choice(["preset="])


def test_a_preset_that_conflicts_with_the_users_settings_says_so():
    # each valid alone: the preset holds rollouts at length 1, the user asks for at least 5
    with pytest.raises(ConfigError, match=r"with preset HalfCheetah-v5: .*max_rollout_length \(1\) must be >= "
                                          r"min_rollout_length \(5\).*preset=none turns the preset off"):
        resolve_run_config("mbpo", None, ["env=HalfCheetah-v5", "agent.min_rollout_length=5"])


def test_describe_prints_the_preset_line():
    assert describe(all_presets()["InvertedPendulum-v5"]) == "preset: InvertedPendulum-v5"
    assert describe(None) == "preset: none"
    assert describe({"pets": all_presets()["InvertedPendulum-v5"], "sac": None}) == \
        "preset: InvertedPendulum-v5 (pets), none (sac)"
    assert describe_runs(["InvertedPendulum-v5", None, None]) == "preset: InvertedPendulum-v5 (1 runs), none (2 runs)"
    assert describe_runs([None]) == "preset: none"


# ---------------------------------------------------------------------------- the commands
def test_run_prints_the_preset_saves_its_values_and_records_it(tmp_path, capsys):
    out = tmp_path / "ip"
    assert main(["run", "pets", "--env", "InvertedPendulum-v5", "--trials", "1", "--out", str(out),
                 "oracle_episodes=0", "video=false"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "preset: InvertedPendulum-v5"
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["agent"]["model"]["kind"] == "linear" and saved["agent"]["state_cost"] == {0: 1.0}
    assert json.loads((out / "run.json").read_text())["preset"] == "InvertedPendulum-v5"
    # resume reads the resolved config back as it is: the preset's values are in it
    assert load_config(PETSRunConfig, out / "config.yaml").agent.model.kind == "linear"


def test_run_without_a_preset_prints_none(tmp_path, capsys):
    out = tmp_path / "off"
    assert main(["run", "pets", "--env", "InvertedPendulum-v5", "--trials", "1", "--out", str(out),
                 "--preset", "none", "oracle_episodes=0", "video=false"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "preset: none"
    assert yaml.safe_load((out / "config.yaml").read_text())["agent"]["model"]["kind"] == "pe"
    assert json.loads((out / "run.json").read_text())["preset"] is None


def test_run_with_a_bad_preset_exits_before_writing(tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["run", "pets", "--env", "InvertedPendulum-v5", "--out", str(out), "preset=Nope-v0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("forethought run: error: preset 'Nope-v0' does not exist") and len(err.splitlines()) == 1
    assert not out.exists()


def test_run_help_documents_the_preset_option(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--preset PRESET" in text and "--preset none" in text and "preset: InvertedPendulum-v5" in text


def test_compare_lays_each_algorithms_preset_under_its_section():
    config, presets = resolve_compare_config(CompareConfig, None, ["env=InvertedPendulum-v5", "algos=[pets, sac]"])
    assert presets["pets"].name == "InvertedPendulum-v5" and presets["sac"] is None
    assert config.pets.model.kind == "linear" and config.pets.state_cost == {0: 1.0}
    job = run_job(config, "pets", 0)
    assert job.config["agent"]["model"]["kind"] == "linear" and job.info == {"preset": "InvertedPendulum-v5"}
    assert run_job(config, "sac", 0).info == {"preset": None}
    config, _ = resolve_compare_config(CompareConfig, None, ["env=InvertedPendulum-v5", "pets.model.kind=pe"])
    assert config.pets.model.kind == "pe" and config.pets.state_cost == {0: 1.0}
    config, presets = resolve_compare_config(CompareConfig, None, ["env=InvertedPendulum-v5", "preset=none"])
    assert config.pets.model.kind == "pe" and set(presets.values()) == {None}
    with pytest.raises(ValueError, match="preset must be auto, none or a preset's name|does not exist"):
        CompareConfig(preset="Nope-v0")


def test_compare_sets_the_run_settings_of_a_preset_on_each_run():
    config, _ = resolve_compare_config(CompareConfig, None, ["env=dm_control/cartpole-swingup-v0",
                                                             "algos=[pets, mbpo, sac]"])
    assert run_job(config, "pets", 0).config["action_repeat"] == 8
    assert run_job(config, "mbpo", 1).config["action_repeat"] == 8
    assert run_job(config, "sac", 0).config["action_repeat"] == 1  # no sac section


def test_sweep_runs_get_the_preset_of_their_env_under_the_sweeps_values(tmp_path):
    sweep = SweepConfig(command="pets", out=str(tmp_path), base={"env": "InvertedPendulum-v5"},
                        grid={"agent.model.ridge": [0.0, 1.0e-3]})
    runs = resolve_runs(sweep)
    assert [r.preset for r in runs] == ["InvertedPendulum-v5"] * 2
    assert [r.config["agent"]["model"]["ridge"] for r in runs] == [0.0, 1.0e-3]
    assert all(r.config["agent"]["model"]["kind"] == "linear" for r in runs)
    (off,) = resolve_runs(SweepConfig(command="pets", out=str(tmp_path), base={"env": "InvertedPendulum-v5"},
                                      preset="none"))
    assert off.preset is None and off.config["agent"]["model"]["kind"] == "pe"
    mixed = SweepConfig(command="pets", out=str(tmp_path), grid={"env": ["InvertedPendulum-v5", "Pendulum-v1"]})
    assert [r.preset for r in resolve_runs(mixed)] == ["InvertedPendulum-v5", None]
    with pytest.raises(ValueError, match="does not exist"):
        SweepConfig(preset="Nope-v0")


# ---------------------------------------------------------------------------- helpers
def _get(config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _contains(config, expected) -> bool:
    """Whether dataclass/dict ``config`` holds every (nested) value of the mapping ``expected``."""
    if not isinstance(expected, dict):
        return config == expected or (isinstance(config, tuple) and list(config) == expected)
    for key, value in expected.items():
        child = config.get(key) if isinstance(config, dict) else getattr(config, key)
        if not _contains(child, value):
            return False
    return True
