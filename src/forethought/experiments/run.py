"""``forethought run ALGO``: the one run loop every algorithm goes through.

    summary = start_run("pets", config)          # config: a RUN_CONFIGS["pets"] instance

Writes to the run directory: ``metrics.csv`` (one row per training episode: ``episode, env_steps,
return, eval_return, wall_s`` then the agent's own :attr:`~forethought.agents.Agent.metrics`;
``eval_return`` where an evaluation followed the episode; a last row with only ``env_steps`` and
``eval_return`` when the step budget ends inside an episode), TensorBoard events of the same,
the agent in ``checkpoints/agent/`` every ``checkpoint_every`` episodes and at the end,
``summary.json``, ``plots/learning_curve.png`` and, where the environment renders headless, a
GIF of the last episode in ``videos/``.

Everything is checked before anything is written: the environment is made and the agent built
(which validates every setting against the environment) before the run directory is created.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from forethought import envs
from forethought.agents import AGENTS, PETS, Agent, EpisodeResult
from forethought.config import config_to_dict, save_config
from forethought.data.env_loop import NonFiniteOutputError, episode_returns
from forethought.device import device_name
from forethought.envs.analytic import analytic_step
from forethought.envs.curriculum import StartCurriculum, with_curriculum
from forethought.envs.flatten import observation_layout
from forethought.envs.make import frame_size_kwargs
from forethought.envs.pixels import make_pixel_env
from forethought.models.task_model import QUALITY_KEYS, registered_task_functions
from forethought.experiments.checkpoints import latest_agent_checkpoint, save_agent_checkpoint
from forethought.experiments.media import plot_learning_curve, write_gif
from forethought.experiments.run_config import RUN_ALGOS, RunConfig, run_config_class
from forethought.experiments.resume_checks import RUN_BUDGET_KEYS, check_resume_config
from forethought.experiments.run_dir import RunDir
from forethought.experiments.run_lock import RunDirError, RunLock
from forethought.experiments.run_hooks import PETSHooks, PixelHooks, RunHooks
from forethought.seeding import derive_seed
from forethought.serialization import CheckpointError, atomic_write_text, read_json

SHARED_COLUMNS = ("episode", "env_steps", "return", "eval_return", "wall_s")
RUN_STATE = "run_state.json"  # the run loop's own counters, saved with each agent checkpoint
VIDEO_SIZE = (160, 160)  # (height, width) of the frames filmed from Gymnasium environments


class ModelDivergedError(ValueError):
    """A model fit diverged before any model was trained."""


@dataclass(frozen=True)
class Algorithm:
    """What the run loop needs to know about one ``forethought run`` algorithm."""

    agent: type[Agent]
    pixels: bool = False
    hooks: type[RunHooks] = RunHooks


ALGORITHMS: dict[str, Algorithm] = {
    "pets": Algorithm(AGENTS["pets"], hooks=PETSHooks),
    "sac": Algorithm(AGENTS["sac"]),
    "dyna": Algorithm(AGENTS["dyna"]),
    "mbpo": Algorithm(AGENTS["mbpo"]),
    "guided": Algorithm(AGENTS["guided"]),
    "planet": Algorithm(AGENTS["planet"], pixels=True, hooks=PixelHooks),
    "dreamer": Algorithm(AGENTS["dreamer"], pixels=True, hooks=PixelHooks),
    "muzero": Algorithm(AGENTS["muzero"]),
}


def algorithm(algo: str) -> Algorithm:
    if algo not in ALGORITHMS:
        raise ValueError(f"run command must be one of {list(RUN_ALGOS)}, got {algo!r}")
    return ALGORITHMS[algo]


def make_env(algo: str, config: RunConfig, render: bool = False) -> gym.Env:
    """The run's environment, each agent action held for ``config.action_repeat`` environment
    steps: pixel observations for pixel algorithms; with ``render``, in ``rgb_array`` mode where
    the environment has it (ours draw with NumPy; MuJoCo and DeepMind Control render through
    headless OpenGL, at :data:`VIDEO_SIZE`)."""
    if algorithm(algo).pixels:
        return make_pixel_env(config.env, config.agent.model.image_size, config.action_repeat, **config.env_kwargs)
    env = envs.make(config.env, **config.env_kwargs)
    if render and "rgb_array" in env.metadata.get("render_modes", []) and "render_mode" not in config.env_kwargs \
            and _can_draw(env):
        env.close()
        size = {} if config.env in envs.OWN_ENVS else frame_size_kwargs(config.env, *VIDEO_SIZE)
        env = envs.make(config.env, **{"render_mode": "rgb_array", **size, **config.env_kwargs})
    return env if config.action_repeat == 1 else envs.ActionRepeat(env, config.action_repeat)


def _can_draw(env: gym.Env) -> bool:
    """Whether ``env`` can draw its frames here: Gymnasium's classic-control environments
    (CartPole, Acrobot...) draw with pygame, an optional dependency; without it they are not filmed."""
    if not type(env.unwrapped).__module__.startswith("gymnasium.envs.classic_control"):
        return True
    return importlib.util.find_spec("pygame") is not None


def oracle_return(config: RunConfig, planner_config: Any) -> float | None:
    """Mean return of the PETS planner (``planner_config``) in the exact dynamics over
    ``oracle_episodes`` episodes, or None where there are none."""
    if config.oracle_episodes == 0:
        return None
    env = envs.make(config.env, **config.env_kwargs)
    try:
        if analytic_step(env) is None or registered_task_functions(env) is None:
            return None
        oracle = PETS(env, dataclasses.replace(planner_config, oracle=True), seed=derive_seed(config.seed, "oracle"),
                      device=config.device)
        return float(np.mean([r.total_reward for r in oracle.learn(episodes=config.oracle_episodes)]))
    finally:
        env.close()


def fraction_of(reference: float, fraction: float) -> float:
    """``fraction`` of the way from zero to ``reference``, for negative returns too (a return of
    -200 at 90 % is -222)."""
    return reference * fraction if reference >= 0 else reference / fraction


class _Run:
    """One run in progress: the agent, its environments, the run directory and the counters."""

    def __init__(self, algo: str, config: RunConfig, on_row: Callable[[dict], None] | None, warn) -> None:
        self.algo, self.config, self.on_row, self.warn = algo, config, on_row, warn
        self.spec = algorithm(algo)
        self.env = with_curriculum(make_env(algo, config, render=config.video), config.curriculum)
        self.film = config.video and (self.spec.pixels or self.env.render_mode == "rgb_array")
        self.eval_env = make_env(algo, config) if config.eval_every is not None else None
        self.agent_dir = Path(config.out) / "checkpoints" / "agent"
        self.columns = [*SHARED_COLUMNS, *self.spec.agent.metrics]
        self.rows: list[dict[str, Any]] = []
        self.evaluations, self.oracle, self.frames = 0, None, []
        self.wall_offset, self.start = 0.0, time.perf_counter()
        torch.manual_seed(config.seed)  # initialisations that draw from the global generator

    # ------------------------------------------------------------------ starting
    def new_agent(self) -> Agent:
        agent = self.spec.agent(self.env, self.config.agent, seed=self.config.seed, device=self.config.device)
        self.hooks = self.spec.hooks(self.config, agent, self.eval_env or self.env)
        return agent

    def restore(self, checkpoint: Path, state: dict[str, Any]) -> Agent:
        """The agent saved in ``checkpoint``, with the hooks' and run loop's state (``state``: its run_state.json)."""
        agent = self.spec.agent.load(checkpoint, self.env, device=self.config.device)
        self.hooks = self.spec.hooks(self.config, agent, self.eval_env or self.env)
        self.hooks.load(checkpoint)
        if isinstance(self.env, StartCurriculum):
            self.env.replay([r.total_reward for r in agent.history])
        self.oracle, self.evaluations = state["oracle_return"], state["evaluations"]
        return agent

    # ------------------------------------------------------------------ the loop
    def done(self, agent: Agent) -> bool:
        c = self.config
        return (c.steps is not None and agent.env_steps >= c.steps) or \
               (c.episodes is not None and len(agent.history) >= c.episodes)

    def loop(self, agent: Agent, run: RunDir) -> None:
        c = self.config
        while not self.done(agent):
            remaining = None if c.steps is None else c.steps - agent.env_steps
            last_known = c.episodes is not None and len(agent.history) == c.episodes - 1
            try:
                result = agent.advance(remaining, render=self.film and (last_known or self.spec.pixels))
            except NonFiniteOutputError as error:
                raise NonFiniteOutputError(f"training episode {len(agent.history)}: {error}; the run's "
                                           f"checkpoints are those before it") from error
            if result is None:  # the step budget ended inside an episode
                break
            if result.frames:
                self.frames = result.frames
            self.record(agent, run, result, force_eval=self.done(agent))
            self.check_model(result)
            if (result.episode + 1) % c.checkpoint_every == 0 and not self.done(agent):
                self.checkpoint(agent)
        if c.eval_every is not None and (not self.rows or self.rows[-1]["eval_return"] is None
                                         or self.rows[-1]["env_steps"] != agent.env_steps):
            self.record(agent, run, None, force_eval=True)
        self.checkpoint(agent)

    def record(self, agent: Agent, run: RunDir, result: EpisodeResult | None, force_eval: bool = False) -> None:
        """Log the row of a finished episode (or, with ``result`` None, of the final evaluation)."""
        c, eval_return = self.config, None
        if c.eval_every is not None and (force_eval or agent.env_steps >= (self.evaluations + 1) * c.eval_every):
            eval_return = self.evaluate(agent)
            self.evaluations = max(self.evaluations + 1, agent.env_steps // c.eval_every)
        row: dict[str, Any] = {"episode": None if result is None else result.episode, "env_steps": agent.env_steps,
                               "return": None if result is None else result.total_reward,
                               "eval_return": eval_return, "wall_s": self.wall_s()}
        for key in self.spec.agent.metrics:
            row[key] = None if result is None else result.info.get(key)
        if isinstance(self.env, StartCurriculum):  # the half-width this episode started from (None: the task's)
            row["start_spread"] = None if result is None else self.env.spread
            if result is not None:
                self.env.record(result.total_reward)
        self.rows.append(row)
        run.log(row, step=agent.env_steps)
        if self.on_row is not None:
            self.on_row(row)

    def check_model(self, result: EpisodeResult) -> None:
        """Report a model fit whose loss went non-finite; stop when no model was ever trained
        (unless ``continue_untrained``)."""
        if not result.info.get("model_diverged"):
            return
        message = (f"model training diverged (non-finite loss) in the fit before the end of episode "
                   f"{result.episode}")
        if result.info.get("model_fitted") is False and not self.config.continue_untrained:
            raise ModelDivergedError(f"{message}, and no model has been trained: the agent has nothing to plan or "
                                     f"imagine in; lower agent.train.lr or set continue_untrained=true to go on")
        if self.warn is not None:
            self.warn(message + ("" if result.info.get("model_fitted") else "; no model has been trained yet")
                      + "; the last finite weights are kept")

    def evaluate(self, agent: Agent) -> float:
        """Mean return of ``eval_episodes`` deterministic episodes in the evaluation environment,
        from the same start states every time."""
        seeds = [derive_seed(self.config.seed, "eval", episode) for episode in range(self.config.eval_episodes)]
        try:
            returns = episode_returns(self.eval_env, lambda obs: agent.act(obs, deterministic=True), seeds,
                                      reset=agent.reset, recorder=self.hooks.eval_recorder())
        except NonFiniteOutputError as error:
            raise NonFiniteOutputError(f"evaluation after {agent.env_steps} environment steps: {error}; the run's "
                                       f"checkpoints are those before it") from error
        agent.reset()
        return float(np.mean(returns))

    def checkpoint(self, agent: Agent) -> None:
        def save(path: Path) -> None:
            agent.save(path)
            self.hooks.save(path)
            atomic_write_text(path / RUN_STATE, json.dumps({"oracle_return": self.oracle,
                                                            "evaluations": self.evaluations,
                                                            "config": config_to_dict(self.config)}))
        save_agent_checkpoint(save, self.agent_dir, agent=type(agent).__name__)

    def close(self) -> None:
        self.env.close()
        if self.eval_env is not None:
            self.eval_env.close()

    def wall_s(self) -> float:
        return self.wall_offset + time.perf_counter() - self.start

    # ------------------------------------------------------------------ the end
    def task_quality(self) -> dict[str, dict[str, float]]:
        """The learned reward's and termination's held-out figures over the run
        (:data:`~forethought.models.task_model.QUALITY_KEYS`: the last and the mean of the fits
        that measured them), for the ones this agent logs and measured."""
        out = {}
        for key in QUALITY_KEYS:
            values = [row[key] for row in self.rows if row.get(key) is not None]
            if values:
                out[key] = {"last": values[-1], "mean": float(np.mean(values)), "fits": len(values)}
        return out

    def summary(self, agent: Agent, run: RunDir) -> dict[str, Any]:
        c = self.config
        evaluated = [r for r in self.rows if r["eval_return"] is not None]
        points = [(r["env_steps"], r["eval_return"]) for r in evaluated] if c.eval_every is not None else \
                 [(r["env_steps"], r["return"]) for r in self.rows]
        steps, curve = [s for s, _ in points], [v for _, v in points]
        target = c.target if c.target is not None else (None if self.oracle is None
                                                         else fraction_of(self.oracle, c.oracle_fraction))
        reached = next((s for s, v in points if target is not None and v >= target), None)
        plot_learning_curve(curve, run.plots / "learning_curve.png", oracle=self.oracle, x=steps,
                            xlabel="real environment steps", title=f"{self.algo} on {c.env}")
        if self.frames:
            write_gif(self.frames, run.path / "videos" / "last_episode.gif",
                      fps=self.env.metadata.get("render_fps", 10) / c.action_repeat)  # one frame per action
        wall = self.wall_s()
        return {"algo": self.algo, "env": c.env, "seed": c.seed, "episodes": len(agent.history),
                "env_steps": agent.env_steps, "learning_curve": "eval_return" if c.eval_every is not None else "return",
                "final_return": curve[-1] if curve else None, "best_return": max(curve) if curve else None,
                "final_train_return": agent.history[-1].total_reward if agent.history else None,
                "oracle_return": self.oracle, "target_return": target,
                "target_source": "target" if c.target is not None else
                                 (None if target is None else f"{c.oracle_fraction:g} of the oracle's return"),
                "steps_to_target": reached, "task_quality": self.task_quality(),
                **self.hooks.summary(run.path, run.plots),
                "s_per_1000_env_steps": 1000.0 * wall / max(agent.env_steps, 1), "wall_s": wall}


def start_run(algo: str, config: RunConfig, callback: Callable[[dict], None] | None = None, overwrite: bool = False,
              resume: bool = False, warn: Callable[[str], None] | None = None,
              info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``forethought run <algo>`` with ``config`` and return its summary; ``callback`` sees
    every metrics row. With ``resume`` the run already in ``config.out`` continues from its last
    good checkpoint (``warn`` hears about damaged ones); the episodes after it are run again, so
    the metrics come out as those of an uninterrupted run (timings aside). A run killed before
    its first checkpoint starts over. ``info``: more fields for a new run's ``run.json`` (e.g. its preset)."""
    if not isinstance(config, run_config_class(algo)):
        raise TypeError(f"forethought run {algo} needs a {run_config_class(algo).__name__}, got {type(config).__name__}")
    if config.out is None:
        config = dataclasses.replace(config, out=f"runs/{algo}")
    job = _Run(algo, config, callback, warn)
    lock = RunLock(config.out) if resume else None  # held from before the checkpoint is read
    try:
        checkpoint = _checkpoint_to_resume(job.agent_dir, warn, job.spec.agent.__name__) if resume else None
        if checkpoint is not None:
            state = read_json(checkpoint / RUN_STATE, "run state")
            changes = check_resume_config(config.out, config, saved=state["config"])
            agent = job.restore(checkpoint, state)
            if changes.keys() & set(RUN_BUDGET_KEYS) and job.done(agent):
                limits = ", ".join(f"{key}={getattr(config, key)}" for key in RUN_BUDGET_KEYS if getattr(config, key))
                raise RunDirError(f"{config.out} has already taken {agent.env_steps} environment steps in "
                                  f"{len(agent.history)} episodes, which {limits} does not go beyond: give a "
                                  f"larger budget to continue it")
            run = RunDir(config.out, config, resume_rows=len(agent.history), purge_step=agent.env_steps + 1,
                         lock=lock)
            if changes:  # a longer budget (or a moved folder): a later resume continues with it
                save_config(config, run.path / "config.yaml")
            job.rows = [_typed(row) for row in run.kept_rows]
            job.wall_offset = job.rows[-1]["wall_s"] if job.rows else 0.0
        else:
            agent = job.new_agent()  # every setting is checked here, before the run directory exists
            job.oracle = oracle_return(config, job.hooks.oracle_config())
            layout = observation_layout(job.env)  # where each part of a Dict/Tuple observation went
            info = {**(info or {}), "device": device_name(agent.device)}
            if layout is not None:
                info = {**(info or {}), "observation_layout": layout}
            run = RunDir(config.out, config, overwrite=overwrite or resume, command=f"run {algo}", lock=lock,
                         info=info)
    except BaseException:
        if lock is not None:
            lock.release()
        job.close()
        raise
    with run:
        job.loop(agent, run)
        summary = job.summary(agent, run)
        run.write_summary(summary)
    job.close()
    return summary


def _checkpoint_to_resume(folder: Path, warn, agent: str) -> Path | None:
    """The last good checkpoint, or None when the run never wrote one (it starts over)."""
    candidates = [folder.with_name(folder.name + suffix) for suffix in ("", ".new", ".old")]
    if not any(c.exists() for c in candidates):
        return None
    return latest_agent_checkpoint(folder, warn, agent=agent)


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """A metrics row read back from ``metrics.csv``, numbers as numbers (empty: None)."""
    def value(key: str, text: str) -> Any:
        if text == "":
            return None
        if text in ("True", "False"):
            return text == "True"
        return int(text) if key in ("episode", "env_steps") else float(text)
    return {key: value(key, text) for key, text in row.items()}


__all__ = ["ALGORITHMS", "CheckpointError", "fraction_of", "make_env", "oracle_return", "start_run"]
