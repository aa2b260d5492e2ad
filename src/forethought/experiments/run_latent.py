"""``forethought run planet|dreamer --pixels``: learn to control an environment from 64x64 images.

Writes to the run directory: ``metrics.csv`` (one row per collected episode: ``episode,
env_steps, return, eval_return`` (every ``eval_every`` episodes), the world-model loss parts
(``reconstruction, reward_mse, kl, ...``), Dreamer's actor/critic losses, ``act_ms_per_step,
wall_s``), TensorBoard events of the same, the agent in ``checkpoints/agent/`` every
``checkpoint_every`` episodes and at the end (with the held-out evaluation episodes and the
run's own counters, swapped in atomically: ``forethought resume`` continues from it), ``summary.json``
(final and best evaluation return, the state-based oracle planner's return and steps to 70 % of
it, held-out reward prediction error, training and imagination throughput, seconds per 1,000 real
steps), ``plots/learning_curve.png``, ``plots/reward_error.png`` (held-out reward error per step
of latent rollout), ``plots/open_loop.png`` (held-out frames above the model's
open-loop prediction) with ``videos/open_loop.gif``, and ``videos/last_episode.gif``.
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

from forethought.agents.dreamer import Dreamer, DreamerConfig
from forethought.agents.latent import LatentAgent, LatentEpisodeResult
from forethought.agents.planet import PlaNet, PlaNetConfig
from forethought.data.sequences import SequenceBuffer
from forethought.envs.pixels import make_pixel_env
from forethought.evaluation.latent import imagination_throughput, open_loop_report, prediction_pairs, prediction_strip
from forethought.evaluation.plots import plot_compounding_error
from forethought.experiments.checkpoints import latest_agent_checkpoint, save_agent_checkpoint
from forethought.experiments.media import plot_learning_curve, write_gif, write_png
from forethought.experiments.run_dir import RunDir
from forethought.experiments.run_pets import RunPETSConfig, fraction_of, oracle_return
from forethought.serialization import atomic_write_text

ORACLE_FRACTION = 0.7
LOSS_COLUMNS = ("loss", "reconstruction", "reward_mse", "continue_bce", "kl")
DREAMER_COLUMNS = ("actor_loss", "critic_loss", "imagined_return", "entropy")
HELD_OUT, HELD_OUT_CAPACITY = "held_out.npz", 10_000  # the evaluation episodes, saved with the agent
RUN_STATE = "run_state.json"  # the run's own counters, saved with the agent


@dataclass
class RunLatentConfig:
    """A pixel run: environment, image size, action repeat, real-step budget, evaluation.

    ``steps`` counts the environment's own steps (action repeats included); the run ends after
    the episode that reaches it. Every ``eval_every`` collected episodes the agent acts without
    exploration for ``eval_episodes`` episodes in a separate copy of the environment (those
    episodes are not trained on; the last one is the held-out data of the open-loop diagnostics).
    ``oracle_episodes`` episodes of the PETS oracle planner on the true state give the reference
    return (our own environments; 0 skips it)."""

    env: str = "pendulum-swingup"
    env_kwargs: dict = field(default_factory=dict)
    image_size: int = 64
    action_repeat: int = 2
    steps: int = 50_000
    eval_every: int = 5
    eval_episodes: int = 1
    checkpoint_every: int = 10
    oracle_episodes: int = 1
    open_loop_context: int = 5
    open_loop_length: int = 50
    seed: int = 0
    out: str = "runs/latent"

    def __post_init__(self) -> None:
        for name in ("action_repeat", "steps", "eval_every", "eval_episodes", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 1 <= self.open_loop_context < self.open_loop_length:
            raise ValueError(f"need 1 <= open_loop_context < open_loop_length, got {self.open_loop_context}, "
                             f"{self.open_loop_length}")


@dataclass
class RunPlaNetConfig(RunLatentConfig):
    out: str = "runs/planet"
    agent: PlaNetConfig = field(default_factory=PlaNetConfig)


@dataclass
class RunDreamerConfig(RunLatentConfig):
    out: str = "runs/dreamer"
    agent: DreamerConfig = field(default_factory=DreamerConfig)


RUN_CONFIGS = {"planet": RunPlaNetConfig, "dreamer": RunDreamerConfig}
AGENTS: dict[str, type[LatentAgent]] = {"planet": PlaNet, "dreamer": Dreamer}


def evaluate(agent: LatentAgent, env, episodes: int, seed: int, held_out: SequenceBuffer) -> list[float]:
    """Returns of ``episodes`` episodes without exploration; their frames go to ``held_out``."""
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        held_out.start_episode(obs)
        agent.reset()
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
            held_out.add_step(agent.last_action, reward, obs, terminated)
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return returns


def run_latent(algo: str, config: RunLatentConfig, on_episode: Callable[[dict], None] | None = None,
               overwrite: bool = False, resume: bool = False, warn: Callable[[str], None] | None = None
               ) -> dict[str, Any]:
    """Run the whole job for ``algo`` (``planet`` or ``dreamer``); ``on_episode`` sees every metrics row.

    With ``resume`` the run already in ``config.out`` continues from its last good checkpoint
    (``warn`` hears when a damaged one was passed over); the episodes after it are collected
    again, so the metrics come out as those of an uninterrupted run (timings aside)."""
    if algo not in AGENTS:
        raise ValueError(f"algo must be one of {sorted(AGENTS)}, got {algo!r}")
    start = time.perf_counter()
    make = lambda: make_pixel_env(config.env, config.image_size, config.action_repeat, **config.env_kwargs)  # noqa: E731
    env, eval_env = make(), make()
    columns = ["episode", "env_steps", "return", "eval_return", *LOSS_COLUMNS,
               *(DREAMER_COLUMNS if algo == "dreamer" else ()), "act_ms_per_step", "wall_s"]
    agent_dir = Path(config.out) / "checkpoints" / "agent"
    if resume:
        checkpoint = latest_agent_checkpoint(agent_dir, warn)
        agent = AGENTS[algo].load(checkpoint, env)
        held_out = SequenceBuffer.load(checkpoint / HELD_OUT, capacity=HELD_OUT_CAPACITY)
        saved = json.loads((checkpoint / RUN_STATE).read_text(encoding="utf-8"))
        oracle, train_s = saved["oracle_return"], saved["train_s"]
        run = RunDir(config.out, config, resume_rows=len(agent.history), purge_step=agent.env_steps + 1)
        evaluations = [(int(r["env_steps"]), float(r["eval_return"])) for r in run.kept_rows if r["eval_return"]]
        start -= float(run.kept_rows[-1]["wall_s"]) if run.kept_rows else 0.0
    else:
        agent_config = dataclasses.replace(config.agent, seed=config.seed,
                                           model=dataclasses.replace(config.agent.model, image_size=config.image_size,
                                                                     seed=config.seed))
        agent = AGENTS[algo](env, agent_config)
        held_out = SequenceBuffer(eval_env.observation_space.shape, agent.action_dim, capacity=HELD_OUT_CAPACITY)
        run = RunDir(config.out, config, overwrite=overwrite, command=f"run {algo}")
        oracle = oracle_return(RunPETSConfig(env=config.env, env_kwargs=config.env_kwargs,
                                             oracle_episodes=config.oracle_episodes, seed=config.seed))
        evaluations, train_s = [], 0.0

    def checkpoint() -> None:
        def save(path: Path) -> None:
            agent.save(path)
            held_out.save(path / HELD_OUT)
            atomic_write_text(path / RUN_STATE, json.dumps({"oracle_return": oracle, "train_s": train_s}))
        save_agent_checkpoint(save, agent_dir)

    with run:
        frames: list[np.ndarray] = []
        while agent.env_steps < config.steps:
            filmed: list[list[np.ndarray]] = []  # the frames are the observations: keeping them is free
            result: LatentEpisodeResult = agent.learn(1, callback=lambda _, f: filmed.append(f), render_last=True)[0]
            frames = filmed[0]
            train_s += result.train_s
            eval_return = None
            if (result.episode + 1) % config.eval_every == 0 or agent.env_steps >= config.steps:
                eval_return = float(np.mean(evaluate(agent, eval_env, config.eval_episodes,
                                                     100_000 + 100 * result.episode, held_out)))
                evaluations.append((agent.env_steps, eval_return))
            values = {"episode": result.episode, "env_steps": result.env_steps, "return": result.total_reward,
                      "eval_return": eval_return, "act_ms_per_step": result.act_ms_per_step,
                      "wall_s": time.perf_counter() - start}
            row = {k: values[k] if k in values else result.train.get(k) for k in columns}
            run.log(row, step=result.env_steps)
            if on_episode is not None:
                on_episode(row)
            if (result.episode + 1) % config.checkpoint_every == 0:
                checkpoint()
        if frames:
            write_gif(frames, run.path / "videos" / "last_episode.gif", fps=10)
        checkpoint()
        summary = _summary(algo, config, agent, evaluations, oracle, held_out, run, train_s, start)
        run.write_summary(summary)
    env.close(), eval_env.close()
    return summary


def _summary(algo: str, config: RunLatentConfig, agent: LatentAgent, evaluations: list[tuple[int, float]],
             oracle: float | None, held_out: SequenceBuffer, run: RunDir, train_s: float, start: float) -> dict[str, Any]:
    steps, returns = [s for s, _ in evaluations], [r for _, r in evaluations]
    target = None if oracle is None else fraction_of(oracle, ORACLE_FRACTION)
    reached = next((s for s, r in evaluations if target is not None and r >= target), None)
    plot_learning_curve(returns, run.plots / "learning_curve.png", oracle=oracle, x=steps, xlabel="environment steps",
                        title=f"{algo} from pixels on {config.env}")
    diagnostics: dict[str, Any] = {}
    length = min(config.open_loop_length, held_out.episode_lengths[-1])
    if length > config.open_loop_context:
        batch = held_out.sample(4, length, torch.Generator().manual_seed(config.seed))
        report = open_loop_report(agent.model, batch, config.open_loop_context)
        write_png(prediction_strip(report, every=max(1, length // 12)), run.plots / "open_loop.png")
        write_gif(prediction_pairs(report), run.path / "videos" / "open_loop.gif", fps=10)
        plot_compounding_error({"mean |reward error|": report.reward_abs_error}, run.plots / "reward_error.png",
                               title="Latent rollout reward error vs horizon (held-out)", ylabel="|r_hat - r|")
        diagnostics = {"held_out_reward_abs_error_by_horizon": report.reward_abs_error.astype(float).round(4).tolist(),
                       "held_out_frame_mse_by_horizon": report.frame_mse.astype(float).round(5).tolist(),
                       "held_out_reward_mse_filtered": _filtered_reward_mse(agent, held_out)}
    updates = agent.model.updates
    return {"algo": algo, "env": config.env, "episodes": len(agent.history), "env_steps": agent.env_steps,
            "final_eval_return": returns[-1] if returns else None, "best_eval_return": max(returns) if returns else None,
            "oracle_return": oracle, "target_return_70pct_oracle": target, "steps_to_70pct_oracle": reached,
            **diagnostics, "world_model_updates": updates,
            "train_updates_per_s": updates / train_s if train_s > 0 else None,
            "imagined_steps_per_s": imagination_throughput(agent.model),
            "s_per_1000_env_steps": 1000.0 * (time.perf_counter() - start) / max(agent.env_steps, 1),
            "wall_s": time.perf_counter() - start}


@torch.no_grad()
def _filtered_reward_mse(agent: LatentAgent, held_out: SequenceBuffer) -> float:
    """Mean squared reward error of the model filtering the last held-out episode (one step ahead)."""
    episode = held_out.episode(-1)
    states, _, _ = agent.model.observe(episode.obs, episode.action, episode.is_first)
    error = (agent.model.reward(states.features) - episode.reward)[:, 1:]
    return float(error.pow(2).mean())
