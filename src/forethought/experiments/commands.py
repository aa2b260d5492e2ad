"""The ``forethought run`` jobs by name: their config classes, starting one, and resuming one.

One place that knows every run command, for the CLI, ``forethought resume`` and sweeps:

    config = load_config(run_config_class("sac"), None, ["env=Pendulum-v1", "steps=2000"])
    summary = start_run("sac", config)
    summary = resume_run("runs/sac")        # after a crash: continues from the last checkpoint
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

from forethought.experiments.run_dir import read_run_info

RUN_ALGOS = ("pets", "sac", "dyna", "mbpo", "planet", "dreamer")


def run_config_class(algo: str) -> type:
    """The config dataclass of ``forethought run <algo>``."""
    from forethought.experiments.run_latent import RUN_CONFIGS as LATENT_CONFIGS
    from forethought.experiments.run_pets import RunPETSConfig
    from forethought.experiments.run_policy import RUN_CONFIGS as POLICY_CONFIGS

    classes = {"pets": RunPETSConfig, **POLICY_CONFIGS, **LATENT_CONFIGS}
    if algo not in classes:
        raise ValueError(f"run command must be one of {list(RUN_ALGOS)}, got {algo!r}")
    return classes[algo]


def start_run(algo: str, config: Any, callback: Callable[[Any], None] | None = None, overwrite: bool = False,
              resume: bool = False, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``forethought run <algo>`` with ``config`` into ``config.out`` and return its summary.

    ``callback`` hears each trial (pets: a ``TrialResult``), evaluation (sac, dyna, mbpo: the
    metrics row) or episode (planet, dreamer: the metrics row). With ``resume`` the run already in
    ``config.out`` continues from its last good checkpoint (``warn`` hears about damaged ones)."""
    if algo == "pets":
        from forethought.experiments.run_pets import run_pets

        return run_pets(config, on_trial=callback, overwrite=overwrite, resume=resume, warn=warn)
    if algo in ("sac", "dyna", "mbpo"):
        from forethought.experiments.run_policy import run_policy

        return run_policy(algo, config, on_eval=callback, overwrite=overwrite, resume=resume, warn=warn)
    if algo in ("planet", "dreamer"):
        from forethought.experiments.run_latent import run_latent

        return run_latent(algo, config, on_episode=callback, overwrite=overwrite, resume=resume, warn=warn)
    raise ValueError(f"run command must be one of {list(RUN_ALGOS)}, got {algo!r}")


def run_algo(path: str | os.PathLike) -> str:
    """Which ``forethought run <algo>`` wrote the run directory ``path`` (ValueError if none did, or
    another version of forethought did)."""
    command = str(read_run_info(path).get("command"))
    algo = command.removeprefix("run ")
    if not command.startswith("run ") or algo not in RUN_ALGOS:
        raise ValueError(f"{path} was written by {command!r}; resume continues runs of "
                         + ", ".join(f"'run {a}'" for a in RUN_ALGOS))
    return algo


def resume_run(path: str | os.PathLike, callback: Callable[[Any], None] | None = None,
               warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Continue the run in ``path`` from its last good checkpoint with the config it was started with."""
    from forethought.config import load_config

    algo = run_algo(path)
    config = load_config(run_config_class(algo), Path(path) / "config.yaml")
    return start_run(algo, dataclasses.replace(config, out=str(path)), callback=callback, resume=True, warn=warn)
