"""``forethought run pets``: learn to control an environment with PETS and record everything.

Writes to the run directory: ``metrics.csv`` (one row per trial), TensorBoard events, the agent
after every trial in ``checkpoints/agent/``, ``summary.json`` (final and best return, the oracle
planner's return, real steps to reach 90 % of it), ``plots/learning_curve.png`` and a GIF of the
last trial in ``videos/``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from forethought import envs
from forethought.agents.episode import Episode
from forethought.agents.pets import PETS, PETSConfig, TrialResult
from forethought.envs.analytic import analytic_step
from forethought.experiments.checkpoints import latest_agent_checkpoint, save_agent_checkpoint
from forethought.experiments.media import plot_learning_curve, write_gif
from forethought.experiments.run_dir import RunDir
from forethought.serialization import atomic_write_text

ORACLE_FRACTION = 0.9


@dataclass
class RunPETSConfig:
    """A PETS run: environment, number of trials, agent settings, and the oracle reference.

    ``steps``, when given, also ends the run after the trial in which the real-step count reaches
    it (``trials`` stays an upper bound; no video is filmed, since which trial is the last is not
    known in advance).

    ``oracle_episodes`` episodes are planned with the environment's exact dynamics and the same
    planner to give the reference return (where :func:`~forethought.envs.analytic_step` has the
    dynamics; 0 skips it).
    """

    env: str = "cartpole-swingup"
    env_kwargs: dict = field(default_factory=dict)
    trials: int = 15
    steps: int | None = None
    seed: int = 0
    out: str = "runs/pets"
    oracle_episodes: int = 1
    video: bool = True
    agent: PETSConfig = field(default_factory=PETSConfig)

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, got {self.trials}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1 (or None), got {self.steps}")
        if self.oracle_episodes < 0:
            raise ValueError(f"oracle_episodes must be >= 0, got {self.oracle_episodes}")


def _make_env(config: RunPETSConfig, render: bool):
    """The environment; with ``render``, in ``rgb_array`` mode where it supports that without a display
    (our own environments; MuJoCo rendering needs an OpenGL context, so Gymnasium tasks are not filmed)."""
    env = envs.make(config.env, **config.env_kwargs)
    if render and config.env in envs.OWN_ENVS and "rgb_array" in env.metadata.get("render_modes", []):
        env.close()
        env = envs.make(config.env, **{"render_mode": "rgb_array", **config.env_kwargs})
    return env


def oracle_return(config: RunPETSConfig) -> float | None:
    """Mean return of the same planner with the exact dynamics, or None where there are none."""
    env = _make_env(config, render=False)
    if config.oracle_episodes == 0 or analytic_step(env) is None:
        return None
    oracle_config = dataclasses.replace(config.agent, oracle=True, seed=config.seed + 50_000)
    oracle = PETS(env, oracle_config)
    returns = [r.total_reward for r in oracle.learn(config.oracle_episodes)]
    return float(np.mean(returns))


def steps_to_reach(history: list[TrialResult], target: float | None) -> int | None:
    """Real environment steps after the first trial whose return reaches ``target``."""
    if target is None:
        return None
    for result in history:
        if result.total_reward >= target:
            return result.env_steps
    return None


def run_pets(config: RunPETSConfig, on_trial: Callable[[TrialResult], None] | None = None,
             overwrite: bool = False, resume: bool = False, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the whole job; ``on_trial`` is called after every trial (the CLI prints a line).

    With ``resume`` the run already in ``config.out`` continues from its last good agent
    checkpoint (``warn`` hears when a damaged one was passed over): the trials after it are run
    again from their start, so the metrics come out as those of an uninterrupted run."""
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    env = _make_env(config, render=config.video and config.steps is None)
    agent_dir = Path(config.out) / "checkpoints" / "agent"
    if resume:
        agent = PETS.load(latest_agent_checkpoint(agent_dir, warn), env)
        run = RunDir(config.out, config, resume_rows=agent.trials_done, purge_step=agent.trials_done)
        oracle = json.loads((run.checkpoints / "oracle.json").read_text(encoding="utf-8"))["oracle_return"]
        start -= float(run.kept_rows[-1]["wall_s"]) if run.kept_rows else 0.0
    else:
        agent = PETS(env, dataclasses.replace(config.agent, seed=config.seed))
        run = RunDir(config.out, config, overwrite=overwrite, command="run pets")
        oracle = oracle_return(config)
        atomic_write_text(run.checkpoints / "oracle.json", json.dumps({"oracle_return": oracle}))
    with run:
        def record(result: TrialResult, episode: Episode) -> None:
            run.log({"trial": result.trial, "env_steps": result.env_steps, "return": result.total_reward,
                     "model_val_loss": result.model_val_loss, "plan_ms_per_step": result.plan_ms_per_step,
                     "wall_s": time.perf_counter() - start}, step=result.trial)
            save_agent_checkpoint(agent.save, agent_dir)
            if episode.frames:
                write_gif(episode.frames, run.path / "videos" / f"trial_{result.trial:03d}.gif",
                          fps=env.metadata.get("render_fps", 10))
            if on_trial is not None:
                on_trial(result)

        while agent.trials_done < config.trials and (config.steps is None or agent.env_steps < config.steps):
            last = config.steps is None and agent.trials_done == config.trials - 1
            agent.learn(1, callback=record, render_last=last and env.render_mode == "rgb_array")
        history = agent.history
        returns = [r.total_reward for r in history]
        target = None if oracle is None else fraction_of(oracle, ORACLE_FRACTION)
        plot_learning_curve(returns, run.plots / "learning_curve.png", oracle=oracle, title=f"PETS on {config.env}")
        summary = {
            "env": config.env, "trials": len(history), "env_steps": history[-1].env_steps,
            "final_return": returns[-1], "best_return": max(returns), "oracle_return": oracle,
            "target_return_90pct_oracle": target, "steps_to_90pct_oracle": steps_to_reach(history, target),
            "plan_ms_per_step": _mean_or_none([r.plan_ms_per_step for r in history]),
            "wall_s": time.perf_counter() - start,
        }
        run.write_summary(summary)
    env.close()
    return summary


def _mean_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def fraction_of(reference: float, fraction: float) -> float:
    """``fraction`` of the way from zero to ``reference``, for negative returns too (a return of
    -200 at 90 % is -222)."""
    return reference * fraction if reference >= 0 else reference / fraction
