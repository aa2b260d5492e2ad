"""What differs per algorithm in a ``forethought run``: small hooks the one run loop calls.

:class:`RunHooks` does nothing; :class:`PETSHooks` measures the oracle with the run's own planner
and reports the planning cost; :class:`PixelHooks` keeps the evaluation episodes as held-out
data and writes the latent world model's open-loop diagnostics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from forethought.agents.base import Agent
from forethought.agents.pets import PETSConfig
from forethought.data.env_loop import Recorder
from forethought.data.sequences import SequenceBuffer
from forethought.evaluation.latent import imagination_throughput, open_loop_report, prediction_pairs, prediction_strip
from forethought.evaluation.plots import plot_compounding_error
from forethought.experiments.media import write_gif, write_png
from forethought.seeding import generator


class RunHooks:
    """The per-algorithm parts of a run, given its config, agent and evaluation environment."""

    def __init__(self, config: Any, agent: Agent, eval_env: Any) -> None:
        self.config, self.agent, self.eval_env = config, agent, eval_env

    def oracle_config(self) -> PETSConfig:
        """The planner settings the oracle reference plans with (PETS defaults)."""
        return PETSConfig()

    def eval_recorder(self) -> Recorder | None:
        """What stores the evaluation episodes (None: nothing)."""
        return None

    def save(self, folder: Path) -> None:
        """Write the hooks' own state beside the agent's checkpoint."""

    def load(self, folder: Path) -> None:
        """Read what :meth:`save` wrote."""

    def summary(self, run_path: Path, plots: Path) -> dict[str, Any]:
        """Algorithm-specific figures for ``summary.json`` (and their plots)."""
        return {}


class PETSHooks(RunHooks):
    """PETS: the oracle plans with the agent's own planner; summary adds the planning cost."""

    def oracle_config(self) -> PETSConfig:
        return self.config.agent

    def summary(self, run_path: Path, plots: Path) -> dict[str, Any]:
        costs = [r.info.get("plan_ms_per_step") for r in self.agent.history]
        costs = [c for c in costs if c is not None]
        return {"plan_ms_per_step": float(np.mean(costs)) if costs else None}


HELD_OUT, HELD_OUT_CAPACITY = "held_out.npz", 10_000


class PixelHooks(RunHooks):
    """PlaNet and Dreamer: the evaluation episodes become held-out sequences (saved with each
    checkpoint); the summary adds the open-loop prediction error by horizon, the filtered reward
    error, and training and imagination throughput, with ``plots/open_loop.png``,
    ``plots/reward_error.png`` and ``videos/open_loop.gif``."""

    def __init__(self, config: Any, agent: Agent, eval_env: Any) -> None:
        super().__init__(config, agent, eval_env)
        self.held_out = SequenceBuffer(eval_env.observation_space.shape, agent.action_dim, capacity=HELD_OUT_CAPACITY)

    def eval_recorder(self) -> Recorder:
        return self.agent.recorder(self.held_out)

    def save(self, folder: Path) -> None:
        self.held_out.save(folder / HELD_OUT)

    def load(self, folder: Path) -> None:
        self.held_out = SequenceBuffer.load(folder / HELD_OUT, capacity=HELD_OUT_CAPACITY)

    def summary(self, run_path: Path, plots: Path) -> dict[str, Any]:
        config, agent, held_out = self.config, self.agent, self.held_out
        diagnostics: dict[str, Any] = {}
        length = min(config.open_loop_length, held_out.episode_lengths[-1]) if len(held_out) else 0
        if length > config.open_loop_context:
            batch = held_out.sample(4, length, generator(config.seed, "open_loop"))
            report = open_loop_report(agent.model, batch, config.open_loop_context)
            write_png(prediction_strip(report, every=max(1, length // 12)), plots / "open_loop.png")
            write_gif(prediction_pairs(report), run_path / "videos" / "open_loop.gif", fps=10)
            plot_compounding_error({"mean |reward error|": report.reward_abs_error}, plots / "reward_error.png",
                                   title="Latent rollout reward error vs horizon (held-out)", ylabel="|r_hat - r|")
            diagnostics = {
                "held_out_reward_abs_error_by_horizon": report.reward_abs_error.astype(float).round(4).tolist(),
                "held_out_frame_mse_by_horizon": report.frame_mse.astype(float).round(5).tolist(),
                "held_out_reward_mse_filtered": self._filtered_reward_mse()}
        train_s = sum(r.info.get("train_s", 0.0) for r in agent.history)
        updates = agent.model.updates
        return {**diagnostics, "world_model_updates": updates,
                "train_updates_per_s": updates / train_s if train_s > 0 else None,
                "imagined_steps_per_s": imagination_throughput(agent.model)}

    @torch.no_grad()
    def _filtered_reward_mse(self) -> float:
        """Mean squared reward error of the model filtering the last held-out episode (one step ahead)."""
        episode = self.held_out.episode(-1)
        states, _, _ = self.agent.model.observe(episode.obs, episode.action, episode.is_first)
        error = (self.agent.model.reward(states.features) - episode.reward)[:, 1:]
        return float(error.pow(2).mean())
