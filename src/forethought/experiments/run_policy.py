"""``forethought run sac|dyna|mbpo``: learn a policy from real steps (and, for Dyna and MBPO,
imagined ones) and record everything.

Every ``eval_every`` real steps the deterministic policy runs ``eval_episodes`` episodes in a
separate copy of the environment. Writes to the run directory: ``metrics.csv`` (one row per
evaluation: ``env_steps, eval_return, train_return, episodes, wall_s, learn_s`` and, for the
model-based agents, ``model_val_loss``), TensorBoard events, the agent in ``checkpoints/agent/``
after every evaluation (swapped in atomically, see :mod:`~forethought.experiments.checkpoints`),
``summary.json`` (final and best evaluation return, real steps to ``target`` when one
is given, seconds per 1,000 real steps) and ``plots/learning_curve.png``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from forethought import envs
from forethought.agents.dyna import Dyna, DynaConfig
from forethought.agents.episode import run_episode
from forethought.agents.mbpo import MBPO, MBPOConfig
from forethought.agents.sac import SAC, SACConfig
from forethought.experiments.checkpoints import latest_agent_checkpoint, save_agent_checkpoint
from forethought.experiments.media import plot_learning_curve
from forethought.experiments.run_dir import RunDir


@dataclass
class RunPolicyConfig:
    """What every policy-learning run has: environment, real-step budget, evaluation, seed, output.
    ``target``: an evaluation return whose first reaching is reported in the summary."""

    env: str = "Pendulum-v1"
    env_kwargs: dict = field(default_factory=dict)
    steps: int = 20_000
    eval_every: int = 1000
    eval_episodes: int = 5
    target: float | None = None
    seed: int = 0
    out: str = "runs/policy"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.eval_every < 1 or self.eval_episodes < 1:
            raise ValueError(f"steps, eval_every and eval_episodes must be >= 1, got {self.steps}, "
                             f"{self.eval_every}, {self.eval_episodes}")


@dataclass
class RunSACConfig(RunPolicyConfig):
    out: str = "runs/sac"
    agent: SACConfig = field(default_factory=SACConfig)


@dataclass
class RunDynaConfig(RunPolicyConfig):
    out: str = "runs/dyna"
    agent: DynaConfig = field(default_factory=DynaConfig)


@dataclass
class RunMBPOConfig(RunPolicyConfig):
    out: str = "runs/mbpo"
    agent: MBPOConfig = field(default_factory=MBPOConfig)


RUN_CONFIGS = {"sac": RunSACConfig, "dyna": RunDynaConfig, "mbpo": RunMBPOConfig}
AGENTS = {"sac": SAC, "dyna": Dyna, "mbpo": MBPO}


def evaluate_policy(act: Callable[[np.ndarray], Any], env: gym.Env, episodes: int, seed: int,
                    reset: Callable[[], None] | None = None) -> list[float]:
    """Returns of ``episodes`` episodes of ``act`` from seeds ``seed, seed + 1, ...``; ``reset``
    (e.g. an MPC agent's, dropping its warm start) runs before each episode."""
    returns = []
    for episode in range(episodes):
        if reset is not None:
            reset()
        returns.append(run_episode(env, act, seed=seed + episode).total_reward)
    return returns


def run_policy(algo: str, config: RunPolicyConfig, on_eval: Callable[[dict], None] | None = None,
               overwrite: bool = False, resume: bool = False, warn: Callable[[str], None] | None = None
               ) -> dict[str, Any]:
    """Run the whole job for ``algo`` (``sac``, ``dyna`` or ``mbpo``); ``on_eval`` sees every metrics row.

    With ``resume`` the run already in ``config.out`` continues from its last good agent checkpoint
    (``warn`` hears when a damaged one was passed over): the unfinished episode is replayed into the
    environment and the steps after the checkpoint are taken again, so the metrics come out as
    those of an uninterrupted run (timings aside)."""
    if algo not in AGENTS:
        raise ValueError(f"algo must be one of {sorted(AGENTS)}, got {algo!r}")
    env, eval_env = envs.make(config.env, **config.env_kwargs), envs.make(config.env, **config.env_kwargs)
    agent_dir = Path(config.out) / "checkpoints" / "agent"
    start, learning_s = time.perf_counter(), 0.0
    if resume:
        agent = AGENTS[algo].load(latest_agent_checkpoint(agent_dir, warn), env)
        agent.restore_episode()
        evaluations = -(-agent.env_steps // config.eval_every)  # one row per chunk of at most eval_every steps
        run = RunDir(config.out, config, resume_rows=evaluations, purge_step=agent.env_steps + 1)
        rows: list[dict[str, Any]] = [_typed_row(row) for row in run.kept_rows]
        if rows:
            start -= rows[-1]["wall_s"]
            learning_s = rows[-1]["learn_s"]
    else:
        agent = AGENTS[algo](env, replace(config.agent, seed=config.seed))
        run = RunDir(config.out, config, overwrite=overwrite, command=f"run {algo}")
        rows = []
    with run:
        while agent.env_steps < config.steps:
            chunk_start = time.perf_counter()
            agent.learn(min(config.eval_every, config.steps - agent.env_steps))
            learning_s += time.perf_counter() - chunk_start
            returns = evaluate_policy(lambda obs: agent.act(obs, deterministic=True), eval_env,
                                      config.eval_episodes, seed=10_000 + config.seed * 1000)
            history = agent.history
            row = {"env_steps": agent.env_steps, "eval_return": float(np.mean(returns)),
                   "train_return": history[-1].total_reward if history else None, "episodes": len(history),
                   "wall_s": time.perf_counter() - start, "learn_s": learning_s}
            if algo != "sac":
                row["model_val_loss"] = agent.model_val_loss
            rows.append(row)
            run.log(row, step=row["env_steps"])
            save_agent_checkpoint(agent.save, agent_dir)
            if on_eval is not None:
                on_eval(row)
        curve = [r["eval_return"] for r in rows]
        plot_learning_curve(curve, run.plots / "learning_curve.png", title=f"{algo.upper()} on {config.env}",
                            x=[r["env_steps"] for r in rows], xlabel="real environment steps")
        reached = next((r["env_steps"] for r in rows if config.target is not None and r["eval_return"] >= config.target),
                       None)
        summary = {"algo": algo, "env": config.env, "env_steps": rows[-1]["env_steps"],
                   "final_eval_return": curve[-1], "best_eval_return": max(curve), "target": config.target,
                   "steps_to_target": reached, "s_per_1000_steps": 1000 * learning_s / rows[-1]["env_steps"],
                   "wall_s": time.perf_counter() - start}
        run.write_summary(summary)
    return summary


def _typed_row(row: dict[str, str]) -> dict[str, Any]:
    """A metrics row read back from ``metrics.csv`` with its numbers as numbers (empty: None)."""
    return {key: None if value == "" else int(value) if key in ("env_steps", "episodes") else float(value)
            for key, value in row.items()}
