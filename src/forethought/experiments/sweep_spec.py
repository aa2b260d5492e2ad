"""The sweep file of ``forethought sweep``: its typed form, and its expansion into runs.

    command: pets                     # the forethought run command of every run
    out: runs/sweep
    base: {env: linear, episodes: 3}    # settings of every run (dotted keys, or nested sections)
    grid: {agent.planner.horizon: [5, 10]}
    random: {samples: 2, seed: 0, params: {agent.train.lr: {log_uniform: [1.0e-4, 1.0e-2]}}}
    seeds: [0, 1]

is 2 grid points x 2 random draws x 2 seeds = 8 runs, each named by what it varies
(``horizon=5,sample=0,lr=0.000637,seed=1``) and written to ``OUT/runs/<name>/``. The random draws
come from a numpy generator seeded by ``random.seed`` (the same draws on every machine) and are
shared by every grid point. :func:`resolve_runs` builds and checks every run's config, so a sweep
with a bad key or value fails before any run starts.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forethought.config import ConfigError, build, config_to_dict, load_config
from forethought.experiments.backends import BACKENDS
from forethought.experiments.presets import check_choice, run_values
from forethought.experiments.run_config import RUN_ALGOS, run_config_class

DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")
SET_BY_SWEEP = {"out": "the sweep's out (each run writes OUT/runs/<name>)", "seed": "seeds"}
MAX_NAME = 120  # longer names (many varied keys) fall back to run000, run001, ...


def _number(value: Any, key: str) -> float:
    """A distribution bound as a number (YAML 1.1 reads ``1e-4`` as a string)."""
    if isinstance(value, bool):
        raise ValueError(f"{key} must hold numbers, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must hold numbers, got {value!r}") from None


def check_distribution(key: str, spec: Any) -> dict[str, list]:
    """``spec`` (``{uniform|log_uniform|int_uniform: [low, high]}`` or ``{choice: [values]}``) with
    its bounds as numbers, or a ValueError naming ``key`` and what was expected."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"{key} must be one distribution, e.g. {{log_uniform: [1.0e-4, 1.0e-2]}} or "
                         f"{{choice: [5, 10]}}; got {spec!r}")
    ((name, args),) = spec.items()
    if name not in DISTRIBUTIONS:
        raise ValueError(f"{key}: unknown distribution {name!r}; expected one of {list(DISTRIBUTIONS)}")
    if name == "choice":
        if not isinstance(args, list) or not args:
            raise ValueError(f"{key}.choice must be a non-empty list of values, got {args!r}")
        return {name: list(args)}
    if not isinstance(args, list) or len(args) != 2:
        raise ValueError(f"{key}.{name} must be [low, high], got {args!r}")
    low, high = (_number(a, f"{key}.{name}") for a in args)
    if name == "int_uniform":
        if not (low.is_integer() and high.is_integer()) or low > high:
            raise ValueError(f"{key}.int_uniform must be [low, high] integers with low <= high, got {args!r}")
        return {name: [int(low), int(high)]}
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"{key}.{name} must be finite [low, high] with low < high, got {args!r}")
    if name == "log_uniform" and low <= 0:
        raise ValueError(f"{key}.log_uniform needs 0 < low < high, got {args!r}")
    return {name: [low, high]}


def draw(spec: dict[str, list], rng: np.random.Generator) -> Any:
    """One value from a checked distribution (plain Python numbers, for YAML and configs)."""
    ((name, args),) = spec.items()
    if name == "choice":
        return copy.deepcopy(args[int(rng.integers(len(args)))])
    if name == "int_uniform":
        return int(rng.integers(args[0], args[1] + 1))
    if name == "log_uniform":
        return float(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))
    return float(rng.uniform(args[0], args[1]))


def _check_keys(section: str, keys: list[Any]) -> None:
    for key in keys:
        if not isinstance(key, str) or not key or any(part == "" for part in key.split(".")):
            raise ValueError(f"{section} has a bad key {key!r}: expected a setting such as agent.planner.horizon")
        if key in SET_BY_SWEEP:
            raise ValueError(f"{section}.{key} is set by the sweep: use {SET_BY_SWEEP[key]} instead")


@dataclass
class RandomSearch:
    """``samples`` draws of every key in ``params`` (key -> distribution), from a generator seeded by ``seed``."""

    samples: int = 1
    seed: int = 0
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"random.samples must be >= 1, got {self.samples}")
        if not self.params:
            raise ValueError("random.params must name at least one setting to draw, "
                             "e.g. {agent.train.lr: {log_uniform: [1.0e-4, 1.0e-2]}}")
        _check_keys("random.params", list(self.params))
        self.params = {key: check_distribution(f"random.params.{key}", spec) for key, spec in self.params.items()}

    def draws(self) -> list[dict[str, Any]]:
        """The ``samples`` draws, each a dict of key -> value (the same on every call)."""
        rng = np.random.default_rng(self.seed)
        return [{key: draw(spec, rng) for key, spec in self.params.items()} for _ in range(self.samples)]


