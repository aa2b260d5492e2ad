"""The compare-models job: fit several model types on the same data and measure them side by side.

Every model sees the same training transitions and is scored on the same held-out episodes, so
the compounding-error curves in ``plots/compounding_error.png`` are directly comparable.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from forethought.evaluation import plot_compounding_error
from forethought.envs.coordinates import env_coordinates
from forethought.experiments.fit_model import FitModelConfig, build_model, data_env, evaluate, load_data
from forethought.experiments.run_dir import RunDir
from forethought.models import ConstantDelta, DynamicsModel
from forethought.models.config import MODEL_KINDS
from forethought.serialization import atomic_write_text

BASELINE = "constant"


@dataclass
class CompareModelsConfig(FitModelConfig):
    """``forethought compare-models``: the fit-model settings, for each kind in ``models``
    (``model.kind`` is ignored; the other ``model.*`` and ``train.*`` values apply to all)."""

    models: list[str] = field(default_factory=lambda: list(MODEL_KINDS))
    out: str = "runs/compare-models"

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [kind for kind in self.models if kind not in MODEL_KINDS]
        if unknown or not self.models:
            raise ValueError(f"models must be a non-empty list drawn from {MODEL_KINDS}, got {self.models}")


def _model(config: CompareModelsConfig, kind: str, obs_dim: int, act_dim: int, progress: bool) -> DynamicsModel:
    if kind == BASELINE:
        return ConstantDelta(obs_dim, act_dim)
    return build_model(dataclasses.replace(config.model, kind=kind), config.train, obs_dim, act_dim, progress,
                       coordinates=env_coordinates(data_env(config)[0]))


def compare_models(config: CompareModelsConfig, progress: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Fit each model kind plus the constant-delta baseline; return (and write) the comparison."""
    torch.manual_seed(config.seed)
    train, held_out = load_data(config, progress)
    results: dict[str, dict[str, Any]] = {}
    with RunDir(config.out, config, overwrite=overwrite, command="compare-models") as run:
        train.save(run.path / "data.npz")
        for index, kind in enumerate([*config.models, BASELINE]):
            model = _model(config, kind, train.obs_dim, train.act_dim, progress)
            start = time.perf_counter()
            report = model.fit(train, generator=torch.Generator().manual_seed(config.seed))
            fit_s = time.perf_counter() - start
            model.save(run.checkpoints / kind)
            with torch.no_grad():
                measured = evaluate(model, held_out, config.horizon)
            row = {
                "model": kind,
                "one_step_mse": measured["one_step"]["mse"],
                "one_step_normalized_mse": measured["one_step"]["normalized_mse"],
                f"{config.horizon}_step_mse": measured["rollout"]["mse_per_step"][-1],
                "one_step_nll": measured["one_step"]["nll"],
                "coverage_1sigma": measured["calibration"]["coverage_1sigma"],
                "coverage_2sigma": measured["calibration"]["coverage_2sigma"],
                "disagreement_error_spearman": measured["calibration"]["spearman_disagreement_error"],
                "epistemic_var_sq_error_spearman": measured["calibration"]["spearman_epistemic_var_sq_error"],
                "epochs": report.epochs,
                "fit_s": fit_s,
            }
            run.log(row, step=index)
            results[kind] = {**row, "rollout_mse_by_horizon": measured["rollout"]["mse_per_step"]}
        plot_compounding_error({kind: r["rollout_mse_by_horizon"] for kind, r in results.items()},
                               run.plots / "compounding_error.png")
        atomic_write_text(run.path / "comparison.md", markdown_table(results, config.horizon))
        summary = {"env": config.env, "train_transitions": len(train), "held_out_transitions": len(held_out),
                   "horizon": config.horizon, "models": results}
        run.write_summary(summary)
    return summary


def markdown_table(results: dict[str, dict[str, Any]], horizon: int) -> str:
    """One row per model: held-out one-step and ``horizon``-step MSE, NLL, coverage, the rank
    correlation of epistemic variance with squared error, fit time."""

    def fmt(value: Any) -> str:
        return "–" if value is None else f"{value:.4g}"

    lines = [f"| model | one-step MSE | {horizon}-step MSE | one-step NLL | 1-sigma coverage | "
             f"2-sigma coverage | epistemic var vs squared error (Spearman) | fit s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, r in results.items():
        lines.append(f"| {kind} | {fmt(r['one_step_mse'])} | {fmt(r[f'{horizon}_step_mse'])} | "
                     f"{fmt(r['one_step_nll'])} | {fmt(r['coverage_1sigma'])} | {fmt(r['coverage_2sigma'])} | "
                     f"{fmt(r['epistemic_var_sq_error_spearman'])} | {r['fit_s']:.1f} |")
    return "\n".join(lines) + "\n"
