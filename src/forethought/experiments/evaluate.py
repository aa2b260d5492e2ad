"""``forethought evaluate RUN``: play a saved agent for more evaluation episodes than its run did.

    result = evaluate_run("runs/pets", episodes=10)
    result["returns"], result["mean_return"]

The agent is the run's last good checkpoint, acting deterministically (as in the run's own
evaluations) in the run's environment (its preset, action repeat and ``env_kwargs``). Episode
``k`` starts from the same state as the run's own evaluation episode ``k`` (the same start states
every time); a sampling planner's draws go on from the saved agent's generators, so a return can
differ from the run's own last evaluation of the same start. Nothing is written to the run
directory and nothing in it is executed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from forethought.agents import Agent
from forethought.config import load_config
from forethought.data.env_loop import episode_returns
from forethought.experiments.checkpoints import latest_agent_checkpoint
from forethought.experiments.resume import run_algo
from forethought.experiments.resume_checks import check_env_id_from_run
from forethought.experiments.run import ALGORITHMS, make_env
from forethought.experiments.run_config import RunConfig, run_config_class
from forethought.seeding import derive_seed


def load_run_agent(path: str | os.PathLike, env: str | None = None, device: str | None = None,
                   warn: Callable[[str], None] | None = None) -> tuple[str, RunConfig, Agent, gym.Env]:
    """The algorithm, config, agent (its last good checkpoint) and a fresh copy of the environment
    (preset, action repeat, ``env_kwargs``) of the run directory ``path``; close the environment
    when done. ``env`` and ``device`` as in :func:`evaluate_run`; ``warn`` hears about damaged
    checkpoints passed over."""
    algo = run_algo(path)
    overrides = [] if device is None else [f"device={device}"]
    config = load_config(run_config_class(algo), Path(path) / "config.yaml", overrides)
    check_env_id_from_run(config.env, env, path)
    spec = ALGORITHMS[algo]
    checkpoint = latest_agent_checkpoint(Path(path) / "checkpoints" / "agent", warn, agent=spec.agent.__name__)
    play_env = make_env(algo, config)
    try:
        return algo, config, spec.agent.load(checkpoint, play_env, device=config.device), play_env
    except BaseException:
        play_env.close()
        raise


def evaluate_run(path: str | os.PathLike, episodes: int, env: str | None = None, device: str | None = None,
                 on_episode: Callable[[int, float], None] | None = None,
                 warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Mean and per-episode returns of ``episodes`` deterministic episodes of the agent saved in
    the run directory ``path``. ``env``: the run's environment id, required (as in ``resume``)
    when it has Gymnasium's ``module:Id`` form; ``device``: where the agent acts (default: the
    run's own); ``on_episode(k, return)`` hears each episode as it ends.

    Raises:
        ValueError: ``episodes`` is not an integer >= 1, or ``path`` is not a run of ``forethought run``.
        CheckpointError: the run has no usable agent checkpoint.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    algo, config, agent, play_env = load_run_agent(path, env, device, warn)
    try:
        returns = []
        for k in range(episodes):
            returns += episode_returns(play_env, lambda obs: agent.act(obs, deterministic=True),
                                       [derive_seed(config.seed, "eval", k)], reset=agent.reset)
            if on_episode is not None:
                on_episode(k, returns[-1])
    finally:
        play_env.close()
    return {"run": str(path), "algo": algo, "env": config.env, "seed": config.seed, "env_steps": agent.env_steps,
            "episodes": episodes, "returns": returns, "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns))}


__all__ = ["evaluate_run", "load_run_agent"]
