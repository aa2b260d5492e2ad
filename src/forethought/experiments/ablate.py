"""``forethought ablate``: PETS over a grid of model types x propagation modes x seeds.

The experiment of the PETS paper: which ingredients (probabilistic outputs, ensembles, trajectory
sampling) matter. Writes ``metrics.csv`` (one row per variant, seed and trial), ``ablation.md``
(final and best return per variant, mean and standard deviation over seeds) and
``plots/return_vs_trial.png`` (mean return per trial, one line per variant, shaded min-max over
seeds).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from matplotlib.figure import Figure

from forethought import envs
from forethought.agents.pets import PETS, PETSConfig
from forethought.evaluation.plots import save_figure
from forethought.experiments.run_dir import RunDir
from forethought.planning import PROPAGATIONS
from forethought.serialization import atomic_write_text

ABLATION_MODELS = ("d", "p", "de", "pe")


@dataclass
class AblateConfig:
    """Grid of ``models`` x ``propagations`` x ``seeds`` PETS runs of ``trials`` trials each; every
    other setting comes from ``agent``."""

    env: str = "cartpole-swingup"
    env_kwargs: dict = field(default_factory=dict)
    models: list[str] = field(default_factory=lambda: list(ABLATION_MODELS))
    propagations: list[str] = field(default_factory=lambda: ["ts1", "tsinf", "expectation"])
    seeds: int = 3
    trials: int = 10
    out: str = "runs/ablate"
    agent: PETSConfig = field(default_factory=PETSConfig)

    def __post_init__(self) -> None:
        if not self.models or any(m not in ABLATION_MODELS for m in self.models):
            raise ValueError(f"models must be a non-empty list drawn from {ABLATION_MODELS}, got {self.models}")
        if not self.propagations or any(p not in PROPAGATIONS for p in self.propagations):
            raise ValueError(f"propagations must be a non-empty list drawn from {list(PROPAGATIONS)}, "
                             f"got {self.propagations}")
        if self.seeds < 1 or self.trials < 1:
            raise ValueError(f"seeds and trials must be >= 1, got seeds={self.seeds}, trials={self.trials}")


def variant_config(base: PETSConfig, model: str, propagation: str, seed: int) -> PETSConfig:
    """``base`` with the model kind, propagation mode and seed of one grid cell."""
    return dataclasses.replace(base, model=dataclasses.replace(base.model, kind=model),
                               planner=dataclasses.replace(base.planner, propagation=propagation), seed=seed)


def ablate(config: AblateConfig, on_run: Callable[[str, int, list[float]], None] | None = None,
           overwrite: bool = False) -> dict[str, Any]:
    """Run the grid; ``on_run(variant, seed, returns)`` after each PETS run. Returns the summary."""
    start = time.perf_counter()
    curves: dict[str, list[list[float]]] = {}
    with RunDir(config.out, config, overwrite=overwrite, command="ablate") as run:
        step = 0
        for model, propagation in itertools.product(config.models, config.propagations):
            variant = f"{model}-{propagation}"
            curves[variant] = []
            for seed in range(config.seeds):
                torch.manual_seed(seed)
                agent = PETS(envs.make(config.env, **config.env_kwargs),
                             variant_config(config.agent, model, propagation, seed))
                history = agent.learn(config.trials)
                returns = [r.total_reward for r in history]
                curves[variant].append(returns)
                for r in history:
                    run.log({"variant": variant, "seed": seed, "trial": r.trial, "env_steps": r.env_steps,
                             "return": r.total_reward, "wall_s": time.perf_counter() - start}, step=step)
                    step += 1
                if on_run is not None:
                    on_run(variant, seed, returns)
        table = summarize(curves)
        atomic_write_text(run.path / "ablation.md", markdown(table, config))
        plot_curves(curves, run.plots / "return_vs_trial.png", title=f"PETS ablation on {config.env}")
        summary = {"env": config.env, "trials": config.trials, "seeds": config.seeds, "variants": table,
                   "wall_s": time.perf_counter() - start}
        run.write_summary(summary)
    return summary


def summarize(curves: dict[str, list[list[float]]]) -> dict[str, dict[str, float]]:
    """Final and best return per variant: mean and standard deviation over seeds."""
    table = {}
    for variant, runs in curves.items():
        returns = np.asarray(runs)
        final, best = returns[:, -1], returns.max(axis=1)
        table[variant] = {"final_mean": float(final.mean()), "final_std": float(final.std()),
                          "best_mean": float(best.mean()), "best_std": float(best.std())}
    return table


def markdown(table: dict[str, dict[str, float]], config: AblateConfig) -> str:
    lines = [f"PETS ablation on {config.env}: {config.trials} trials, {config.seeds} seeds "
             "(mean ± std over seeds)", "", "| variant | final return | best return |", "|---|---:|---:|"]
    for variant, row in table.items():
        lines.append(f"| {variant} | {row['final_mean']:.2f} ± {row['final_std']:.2f} | "
                     f"{row['best_mean']:.2f} ± {row['best_std']:.2f} |")
    return "\n".join(lines) + "\n"


def plot_curves(curves: dict[str, list[list[float]]], path, title: str) -> None:
    """Mean return per trial for each variant, shaded between the seeds' min and max."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for variant, runs in curves.items():
        returns = np.asarray(runs)
        trials = np.arange(returns.shape[1])
        line, = ax.plot(trials, returns.mean(axis=0), marker=".", label=variant)
        ax.fill_between(trials, returns.min(axis=0), returns.max(axis=0), color=line.get_color(), alpha=0.15)
    ax.set_xlabel("trial")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
