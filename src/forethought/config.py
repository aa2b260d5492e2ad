"""Typed configs: dataclasses with working defaults, filled from YAML and ``key.sub=value`` overrides.

    cfg = load_config(FitModelConfig, "my.yaml", ["model.kind=de", "train.lr=3e-4"])
    save_config(cfg, "runs/x/config.yaml")

Values are laid over the config's own defaults: ``agent.planner.horizon=20`` changes the horizon
of the planner ``agent`` has by default and keeps its other settings (a section given as a
mapping merges key by key too); a plain mapping value such as ``settings={population: 40}`` is
replaced whole, while ``settings.population=40`` changes that one entry. Unknown keys and values of
the wrong type are rejected with the offending key named, before any work starts.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from forethought.serialization import atomic_write_text

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override names an unknown key or holds a value of the wrong type."""


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (what ``config.yaml`` holds)."""
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> T:
    """Build ``cls`` from its defaults, then ``base`` (key -> value, laid over the defaults first:
    a task preset), then a YAML file (if given), then ``key.sub=value`` overrides."""
    values = config_to_dict(cls())
    for key, value in (base or {}).items():
        set_value(cls, values, str(key), value)
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys to values, got {type(loaded).__name__}")
        for key, value in (loaded or {}).items():
            set_value(cls, values, str(key), value)
    for override in overrides or []:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {override!r} is not of the form key.sub=value")
        set_value(cls, values, key.strip(), yaml.safe_load(raw) if raw.strip() else None)
    return build(cls, values)


def set_value(cls: type | None, values: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` in ``values``, the nested dict of a ``cls`` config: a section (a
    dataclass field) given as a mapping merges key by key into what is there; any other value
    replaces what is there (a key inside a plain mapping field, like ``settings.population``,
    replaces just that entry)."""
    parts = key.split(".")
    node, hint = values, cls
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key}: {part} is a value, not a section")
        node, hint = child, _section_type(hint, part)
    last, section = parts[-1], _section_type(hint, parts[-1])
    if section is not None and isinstance(value, dict) and isinstance(node.get(last), dict):
        for sub, sub_value in value.items():
            set_value(section, node[last], str(sub), sub_value)
    else:
        node[last] = copy.deepcopy(value)


def _section_type(cls: type | None, name: str) -> type | None:
    """The dataclass type of field ``name`` of dataclass ``cls`` (Optional unwrapped), else None."""
    if cls is None or not dataclasses.is_dataclass(cls) or name not in {f.name for f in dataclasses.fields(cls)}:
        return None
    hint = typing.get_type_hints(cls)[name]
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return next((o for o in options if dataclasses.is_dataclass(o)), None)


def build(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    """Instantiate dataclass ``cls`` from a nested dict, checking keys and value types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]!s}; valid keys here: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}")
    try:
        config = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid config {prefix.rstrip('.') or cls.__name__}: {err}") from err
    return config


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value if value is not None else {}, key + ".")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if hint is Any:
        return value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        args = typing.get_args(hint)
        items = [_coerce(args[0], v, f"{key}[{i}]") if args and args[0] is not Ellipsis else v
                 for i, v in enumerate(value)]
        return tuple(items) if (origin or hint) is tuple else items
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} must be a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported config type {hint}")
