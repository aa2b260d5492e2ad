"""Where task presets (:mod:`forethought.envs.presets`) enter a config: the one resolution that
``forethought run``, ``compare`` and ``sweep`` share.

Precedence, lowest first: the config's built-in defaults, the preset, the ``--config`` file, the
command's options, ``key=value`` overrides. The preset is chosen by ``choice``: ``auto`` (the
preset of the run's environment id, if one is shipped with a section for the algorithm), ``none``
(no preset), or a preset's name (an environment id) to apply it to any environment.

    config, preset = resolve_run_config("pets", None, ["env=InvertedPendulum-v5"])
    preset.name      # "InvertedPendulum-v5"; config.agent.model.kind == "linear"
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from forethought.config import ConfigError, build, config_to_dict, load_config, set_value
from forethought.envs.presets import Preset, PresetError, find_preset, load_preset
from forethought.experiments.run_config import RunConfig, run_config_class

AUTO, NONE = "auto", "none"


def check_choice(choice: Any) -> str:
    """``choice`` if it is ``auto``, ``none`` or a preset's name; else a PresetError saying what is allowed."""
    if not isinstance(choice, str) or not choice:
        raise PresetError(f"preset must be auto, none or a preset's name, got {choice!r}")
    if choice not in (AUTO, NONE):
        load_preset(choice)
    return choice


def split_choice(overrides: list[str]) -> tuple[str, list[str]]:
    """The ``preset=...`` choice among ``overrides`` (the last one wins; ``auto`` without one) and
    the other overrides."""
    choice, rest = AUTO, []
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key.strip() == "preset":
            choice = value.strip()
        else:
            rest.append(override)
    return check_choice(choice), rest


def choose_preset(choice: str, env: str, algo: str) -> Preset | None:
    """The preset to apply to a run of ``algo`` on ``env``. ``auto`` gives None where no preset of
    ``env`` has a section for ``algo``; a named preset without one is a PresetError."""
    if check_choice(choice) == NONE:
        return None
    if choice == AUTO:
        preset = find_preset(env)
        return preset if preset is not None and preset.section(algo) is not None else None
    preset = load_preset(choice)
    if preset.section(algo) is None:
        raise PresetError(f"preset {choice} has no settings for {algo} (it has {', '.join(preset.algos)}); "
                          f"use preset=auto or preset=none")
    return preset


def preset_values(preset: Preset, algo: str) -> dict[str, Any]:
    """``preset``'s values for ``algo``, checked against ``algo``'s run config: a ConfigError
    naming the preset, its file and the bad key or value."""
    values = preset.section(algo)
    cls = run_config_class(algo)
    merged = config_to_dict(cls())
    try:
        for key, value in values.items():
            set_value(cls, merged, str(key), value)
        build(cls, merged)
    except ConfigError as err:
        raise ConfigError(f"preset {preset.name} ({preset.file}) for {algo}: {err}") from err
    return values


def resolve_run_config(algo: str, path: str | None = None, overrides: list[str] | None = None,
                       choice: str = AUTO) -> tuple[RunConfig, Preset | None]:
    """The run config of ``forethought run <algo>`` from the defaults, the preset (see the module
    docstring), the YAML file at ``path`` and ``overrides``; and the preset applied (None: none).
    The user's own file and overrides are checked first, on their own, so their errors name them."""
    cls = run_config_class(algo)
    plain = load_config(cls, path, overrides)
    preset = choose_preset(choice, plain.env, algo)
    if preset is None:
        return plain, None
    values = preset_values(preset, algo)
    try:
        return load_config(cls, path, overrides, base=values), preset
    except ConfigError as err:
        raise ConfigError(f"with preset {preset.name}: {err} (preset=none turns the preset off)") from err


def run_values(items: list[tuple[str, Any]], algo: str, choice: str) -> tuple[dict[str, Any], Preset | None]:
    """The config dict of one run of a sweep from ``items`` (key -> value pairs laid over the
    defaults in order) with the preset of its environment laid under them; and the preset applied."""
    cls = run_config_class(algo)
    plain = config_to_dict(cls())
    for key, value in items:
        set_value(cls, plain, str(key), value)
    preset = choose_preset(choice, build(cls, plain).env, algo)
    if preset is None:
        return plain, None
    merged = config_to_dict(cls())
    for key, value in [*preset_values(preset, algo).items(), *items]:
        set_value(cls, merged, str(key), value)
    return merged, preset


