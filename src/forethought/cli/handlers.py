"""What each ``forethought`` subcommand does with its parsed arguments and config overrides."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from forethought.cli.printing import fit_summary_table, row_line, summary_line
from forethought.console import make_console


def fit_model_command(args: argparse.Namespace, overrides: list[str]) -> int:
    from forethought.config import load_config
    from forethought.experiments.fit_model import FitModelConfig, fit_model

    config = load_config(FitModelConfig, args.config, overrides)
    summary = fit_model(config, progress=not args.quiet, overwrite=args.overwrite)
    console = make_console()
    console.print(fit_summary_table(summary, config))
    fit = summary["fit"]
    console.print(f"trained {fit['epochs']} epochs (best {fit['best_epoch']}), {summary['wall_s']:.1f} s; "
                  f"{summary['improvement_over_baseline']:.1f}x lower one-step error than the baseline")
    if fit["message"]:
        console.print(f"[yellow]{fit['message']}[/yellow]")
    console.print(f"run directory: {config.out}")
    return 0


def compare_models_command(args: argparse.Namespace, overrides: list[str]) -> int:
    from rich.table import Table

    from forethought.config import load_config
    from forethought.experiments.compare_models import CompareModelsConfig, compare_models

    config = load_config(CompareModelsConfig, args.config, overrides)
    summary = compare_models(config, progress=not args.quiet, overwrite=args.overwrite)
    table = Table(title=f"{summary['env']}: {summary['train_transitions']} training / "
                        f"{summary['held_out_transitions']} held-out transitions")
    columns = ("one_step_mse", f"{config.horizon}_step_mse", "one_step_nll", "coverage_1sigma", "fit_s")
    table.add_column("model")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for kind, row in summary["models"].items():
        table.add_row(kind, *("n/a" if row[c] is None else f"{row[c]:.4g}" for c in columns))
    console = make_console()
    console.print(table)
    console.print(f"run directory: {config.out} (comparison.md, plots/compounding_error.png)")
    return 0


def run_command(args: argparse.Namespace, overrides: list[str]) -> int:
    from forethought.experiments.presets import describe, resolve_run_config, run_info, split_choice
    from forethought.experiments.run import ALGORITHMS, start_run

    if args.pixels and not ALGORITHMS[args.algo].pixels:
        raise ValueError(f"{args.algo} learns from states; --pixels is for "
                         + " and ".join(a for a, spec in ALGORITHMS.items() if spec.pixels))
    choice, overrides = split_choice(overrides)
    config, preset = resolve_run_config(args.algo, args.config, overrides, choice)
    console = make_console()
    console.print(describe(preset), markup=False)
    summary = start_run(args.algo, config, callback=lambda row: console.print(row_line(row)),
                        overwrite=args.overwrite, warn=lambda message: console.print(f"warning: {message}"),
                        info=run_info(preset))
    console.print(summary_line(summary))
    console.print(f"run directory: {summary_out(config, args.algo)}")
    return 0


def summary_out(config: Any, algo: str) -> str:
    return config.out if config.out is not None else f"runs/{algo}"


def resume_command(args: argparse.Namespace, overrides: list[str]) -> int:
    from forethought.experiments.resume import resume_run

    console = make_console()
    summary = resume_run(args.run_dir, callback=lambda row: console.print(row_line(row)),
                         warn=lambda message: print(f"forethought resume: {message}", file=sys.stderr), env=args.env,
                         budget=overrides)
    console.print(summary_line(summary))
    console.print(f"run directory: {args.run_dir}")
    return 0


def evaluate_command(args: argparse.Namespace, overrides: list[str]) -> int:
    from forethought.experiments.evaluate import evaluate_run

    if overrides:
        raise ValueError(f"evaluate takes no config overrides, got {' '.join(overrides)}")
    console = make_console()
    result = evaluate_run(args.run_dir, 10 if args.episodes is None else args.episodes, env=args.env,
                          device=args.device, on_episode=lambda k, r: console.print(f"episode {k}: return {r:.1f}"),
                          warn=lambda message: print(f"forethought evaluate: {message}", file=sys.stderr))
    console.print(f"{result['algo']} on {result['env']} after {result['env_steps']} environment steps: mean return "
                  f"{result['mean_return']:.1f} (std {result['std_return']:.1f}) over {result['episodes']} episodes")
    return 0


def report_command(args: argparse.Namespace, overrides: list[str]) -> int:
    from forethought.experiments.report import build_report

    if overrides:
        raise ValueError(f"report takes no config overrides, got {' '.join(overrides)}")
    report = build_report(args.runs, args.out, title=args.title or "forethought report")
    print(f"{len(report.runs)} runs in {len(report.groups)} groups: {report.markdown_path} and {report.html_path}")
    return 0


def ablate_command(args: argparse.Namespace, overrides: list[str]) -> int:
    from forethought.config import load_config
    from forethought.experiments.ablate import AblateConfig, ablate

    config = load_config(AblateConfig, args.config, overrides)
    console, start = make_console(), time.perf_counter()

    def line(variant: str, seed: int, returns: list[float]) -> None:
        console.print(f"{variant:16s} seed {seed}  final {returns[-1]:9.2f}  best {max(returns):9.2f}  "
                      f"elapsed {time.perf_counter() - start:7.1f} s")

    ablate(config, on_run=line, overwrite=args.overwrite)
    console.print((Path(config.out) / "ablation.md").read_text())
    console.print(f"run directory: {config.out}")
    return 0


def compare_command(args: argparse.Namespace, overrides: list[str]) -> int:
    from forethought.experiments.compare import CompareConfig, compare
    from forethought.experiments.presets import describe, resolve_compare_config

    config, presets = resolve_compare_config(CompareConfig, args.config, overrides)
    console, start = make_console(), time.perf_counter()
    console.print(describe(presets), markup=False)

    def line(result) -> None:
        console.print(f"{result.algo:5s} seed {result.seed}  final return {result.returns[-1]:9.2f}  "
                      f"best {max(result.returns):9.2f}  real steps {result.steps[-1]:7d}  "
                      f"{result.s_per_1000_steps:6.1f} s per 1000 steps  elapsed {time.perf_counter() - start:7.1f} s")

    compare(config, on_run=line, overwrite=args.overwrite)
    print((Path(config.out) / "compare.md").read_text())
    console.print(f"run directory: {config.out}")
    return 0


def sweep_command(args: argparse.Namespace, overrides: list[str]) -> int:
    from forethought.experiments.presets import describe_runs
    from forethought.experiments.sweep import sweep
    from forethought.experiments.sweep_spec import load_sweep, resolve_runs

    config = load_sweep(args.sweep_file, overrides)
    print(describe_runs([run.preset for run in resolve_runs(config)]))
    summary = sweep(config, progress=not args.quiet, overwrite=args.overwrite)
    print((Path(config.out) / "sweep.md").read_text())
    print(f"sweep folder: {config.out}")
    return 0 if summary["failed"] == 0 else 1
