"""``forethought compare``: several algorithms x several seeds on one environment, on one budget of
real steps, and the statistics that say how much real data each one needs.

Every run writes its own run directory (``runs/<algo>-seed<k>/``, the same as ``forethought run``
writes). The learning curve of a run is its return against real steps: its evaluation returns
where the algorithm's runs evaluate (SAC, Dyna and MBPO, every ``eval_every`` steps), else the
returns of its training episodes (PETS: each trial, planned without exploration noise). Then, in
the comparison's own folder:

    curves.csv           algo, seed, env_steps, return: every point of every run
    compare.md           per algorithm: final return (IQM and mean over seeds, 95 % bootstrap
                         interval), real steps to ``target`` per seed, how many times as many steps
                         each algorithm needs as the most sample-efficient one (with an interval),
                         seconds per 1,000 real steps
    plots/compare.png    IQM return vs real steps, one line per algorithm, shaded 95 % interval
    summary.json         the same figures

With ``push_at`` and ``push_velocity``, every run's final agent is also pushed mid-episode
(:mod:`forethought.evaluation.disturbance`) in ``push_episodes`` episodes, and the report says how
many pushes each algorithm survived and how many steps it took to recover.

The runs go to ``backend`` (:mod:`~forethought.experiments.backends`): local processes by
default, ``workers`` side by side (each run then uses one torch thread, so that two runs on two
cores do not fight over them), Ray tasks with ``backend: ray``, or one after another in this
process with ``sequential``. A run whose process dies or that raises is resumed from its last
checkpoint up to ``retries`` times.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from forethought import envs
from forethought.agents import AGENTS, DynaConfig, GuidedMPCConfig, MBPOConfig, PETSConfig, SACConfig
from forethought.evaluation.disturbance import Push, PushResult, push_recovery
from forethought.evaluation.plots import plot_seed_curves
from forethought.evaluation.statistics import (bootstrap_interval, efficiency_ratio,
                                               steps_to_threshold)
from forethought.config import build, config_to_dict, set_value
from forethought.experiments.backends import Job, check_backend, run_study
from forethought.experiments.presets import check_choice, compare_layers, compare_presets, run_info
from forethought.experiments.run_dir import RunDir
from forethought.experiments.run_config import RUN_CONFIGS
from forethought.seeding import derive_seed
from forethought.serialization import atomic_write_text

ALGOS = ("pets", "sac", "dyna", "mbpo", "guided")
Curve = tuple[list[int], list[float]]


@dataclass
class CompareConfig:
    """Which algorithms, how many seeds, what budget of real steps; each algorithm's settings
    come from its own section (``pets``, ``sac``, ``dyna``, ``mbpo``, ``guided``), over the task
    preset of each (``preset``: auto, none or a preset's name; see
    :mod:`~forethought.experiments.presets`)."""

    env: str = "InvertedPendulum-v5"
    env_kwargs: dict = field(default_factory=dict)
    algos: list[str] = field(default_factory=lambda: ["pets", "mbpo", "sac"])
    seeds: int = 5
    steps: int = 20_000
    eval_every: int = 1000
    eval_episodes: int = 5
    target: float | None = None
    backend: str = "process"
    workers: int = 1
    retries: int = 2
    ray_address: str | None = None
    push_at: int | None = None
    push_velocity: list[float] | None = None
    push_episodes: int = 3
    out: str = "runs/compare"
    preset: str = "auto"
    pets: PETSConfig = field(default_factory=PETSConfig)
    sac: SACConfig = field(default_factory=SACConfig)
    dyna: DynaConfig = field(default_factory=DynaConfig)
    mbpo: MBPOConfig = field(default_factory=MBPOConfig)
    guided: GuidedMPCConfig = field(default_factory=GuidedMPCConfig)

    def __post_init__(self) -> None:
        unknown = [a for a in self.algos if a not in ALGOS]
        if not self.algos or unknown or len(set(self.algos)) != len(self.algos):
            raise ValueError(f"algos must be distinct names from {list(ALGOS)}, got {self.algos}")
        if (self.push_at is None) != (self.push_velocity is None):
            raise ValueError("push_at and push_velocity go together: give both to test disturbance recovery, or neither")
        for name in ("seeds", "steps", "eval_every", "eval_episodes", "push_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_backend(self.backend, self.workers, self.retries)
        check_choice(self.preset)


@dataclass
class RunResult:
    """One algorithm on one seed: its learning curve, seconds per 1,000 real steps, run folder."""

    algo: str
    seed: int
    steps: list[int]
    returns: list[float]
    s_per_1000_steps: float
    path: str
    pushes: list[PushResult] = field(default_factory=list)


def run_job(config: CompareConfig, algo: str, seed: int) -> Job:
    """The run of ``algo`` with ``seed``, into ``<out>/runs/<algo>-seed<seed>``: the comparison's
    budget of real steps, evaluated every ``eval_every`` steps where the algorithm's runs evaluate,
    with the run settings of its preset that the comparison does not set itself."""
    name = f"{algo}-seed{seed}"
    cls = RUN_CONFIGS[algo]
    evaluates = cls.__dataclass_fields__["eval_every"].default is not None
    run = cls(env=config.env, env_kwargs=config.env_kwargs, steps=config.steps, episodes=None,
              eval_every=config.eval_every if evaluates else None, eval_episodes=config.eval_episodes,
              target=config.target, seed=seed, out=str(Path(config.out) / "runs" / name), oracle_episodes=0,
              video=False, agent=getattr(config, algo))
    presets = compare_presets(config)
    values = config_to_dict(run)
    for key, value in compare_layers(type(config), presets)[1][algo].items():
        set_value(cls, values, key, value)
    return Job(name, algo, config_to_dict(build(cls, values)), run_info(presets[algo]))


def learning_curve(rows: list[dict[str, str]]) -> Curve:
    """``(env_steps, returns)`` of a run's metrics rows: its evaluations where it has any, else
    its training episodes."""
    key = "eval_return" if any(r.get("eval_return") for r in rows) else "return"
    points = [(int(r["env_steps"]), float(r[key])) for r in rows if r.get(key)]
    return [s for s, _ in points], [v for _, v in points]


def read_result(config: CompareConfig, algo: str, seed: int, summary: dict[str, Any]) -> RunResult:
    """The learning curve of a finished run, read back from its run directory."""
    out = Path(config.out) / "runs" / f"{algo}-seed{seed}"
    with open(out / "metrics.csv", newline="", encoding="utf-8") as f:
        steps, returns = learning_curve(list(csv.DictReader(f)))
    return RunResult(algo, seed, steps, returns, 1000 * summary["wall_s"] / max(summary["env_steps"], 1), str(out))


def push_tests(config: CompareConfig, algo: str, agent_path: Path, seed: int) -> list[PushResult]:
    """The saved final agent of one run, pushed in ``push_episodes`` episodes (rewards not kept)."""
    env = envs.make(config.env, **config.env_kwargs)
    agent = AGENTS[algo].load(agent_path, env)
    push = Push(at_step=config.push_at, velocity=list(config.push_velocity))
    results = []
    for episode in range(config.push_episodes):
        agent.reset()
        result = push_recovery(env, lambda obs: agent.act(obs, deterministic=True), push,
                               seed=derive_seed(seed, "push", episode))
        result.rewards = []
        results.append(result)
    return results


def compare(config: CompareConfig, on_run: Callable[[RunResult], None] | None = None,
            overwrite: bool = False) -> dict[str, Any]:
    """Run every algorithm on every seed, then write the comparison. Returns the summary."""
    start = time.perf_counter()
    jobs = [run_job(config, algo, seed) for seed in range(config.seeds) for algo in config.algos]
    finished: dict[str, RunResult] = {}

    def done(job: Job, summary: dict[str, Any]) -> None:
        finished[job.name] = read_result(config, job.command, job.config["seed"], summary)
        if on_run is not None:
            on_run(finished[job.name])

    with RunDir(config.out, config, overwrite=overwrite, command="compare") as run:
        run_study(jobs, config.backend, config.workers, config.retries, done, config.ray_address)
        results = [finished[job.name] for job in jobs]
        if config.push_at is not None:
            for result in results:
                result.pushes = push_tests(config, result.algo, Path(result.path) / "checkpoints" / "agent",
                                           result.seed)
        for step, result in enumerate(results):
            run.log({"algo": result.algo, "seed": result.seed, "final_return": result.returns[-1],
                     "env_steps": result.steps[-1], "s_per_1000_steps": result.s_per_1000_steps}, step=step)
        write_curves(results, run.path / "curves.csv")
        summary = summarize(results, config)
        summary["wall_s"] = time.perf_counter() - start
        atomic_write_text(run.path / "compare.md", markdown(summary, config))
        plot_comparison(results, config, run.plots / "compare.png")
        run.write_summary(summary)
    return summary


def write_curves(results: list[RunResult], path: Path) -> None:
    lines = ["algo,seed,env_steps,return"]
    lines += [f"{r.algo},{r.seed},{s},{v!r}" for r in results for s, v in zip(r.steps, r.returns)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def summarize(results: list[RunResult], config: CompareConfig) -> dict[str, Any]:
    """Per algorithm: final return (IQM, mean, interval), steps to target per seed and their
    median, seconds per 1,000 steps; and the step ratio of each algorithm to the most efficient."""
    table: dict[str, dict[str, Any]] = {}
    for algo in config.algos:
        runs = [r for r in results if r.algo == algo]
        final = [r.returns[-1] for r in runs]
        interval = bootstrap_interval(final, "iqm")
        row = {"final_iqm": interval.point, "final_low": interval.low, "final_high": interval.high,
               "final_mean": float(np.mean(final)), "seeds": len(runs),
               "s_per_1000_steps": float(np.median([r.s_per_1000_steps for r in runs]))}
        if config.target is not None:
            reached = [steps_to_threshold(r.steps, r.returns, config.target) for r in runs]
            row["steps_to_target"] = reached
            row["reached"] = sum(s is not None for s in reached)
            # a run that never reached the target counts as its whole budget: a lower bound
            row["steps_to_target_bounded"] = [s if s is not None else config.steps for s in reached]
            row["median_steps_to_target"] = float(np.median(row["steps_to_target_bounded"]))
        pushes = [p for r in runs for p in r.pushes]
        if pushes:
            recovered = [p.recovery_steps for p in pushes if p.recovery_steps is not None]
            row["pushes"] = len(pushes)
            row["pushes_survived"] = sum(p.survived for p in pushes)
            row["pushes_recovered"] = len(recovered)
            row["median_recovery_steps"] = float(np.median(recovered)) if recovered else None
        table[algo] = row
    summary: dict[str, Any] = {"env": config.env, "steps": config.steps, "seeds": config.seeds,
                               "target": config.target, "algos": table}
    if config.target is not None:
        best = min(config.algos, key=lambda a: table[a]["median_steps_to_target"])
        summary["most_efficient"] = best
        for algo in config.algos:
            ratio = efficiency_ratio(table[algo]["steps_to_target_bounded"], table[best]["steps_to_target_bounded"])
            table[algo]["steps_ratio_to_best"] = dataclasses.asdict(ratio)
    return summary


def markdown(summary: dict[str, Any], config: CompareConfig) -> str:
    target = summary["target"]
    lines = [f"# {', '.join(config.algos)} on {config.env}",
             "", f"{config.seeds} seeds, {config.steps} real steps each. Final return: interquartile mean over "
                 "seeds [95 % bootstrap interval] and mean."]
    header = "| algorithm | final return, IQM [95 % CI] | mean | s per 1000 steps |"
    rule = "|---|---:|---:|---:|"
    if target is not None:
        header += f" seeds reaching {target:g} | real steps to {target:g} per seed | median | steps vs {summary['most_efficient']} |"
        rule += "---:|---|---:|---:|"
    lines += ["", header, rule]
    for algo, row in summary["algos"].items():
        line = (f"| {algo} | {row['final_iqm']:.1f} [{row['final_low']:.1f}, {row['final_high']:.1f}] | "
                f"{row['final_mean']:.1f} | {row['s_per_1000_steps']:.1f} |")
        if target is not None:
            per_seed = ", ".join(str(s) if s is not None else f">{config.steps}" for s in row["steps_to_target"])
            ratio = row["steps_ratio_to_best"]
            line += (f" {row['reached']}/{row['seeds']} | {per_seed} | {row['median_steps_to_target']:.0f} | "
                     f"{ratio['point']:.1f}x [{ratio['low']:.1f}, {ratio['high']:.1f}] |")
        lines.append(line)
    if config.push_at is not None:
        lines += ["", f"Pushes: velocity {list(config.push_velocity)} added at step {config.push_at} of "
                      f"{config.push_episodes} episodes per run, final agents.", "",
                  "| algorithm | survived | recovered | median steps to recover |", "|---|---:|---:|---:|"]
        for algo, row in summary["algos"].items():
            steps = row["median_recovery_steps"]
            lines.append(f"| {algo} | {row['pushes_survived']}/{row['pushes']} | {row['pushes_recovered']}/{row['pushes']} "
                         f"| {'n/a' if steps is None else f'{steps:.0f}'} |")
    if target is not None:
        lines += ["", f"A run that never reached {target:g} counts as its whole budget ({config.steps} steps), "
                      "so its ratio is a lower bound."]
    return "\n".join(lines) + "\n"


def plot_comparison(results: list[RunResult], config: CompareConfig, path: os.PathLike) -> None:
    """IQM return vs real steps per algorithm, shaded between the bootstrap interval's ends."""
    curves = {algo: [(r.steps, r.returns) for r in results if r.algo == algo] for algo in config.algos}
    plot_seed_curves(curves, path, title=f"{config.env}: {config.seeds} seeds", target=config.target,
                     last_step=config.steps)
