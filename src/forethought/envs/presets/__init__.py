"""Per-task presets: settings that make an algorithm work on one environment, shipped as YAML.

One file per environment id in this folder, named after the id (``/`` written as ``-``)::

    # where the values come from
    env: InvertedPendulum-v5
    pets:                       # a section per algorithm: values of its run config
      agent:
        model: {kind: linear, ridge: 1.0e-4}
        state_cost: {0: 1.0}

A section holds values of the run config of ``forethought run <algo>`` (nested sections or dotted
keys, as in a ``--config`` file), laid over the built-in defaults and under the user's own config
and overrides (see :mod:`forethought.experiments.presets`, which also checks them against the run
configs). A section never sets the run's ``env``, ``seed`` or ``out``: those are the user's.

    preset = find_preset("InvertedPendulum-v5")      # or None
    preset.section("pets")                           # {"agent": {...}}
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

USER_KEYS = ("env", "seed", "out")  # a preset never sets these: they say which run it is


class PresetError(ValueError):
    """A preset file is malformed, or a preset named by the user does not exist."""


@dataclass(frozen=True)
class Preset:
    """The preset of one environment id: ``name`` (the id), the file it came from, and its
    sections (algorithm -> values of that algorithm's run config)."""

    name: str
    file: str
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def algos(self) -> list[str]:
        return sorted(self.sections)

    def section(self, algo: str) -> dict[str, Any] | None:
        """The values for ``algo``'s run config (a fresh copy), or None when the preset has none."""
        values = self.sections.get(algo)
        return None if values is None else yaml.safe_load(yaml.safe_dump(values))


def file_name(env_id: str) -> str:
    """The file a preset for ``env_id`` lives in."""
    return env_id.replace("/", "-") + ".yaml"


def parse_preset(file: str, text: str) -> Preset:
    """The preset in ``file``'s ``text``; a PresetError naming the file and key if malformed."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PresetError(f"preset file {file} is not valid YAML: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("env"), str) or not data["env"]:
        raise PresetError(f"preset file {file} must be a mapping with env: <environment id> and a section per "
                          f"algorithm")
    name = data.pop("env")
    if file_name(name) != file:
        raise PresetError(f"preset file {file} is for env {name!r}, so it must be named {file_name(name)}")
    if not data:
        raise PresetError(f"preset file {file} has no algorithm sections")
    for algo, values in data.items():
        if not isinstance(values, dict) or not values:
            raise PresetError(f"preset file {file}: section {algo!r} must be a non-empty mapping of run config "
                              f"values, got {values!r}")
        for key in values:
            if not isinstance(key, str) or key.split(".")[0] in USER_KEYS:
                raise PresetError(f"preset file {file}: {algo}.{key} cannot be preset; a preset never sets "
                                  f"{', '.join(USER_KEYS)}")
    return Preset(name, file, data)


@functools.cache
def all_presets() -> dict[str, Preset]:
    """Every shipped preset, by environment id."""
    presets: dict[str, Preset] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            preset = parse_preset(entry.name, entry.read_text(encoding="utf-8"))
            presets[preset.name] = preset
    return presets


def preset_names() -> list[str]:
    return sorted(all_presets())


def load_preset(name: str) -> Preset:
    """The preset called ``name`` (an environment id); a PresetError listing the presets if none is."""
    presets = all_presets()
    if name not in presets:
        raise PresetError(f"preset {name!r} does not exist; use auto (the preset of the env, if any), none, or one "
                          f"of {sorted(presets)}")
    return presets[name]


def find_preset(env_id: str) -> Preset | None:
    """The preset of environment ``env_id`` (Gymnasium's ``module:Id`` form matches its ``Id``),
    or None when none is shipped."""
    presets = all_presets()
    return presets.get(env_id) or presets.get(env_id.partition(":")[2] if ":" in env_id else "")


__all__ = ["Preset", "PresetError", "USER_KEYS", "all_presets", "file_name", "find_preset", "load_preset",
           "parse_preset", "preset_names"]
