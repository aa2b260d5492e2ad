"""Typed settings of the trajectory optimisers: one dataclass per optimiser, with its defaults and
the checks of its values, defined next to the optimiser it configures (``CEMSettings`` in
:mod:`forethought.planning.cem`, ...).

    CEMSettings(population=350, elites=35)            # checked on construction
    settings_from(CEMSettings, "cem", {"elites": 40})  # ValueError: elites must be between 1 and ...

Every check names the setting and what is allowed. :func:`settings_from` builds a settings object
from a plain mapping (a config file's ``planner.settings``), naming the optimiser and its valid
settings when a key is unknown.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

import numpy as np

S = TypeVar("S")


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, or a ValueError that names the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))


def check_positive(name: str, value: Any) -> float:
    """``value`` as a finite float ``> 0``, or a ValueError that names the setting."""
    if not _is_number(value) or not (0.0 < float(value) < math.inf):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_nonnegative(name: str, value: Any) -> float:
    """``value`` as a finite float ``>= 0``, or a ValueError that names the setting."""
    if not _is_number(value) or not (0.0 <= float(value) < math.inf):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_fraction(name: str, value: Any, include_one: bool = False) -> float:
    """``value`` as a float in ``[0, 1)`` (``[0, 1]`` with ``include_one``)."""
    if not _is_number(value) or not (0.0 <= value and (value <= 1.0 if include_one else value < 1.0)):
        raise ValueError(f"{name} must be a number in [0, {'1]' if include_one else '1)'}, got {value!r}")
    return float(value)


def check_std(name: str, value: Any) -> None:
    """``value`` is None, a finite number > 0, or a list of them (one per action dimension; the
    optimiser checks the length against its action space)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if value is not None and (not values or not all(_is_number(v) and 0.0 < float(v) < math.inf for v in values)):
        raise ValueError(f"{name} must be None, a finite number > 0 or a list of them (one per action "
                         f"dimension), got {value!r}")


def setting_names(cls: type) -> list[str]:
    """The fields of settings dataclass ``cls``."""
    return [f.name for f in dataclasses.fields(cls)]


def settings_from(cls: type[S], optimizer: str, values: dict[str, Any] | None = None, prefix: str = "") -> S:
    """``cls(**values)`` for the optimiser called ``optimizer``: unknown keys, and values out of
    range or of the wrong type, are a ValueError naming the key (after ``prefix``, e.g.
    ``"planner.settings."``), the optimiser and what it allows. Numbers written as strings (YAML
    reads ``1e-3`` as one) are read as numbers where the setting is a number."""
    values = dict(values or {})
    names = setting_names(cls)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown setting(s) {[prefix + key for key in unknown]} for optimizer {optimizer!r}; "
                         f"expected some of {names}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if isinstance(value, str) and _takes_float(hints[key]):
            try:
                values[key] = float(value)
            except ValueError:
                pass
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{prefix}{err} (optimizer {optimizer!r})") from err


def _takes_float(hint: Any) -> bool:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return float in options