@dataclass
class SweepConfig:
    """A sweep: which command, the settings every run shares (``base``), what varies (``grid``:
    key -> list of values, all combinations; ``random``: drawn values), the seeds, and how the runs
    are run (``backend`` sequential, process or ray; ``workers`` side by side; each run retried
    ``retries`` times from its last checkpoint after a crash; ``threads`` torch threads per run;
    ``ray_address`` None to start a one-machine Ray cluster, or ``auto`` / ``ray://host:port``;
    ``preset``: auto, none or a preset's name, laid under every run's settings, see
    :mod:`~forethought.experiments.presets`)."""

    command: str = "pets"
    out: str = "runs/sweep"
    base: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    random: RandomSearch | None = None
    seeds: list[int] | int = field(default_factory=lambda: [0])
    backend: str = "process"
    workers: int = 2
    retries: int = 2
    threads: int = 1
    ray_address: str | None = None
    preset: str = "auto"

    def __post_init__(self) -> None:
        if self.command not in RUN_ALGOS:
            raise ValueError(f"command must be one of {list(RUN_ALGOS)}, got {self.command!r}")
        check_choice(self.preset)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        for name, low in (("workers", 1), ("retries", 0), ("threads", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if isinstance(self.seeds, int):
            if self.seeds < 1:
                raise ValueError(f"seeds must be a list of seeds or a count >= 1, got {self.seeds}")
            self.seeds = list(range(self.seeds))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct seeds, got {self.seeds}")
        _check_keys("base", list(self.base))
        _check_keys("grid", list(self.grid))
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid.{key} must be a non-empty list of values, got {values!r}")
        sections = {"base": list(self.base), "grid": list(self.grid),
                    "random.params": list(self.random.params) if self.random else []}
        for (first, a), (second, b) in itertools.combinations(sections.items(), 2):
            both = sorted(set(a) & set(b))
            if both:
                raise ValueError(f"{both[0]} is in both {first} and {second}: give each setting once")


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """The sweep file at ``path`` with ``key=value`` overrides (e.g. ``workers=4``, ``base.episodes=5``)."""
    try:
        return load_config(SweepConfig, path, overrides)
    except ConfigError as err:
        raise ConfigError(f"sweep file {path}: {err}") from err


@dataclass
class SweepRun:
    """One run of a sweep: its name, the values it varies (grid then random), its seed, its config
    and the preset that config was resolved with (None: none)."""

    name: str
    values: dict[str, Any]
    seed: int
    sample: int | None = None
    config: dict = field(default_factory=dict)  # the resolved run config (config.yaml's content)
    preset: str | None = None

    def path(self, out: str | Path) -> Path:
        return Path(out) / "runs" / self.name


def expand(sweep: SweepConfig) -> list[SweepRun]:
    """Every run of the sweep, grid points outermost, then random draws, then seeds (configs not built)."""
    points = [dict(zip(sweep.grid, combo)) for combo in itertools.product(*sweep.grid.values())]
    draws: list[dict[str, Any] | None] = list(sweep.random.draws()) if sweep.random else [None]
    runs = [SweepRun("", {**point, **(sample or {})}, seed, None if sample is None else index)
            for point in points for index, sample in enumerate(draws) for seed in sweep.seeds]
    names = [_name(run, sweep) for run in runs]
    if len(set(names)) < len(names) or max(map(len, names)) > MAX_NAME:
        names = [f"run{i:03d}" for i in range(len(runs))]
    for run, name in zip(runs, names):
        run.name = name
    return runs


def varied_keys(sweep: SweepConfig) -> list[str]:
    """The settings a sweep varies: grid keys, then random ones."""
    return list(sweep.grid) + (list(sweep.random.params) if sweep.random else [])


def _name(run: SweepRun, sweep: SweepConfig) -> str:
    keys = varied_keys(sweep)
    last = [key.split(".")[-1] for key in keys]
    short = {key: part if last.count(part) == 1 else key for key, part in zip(keys, last)}
    parts = [f"{short[key]}={_label(run.values[key])}" for key in sweep.grid]
    if run.sample is not None:
        parts.append(f"sample={run.sample}")
        parts += [f"{short[key]}={_label(run.values[key])}" for key in sweep.random.params]
    return ",".join(parts + [f"seed={run.seed}"])


def _label(value: Any) -> str:
    """A value as it appears in a run's name: 3 significant digits for floats, path-safe characters."""
    text = f"{value:.3g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "_"


def resolve_runs(sweep: SweepConfig) -> list[SweepRun]:
    """:func:`expand` with every run's config built and checked (the preset of its environment,
    ``base``, then its varied values, then its seed and out); a ValueError names the run and the
    bad setting."""
    runs = expand(sweep)
    cls = run_config_class(sweep.command)
    for run in runs:
        try:
            values, preset = run_values([*sweep.base.items(), *run.values.items(), ("seed", run.seed),
                                         ("out", str(run.path(sweep.out)))], sweep.command, sweep.preset)
            run.config = config_to_dict(build(cls, values))
            run.preset = None if preset is None else preset.name
        except ValueError as err:
            raise ConfigError(f"run {run.name} of the sweep: {err}") from err
    return runs
