"""``forethought ablate``: PETS over a grid of model types x propagation modes x seeds.

The experiment of the PETS paper: which ingredients (probabilistic outputs, ensembles, trajectory
sampling) matter. Every run is a ``run pets`` into its own run directory
(``runs/<model>-<propagation>-seed<k>/``), on ``backend`` like ``compare``'s runs (local processes
by default, ``workers`` side by side; Ray; or this process), each resumed from its checkpoint
after a crash. Then the ablation's folder gets ``metrics.csv`` (one row per variant, seed and
trial), ``ablation.md`` (final and best return per variant, mean and standard deviation over
seeds) and ``plots/return_vs_trial.png`` (mean return per trial, one line per variant, shaded
min-max over seeds).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from matplotlib.figure import Figure

from forethought.agents.pets import PETSConfig
from forethought.config import config_to_dict
from forethought.evaluation.plots import save_figure
from forethought.experiments.backends import Job, check_backend, run_study
from forethought.experiments.run_dir import RunDir
from forethought.experiments.run_config import PETSRunConfig
from forethought.planning import PROPAGATIONS
from forethought.serialization import atomic_write_text

ABLATION_MODELS = ("d", "p", "de", "pe", "dropout", "laplace")
PETS_PAPER_MODELS = ("d", "p", "de", "pe")  # the default grid: the PETS paper's four models


@dataclass
class AblateConfig:
    """Grid of ``models`` x ``propagations`` x ``seeds`` PETS runs of ``trials`` trials each; every
    other setting comes from ``agent``."""

    env: str = "cartpole-swingup"
    env_kwargs: dict = field(default_factory=dict)
    models: list[str] = field(default_factory=lambda: list(PETS_PAPER_MODELS))
    propagations: list[str] = field(default_factory=lambda: ["ts1", "tsinf", "expectation"])
    seeds: int = 3
    trials: int = 10
    backend: str = "process"
    workers: int = 1
    retries: int = 2
    ray_address: str | None = None
    out: str = "runs/ablate"
    agent: PETSConfig = field(default_factory=PETSConfig)

    def __post_init__(self) -> None:
        if not self.models or any(m not in ABLATION_MODELS for m in self.models):
            raise ValueError(f"models must be a non-empty list drawn from {ABLATION_MODELS}, got {self.models}")
        if not self.propagations or any(p not in PROPAGATIONS for p in self.propagations):
            raise ValueError(f"propagations must be a non-empty list drawn from {list(PROPAGATIONS)}, "
                             f"got {self.propagations}")
        for name in ("seeds", "trials"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_backend(self.backend, self.workers, self.retries)


def variant_config(base: PETSConfig, model: str, propagation: str) -> PETSConfig:
    """``base`` with the model kind and propagation mode of one grid cell."""
    return dataclasses.replace(base, model=dataclasses.replace(base.model, kind=model),
                               planner=dataclasses.replace(base.planner, propagation=propagation))


def ablate(config: AblateConfig, on_run: Callable[[str, int, list[float]], None] | None = None,
           overwrite: bool = False) -> dict[str, Any]:
    """Run the grid; ``on_run(variant, seed, returns)`` after each PETS run. Returns the summary."""
    start = time.perf_counter()
    variants = [f"{m}-{p}" for m, p in itertools.product(config.models, config.propagations)]
    cells: dict[str, tuple[str, int]] = {}  # run name -> (variant, seed)
    jobs = []
    for model, propagation, seed in itertools.product(config.models, config.propagations, range(config.seeds)):
        variant, name = f"{model}-{propagation}", f"{model}-{propagation}-seed{seed}"
        run = PETSRunConfig(env=config.env, env_kwargs=config.env_kwargs, episodes=config.trials, seed=seed,
                            out=str(Path(config.out) / "runs" / name), oracle_episodes=0, video=False,
                            agent=variant_config(config.agent, model, propagation))
        cells[name] = (variant, seed)
        jobs.append(Job(name, "pets", config_to_dict(run)))
    histories: dict[tuple[str, int], list[dict[str, str]]] = {}

    def done(job: Job, summary: dict[str, Any]) -> None:
        with open(Path(job.config["out"]) / "metrics.csv", newline="", encoding="utf-8") as handle:
            histories[cells[job.name]] = list(csv.DictReader(handle))
        if on_run is not None:
            on_run(*cells[job.name], [float(r["return"]) for r in histories[cells[job.name]]])

    with RunDir(config.out, config, overwrite=overwrite, command="ablate") as run:
        run_study(jobs, config.backend, config.workers, config.retries, done, config.ray_address)
        curves: dict[str, list[list[float]]] = {variant: [] for variant in variants}
        step = 0
        for variant, seed in cells.values():
            rows = histories[(variant, seed)]
            curves[variant].append([float(r["return"]) for r in rows])
            for r in rows:
                run.log({"variant": variant, "seed": seed, "trial": int(r["episode"]), "env_steps": int(r["env_steps"]),
                         "return": float(r["return"]), "wall_s": float(r["wall_s"])}, step=step)
                step += 1
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