def compare_presets(config: Any) -> dict[str, Preset | None]:
    """The preset of each algorithm of a comparison (``config``: a CompareConfig), by its ``preset``
    choice and ``env``. A named preset must have a section for at least one of the algorithms."""
    named = config.preset not in (AUTO, NONE)
    presets = {algo: None if named and load_preset(config.preset).section(algo) is None
               else choose_preset(config.preset, config.env, algo) for algo in config.algos}
    if named and not any(presets.values()):
        raise PresetError(f"preset {config.preset} has no settings for {', '.join(config.algos)} (it has "
                          f"{', '.join(load_preset(config.preset).algos)})")
    return presets


def compare_layers(cls: type, presets: dict[str, Preset | None]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """How the presets of a comparison (``cls``: CompareConfig) enter it: the values laid under the
    user's comparison config (each algorithm's ``agent`` section as its section of the comparison,
    and the run settings the comparison itself has), and per algorithm the run settings it lacks,
    set on each run. Two algorithms whose presets set one comparison setting differently are a
    PresetError."""
    fields = {f.name for f in dataclasses.fields(cls)}
    base: dict[str, Any] = {}
    per_run: dict[str, dict[str, Any]] = {}
    setter: dict[str, str] = {}
    for algo, preset in presets.items():
        per_run[algo] = {}
        if preset is None:
            continue
        for key, value in preset_values(preset, algo).items():
            top = key.split(".")[0]
            if top == "agent":
                base[algo + key[len("agent"):]] = value
            elif top in fields and top not in presets:
                if key in base and base[key] != value:
                    raise PresetError(f"the presets of {setter[key]} and {algo} set {key} to {base[key]!r} and "
                                      f"{value!r}; compare runs them with one {key}: give preset=none or compare "
                                      f"them separately")
                base[key], setter[key] = value, algo
            else:
                per_run[algo][key] = value
    return base, per_run


def resolve_compare_config(cls: type, path: str | None, overrides: list[str]) -> tuple[Any, dict[str, Preset | None]]:
    """The comparison config (``cls``: CompareConfig) with its algorithms' presets laid under the
    user's file and overrides; and the preset of each algorithm."""
    plain = load_config(cls, path, overrides)
    presets = compare_presets(plain)
    base, _ = compare_layers(cls, presets)
    if not base:
        return plain, presets
    try:
        return load_config(cls, path, overrides, base=base), presets
    except ConfigError as err:
        names = sorted({p.name for p in presets.values() if p is not None})
        raise ConfigError(f"with preset {', '.join(names)}: {err} (preset=none turns presets off)") from err


def describe(presets: dict[str, Preset | None] | Preset | None) -> str:
    """The ``preset: ...`` line a command prints: the preset's name or ``none``; for several
    algorithms, each with its own."""
    if not isinstance(presets, dict):
        return f"preset: {presets.name if presets is not None else NONE}"
    names = {algo: (p.name if p is not None else NONE) for algo, p in presets.items()}
    if len(set(names.values())) == 1:
        return f"preset: {next(iter(names.values()))}"
    return "preset: " + ", ".join(f"{name} ({algo})" for algo, name in names.items())


def describe_runs(names: list[str | None]) -> str:
    """The ``preset: ...`` line of a sweep whose runs were resolved with the presets ``names``
    (None: none), with how many runs each where they differ."""
    counts = Counter(name or NONE for name in names)
    if len(counts) == 1:
        return f"preset: {next(iter(counts))}"
    return "preset: " + ", ".join(f"{name} ({count} runs)" for name, count in counts.items())


def run_info(preset: Preset | None) -> dict[str, Any]:
    """What ``run.json`` records of the preset: its name, or None."""
    return {"preset": None if preset is None else preset.name}


__all__ = ["AUTO", "NONE", "check_choice", "choose_preset", "compare_layers", "compare_presets", "describe",
           "describe_runs", "preset_values", "resolve_compare_config", "resolve_run_config", "run_info", "run_values",
           "split_choice"]
