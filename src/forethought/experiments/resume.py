"""``forethought resume RUN``: which algorithm wrote a run directory, and continuing it.

    summary = resume_run("runs/pets")                     # after a crash: on from the last checkpoint
    summary = resume_run("runs/pets", budget=["steps=20000"])   # a finished run, to a larger budget

The run goes on through :func:`~forethought.experiments.run.start_run` with the config saved in
the run directory; nothing in the directory is executed to read it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

from forethought.config import load_config
from forethought.experiments.resume_checks import check_budget_overrides, check_env_id_from_run
from forethought.experiments.run import start_run
from forethought.experiments.run_config import RUN_ALGOS, run_config_class
from forethought.experiments.run_dir import read_run_info


def run_algo(path: str | os.PathLike) -> str:
    """Which ``forethought run <algo>`` wrote the run directory ``path`` (ValueError if none did)."""
    command = str(read_run_info(path).get("command"))
    algo = command.removeprefix("run ")
    if not command.startswith("run ") or algo not in RUN_ALGOS:
        raise ValueError(f"{path} was written by {command!r}; resume continues runs of "
                         + ", ".join(f"'run {a}'" for a in RUN_ALGOS))
    return algo


def resume_run(path: str | os.PathLike, callback: Callable[[dict], None] | None = None,
               warn: Callable[[str], None] | None = None, env: str | None = None,
               budget: list[str] | None = None) -> dict[str, Any]:
    """Continue the run in ``path`` from its last good checkpoint with the config it was started
    with. ``budget``: ``steps=N`` / ``episodes=N`` overrides that move its end, so a finished run
    goes on to a larger budget (its ``config.yaml`` is updated; a budget the run has already met
    is refused before anything is written). An environment id in Gymnasium's ``module:Id`` form
    (whose module would be imported) is only accepted when ``env`` repeats it: reading a run
    directory runs no code by itself."""
    algo = run_algo(path)
    check_budget_overrides(budget or [])
    config = load_config(run_config_class(algo), Path(path) / "config.yaml", budget)
    check_env_id_from_run(config.env, env, path)
    config = dataclasses.replace(config, out=str(path))
    return start_run(algo, config, callback=callback, resume=True, warn=warn)


__all__ = ["resume_run", "run_algo"]
