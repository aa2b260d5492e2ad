"""The fit-model job: collect (or load) transitions, train a dynamics model, measure it, write a run.

    summary = fit_model(FitModelConfig(env="cartpole-swingup", steps=5000, out="runs/x"))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forethought import envs
from forethought.data import ReplayBuffer, collect, load_npz
from forethought.data.offline import npz_env_id, save_transitions
from forethought.device import check_device, device_name, resolve_device
from forethought.envs.coordinates import env_coordinates
from forethought.evaluation import (calibration, one_step_error, plot_compounding_error,
                                    plot_predicted_trajectories, rollout_error)
from forethought.experiments.run_dir import RunDir
from forethought.models import ConstantDelta, DynamicsModel
from forethought.models.config import ModelConfig, TrainConfig, build_model
from forethought.seeding import derive_seed

@dataclass
class FitModelConfig:
    """``forethought fit-model``: data source, model, training, evaluation and output folder.

    With ``data`` unset, ``steps`` random-action transitions are collected for training and
    ``eval_steps`` more, from separate episodes, for held-out evaluation; with ``data`` set, the
    last ``holdout`` fraction of its episodes is held out instead. ``num_envs`` > 1 collects from
    that many copies of the environment, sharing the budget (see :func:`~forethought.data.collect`).
    ``device`` (``cpu``, ``cuda`` or ``auto``) is where the model trains; the saved model holds
    CPU tensors either way.
    """

    env: str = "cartpole-swingup"
    env_kwargs: dict = field(default_factory=dict)
    steps: int = 5000
    eval_steps: int = 1000
    num_envs: int = 1
    data: str | None = None
    holdout: float = 0.2
    horizon: int = 10
    seed: int = 0
    out: str = "runs/fit-model"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("steps", "eval_steps", "horizon", "num_envs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_device(self.device)


def load_data(config: FitModelConfig, progress: bool) -> tuple[ReplayBuffer, ReplayBuffer]:
    """Training and held-out evaluation buffers."""
    if config.data is not None:
        return load_npz(config.data).split_episodes(config.holdout)
    copies = [envs.make(config.env, **config.env_kwargs) for _ in range(config.num_envs)]
    try:
        train = collect(copies, config.steps, seed=config.seed, progress=progress)
        held_out = collect(copies, config.eval_steps, seed=derive_seed(config.seed, "held_out"), progress=progress)
    finally:
        for env in copies:
            env.close()
    return train, held_out


def data_env(config: FitModelConfig) -> tuple[str, str]:
    """The environment the transitions come from and how that is known: ``"collected"`` (from
    ``config.env``), ``"data"`` (the id the ``--data`` file records) or ``"config"`` (the file
    records none: ``config.env`` is assumed)."""
    if config.data is None:
        return config.env, "collected"
    recorded = npz_env_id(config.data)
    return (recorded, "data") if recorded is not None else (config.env, "config")


def longest_episode(buffer: ReplayBuffer) -> int:
    """Number of transitions in the buffer's longest episode."""
    bounds = np.append(buffer.episode_starts(), len(buffer))
    return int(np.diff(bounds).max())


def evaluate(model: DynamicsModel, held_out: ReplayBuffer, horizon: int) -> dict[str, Any]:
    """Held-out one-step error, open-loop error over ``horizon`` steps and calibration."""
    one_step = one_step_error(model, held_out)
    rollout = rollout_error(model, held_out, horizon)
    calib = calibration(model, held_out.all())
    return {"one_step": one_step, "rollout": rollout, "calibration": calib}


def fit_model(config: FitModelConfig, progress: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run the whole job and return the summary (also written to ``summary.json``).

    ``summary.json`` and ``run.json`` record the environment the transitions came from
    (``env``, ``env_source``: see :func:`data_env`, and the ``data`` file), and the saved
    ``data.npz`` carries it as ``env_id``, so a model started from this run can be checked
    against the environment it is used in."""
    torch.manual_seed(config.seed)  # libraries below take explicit generators; this pins anything else
    start = time.perf_counter()
    train, held_out = load_data(config, progress)
    env, env_source = data_env(config)
    device = resolve_device(config.device)
    model = build_model(config.model, config.train, train.obs_dim, train.act_dim, progress=progress,
                        coordinates=env_coordinates(env)).to(device)
    source = {"env": env, "env_source": env_source, "data": config.data}
    info = {**source, "device": device_name(device)}
    with RunDir(config.out, config, overwrite=overwrite, command="fit-model", info=info) as run:
        save_transitions(train, run.path / "data.npz", env_id=env)
        report = model.fit(train, generator=torch.Generator(device).manual_seed(config.seed))
        for epoch, train_loss in enumerate(report.train_loss):
            val = report.val_loss[epoch] if epoch < len(report.val_loss) else float("nan")
            run.log({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val}, step=epoch + 1)
        model.save(run.checkpoints / "model")
        baseline = ConstantDelta(train.obs_dim, train.act_dim)
        baseline.fit(train)
        with torch.no_grad():
            results = evaluate(model, held_out, config.horizon)
            baseline_results = evaluate(baseline, held_out, config.horizon)
        plot_compounding_error({config.model.kind: results["rollout"]["mse_per_step"],
                                "constant-delta baseline": baseline_results["rollout"]["mse_per_step"]},
                               run.plots / "compounding_error.png")
        plot_predicted_trajectories(model, held_out, run.plots / "predicted_trajectories.png",
                                    horizon=min(config.horizon * 3, 30, longest_episode(held_out)))
        summary = {**summarize(config, model, report, results, baseline_results, len(train), len(held_out),
                               time.perf_counter() - start), **source}
        run.write_summary(summary)
    return summary


def summarize(config: FitModelConfig, model: DynamicsModel, report, results: dict, baseline: dict,
              n_train: int, n_held_out: int, wall_s: float) -> dict[str, Any]:
    """The figures ``summary.json`` holds."""
    one_step_mse = results["one_step"]["mse"]
    baseline_mse = baseline["one_step"]["mse"]
    calib = results["calibration"]
    return {
        "env": config.env, "model": config.model.kind, "train_transitions": n_train,
        "held_out_transitions": n_held_out,
        "one_step_mse": one_step_mse,
        "one_step_mse_per_dim": results["one_step"]["mse_per_dim"],
        "one_step_normalized_mse": results["one_step"]["normalized_mse"],
        "baseline_one_step_normalized_mse": baseline["one_step"]["normalized_mse"],
        "one_step_nll": results["one_step"]["nll"],
        f"{config.horizon}_step_mse": results["rollout"]["mse_per_step"][-1],
        "rollout_mse_by_horizon": results["rollout"]["mse_per_step"],
        "baseline_one_step_mse": baseline_mse,
        f"baseline_{config.horizon}_step_mse": baseline["rollout"]["mse_per_step"][-1],
        "improvement_over_baseline": baseline_mse / one_step_mse if one_step_mse > 0 else float("inf"),
        "coverage_1sigma": calib["coverage_1sigma"],
        "coverage_2sigma": calib["coverage_2sigma"],
        "disagreement_error_spearman": calib["spearman_disagreement_error"],
        "fit": {"epochs": report.epochs, "best_epoch": report.best_epoch, "best_val_loss": report.best_val_loss,
                "stopped_early": report.stopped_early, "nonfinite": report.nonfinite, "message": report.message},
        "wall_s": wall_s,
        "checkpoint": str(Path(config.out) / "checkpoints" / "model"),
    }
