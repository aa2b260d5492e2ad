"""What may change when a run is resumed: its saved ``config.yaml`` against the new config, and an
environment id read back from a run directory (which must not import code nobody asked for)."""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from forethought.config import config_to_dict
from forethought.experiments.run_lock import RunDirError

# The budget keys of a run config: where ``forethought run`` ends (``resume`` may move them).
RUN_BUDGET_KEYS = ("steps", "episodes")
# Config keys a resumed run may change: its budget (``trials``: ablate's), and where the run
# directory now lies.
RESUME_SAFE_KEYS = ("trials", *RUN_BUDGET_KEYS, "out")

_ABSENT = "<absent>"


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, Mapping):
        flat: dict[str, Any] = {}
        for key, value in values.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: values}


def _plain(config: Any) -> Any:
    """A config as ``config.yaml`` holds it (a dataclass or mapping, through a YAML round trip)."""
    values = config_to_dict(config) if dataclasses.is_dataclass(config) else config
    return yaml.safe_load(yaml.safe_dump(dict(values), sort_keys=False)) or {}


def config_changes(saved: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    """The keys whose values differ between two configs (dataclasses or nested mappings), as
    dotted paths mapped to ``(saved, new)``; a key only one side has shows ``"<absent>"`` on the
    other. Values are compared as ``config.yaml`` stores them (tuples as lists)."""
    old, fresh = _flatten(_plain(saved)), _flatten(_plain(new))
    return {key: (old.get(key, _ABSENT), fresh.get(key, _ABSENT)) for key in sorted(old.keys() | fresh.keys())
            if old.get(key, _ABSENT) != fresh.get(key, _ABSENT)}


def saved_config(path: str | os.PathLike) -> dict[str, Any]:
    """The config saved in the run directory ``path`` (``config.yaml``, read without executing code).

    Raises:
        RunDirError: it is missing, not YAML, or not a mapping.
    """
    file = Path(path) / "config.yaml"
    try:
        values = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise RunDirError(f"{path} is not a forethought run directory (config.yaml missing)") from err
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise RunDirError(f"{file} cannot be read as YAML: {' '.join(str(err).split())}") from err
    if not isinstance(values, dict):
        raise RunDirError(f"{file} holds no mapping of config keys")
    return values


def check_resume_config(path: str | os.PathLike, config: Any, safe: Iterable[str] = RESUME_SAFE_KEYS,
                        saved: Mapping[str, Any] | None = None) -> dict[str, tuple[Any, Any]]:
    """Compare ``config`` with the one the run in ``path`` was saved with (``saved``, e.g. its
    checkpoint's; by default its ``config.yaml``): returns the changes (all of them safe) or
    refuses. ``safe`` holds dotted keys or ``fnmatch`` patterns (``"agent.*.log_every"``) that
    may change on resume.

    Raises:
        RunDirError: some changed key is not safe (each named with its saved and new value).
    """
    safe = tuple(safe)
    changes = config_changes(saved_config(path) if saved is None else saved, config)
    unsafe = {k: v for k, v in changes.items() if not any(fnmatch.fnmatchcase(k, pattern) for pattern in safe)}
    if unsafe:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in unsafe.items())
        raise RunDirError(f"cannot resume {path} with a different config ({listed}); only "
                          f"{', '.join(safe)} may change on resume: put the config back or start a new run with another --out")
    return changes


def check_budget_overrides(overrides: Iterable[str]) -> None:
    """Refuse any ``key=value`` override of a resumed run other than its budget (ValueError)."""
    for override in overrides:
        if override.partition("=")[0].strip() not in RUN_BUDGET_KEYS:
            allowed = ", ".join(f"{key}=N" for key in RUN_BUDGET_KEYS)
            raise ValueError(f"resume only moves a run's budget ({allowed}); {override!r} would change how it runs: "
                             f"start a new run with another --out instead")


def check_env_id_from_run(saved_id: str, given_id: str | None = None, path: str | os.PathLike | None = None) -> str:
    """The environment id to use when continuing a run whose config names ``saved_id``.

    An id in Gymnasium's ``module:Id`` form imports ``module`` when the environment is made;
    read back from a run directory it would run code that nobody asked for now, so it is only
    accepted when ``given_id`` (the command line's ``--env``) is the same id.

    Raises:
        RunDirError: ``saved_id`` imports a module and ``given_id`` is not the same id.
    """
    if ":" not in saved_id or given_id == saved_id:
        return saved_id
    module = saved_id.split(":", 1)[0]
    where = f"the run directory {path}" if path is not None else "the run directory"
    raise RunDirError(f"{where} names the environment {saved_id!r}, which imports the Python module {module!r}; "
                      f"opening a run runs no code: pass --env {saved_id} explicitly to allow importing that module")
