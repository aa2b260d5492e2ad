"""The ``forethought`` command: a table of subcommands and their options, each option a config key.

Every subcommand's options become ``key=value`` config overrides (the explicit ``key=value``
arguments after them win), so a command line, a ``--config`` YAML file and a sweep file all set
the same config.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Callable

from forethought.cli import help as texts
from forethought.cli.handlers import (ablate_command, compare_command, compare_models_command, evaluate_command,
                                      fit_model_command, report_command, resume_command, run_command, sweep_command)
from forethought.experiments.backends import BACKENDS, RunsFailed
from forethought.experiments.run_config import RUN_ALGOS
from forethought.models.config import MODEL_KINDS
from forethought.serialization import CheckpointError

MODEL_CHOICES = MODEL_KINDS


@dataclass(frozen=True)
class Option:
    """One command-line option: its flag, argparse settings, and the config key it sets (None:
    the handler reads it itself). ``listed`` options are comma-separated lists in the config."""

    flag: str
    help: str
    key: str | None = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    switch: bool = False
    listed: bool = False


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    description: str
    handler: Callable[[argparse.Namespace, list[str]], int]
    options: tuple[Option, ...] = ()
    positional: tuple[tuple[str, dict], ...] = ()
    run_options: bool = True  # --out, --config, --overwrite and key=value overrides
    default_out: str = ""


def _out(default: str) -> Option:
    return Option("--out", f"run directory to write (default {default})", "out")


ENV = Option("--env", "environment: linear, cartpole-swingup, pendulum-swingup or a Gymnasium id", "env")
SEED = Option("--seed", "the run's seed (every random stream derives from it; default 0)", "seed", int)
BACKEND = Option("--backend", "where the runs run: local processes (default), Ray tasks, or this process",
                 "backend", choices=BACKENDS)
WORKERS = Option("--workers", "runs side by side (default 1)", "workers", int)
PRESET = Option("--preset", "the task preset under your settings: auto (the env's, if one is shipped; default), "
                            "none, or a preset's name (an env id)", "preset")
JOB_OPTIONS = (ENV, Option("--steps", "random-action transitions to collect for training (default 5000)", "steps", int),
               Option("--data", "fit on logged transitions from this .npz instead of collecting", "data"),
               Option("--seed", "seed for data collection, splits and training (default 0)", "seed", int),
               Option("--quiet", "no live progress display", switch=True))

COMMANDS = (
    Command("fit-model", "learn a dynamics model and report its quality", texts.FIT_MODEL_HELP, fit_model_command,
            (Option("--model", "linear-Gaussian, deterministic MLP, probabilistic MLP, ensembles of either, "
                               "MC dropout, or last-layer Laplace (default pe)", "model.kind",
                    choices=MODEL_CHOICES), *JOB_OPTIONS),
            default_out="runs/fit-model"),
    Command("compare-models", "fit several model types on the same data and compare them", texts.COMPARE_HELP,
            compare_models_command,
            (Option("--models", f"comma-separated kinds from {','.join(MODEL_CHOICES)} (default all)", "models",
                    listed=True), *JOB_OPTIONS), default_out="runs/compare-models"),
    Command("run", "learn to control an environment with an agent", texts.RUN_HELP, run_command,
            (ENV, Option("--pixels", "learn from 64x64 images (planet and dreamer always do; the others learn "
                                     "from states)", switch=True),
             Option("--steps", "budget in real environment steps, action repeats counted", "steps", int),
             Option("--episodes", "budget in episodes (PETS: trials, random ones included)", "episodes", int),
             Option("--trials", "pets: the same as --episodes", "episodes", int), SEED, PRESET),
            positional=(("algo", {"choices": RUN_ALGOS, "help": "the agent to run"}),), default_out="runs/<algo>"),
    Command("ablate", "PETS over model types x propagation modes x seeds", texts.ABLATE_HELP, ablate_command,
            (Option("--env", "environment (default cartpole-swingup)", "env"),
             Option("--models", "comma-separated kinds from d,p,de,pe,dropout,laplace (default d,p,de,pe)",
                    "models", listed=True),
             Option("--propagation", "comma-separated modes from ts1,tsinf,expectation,all-members "
                                     "(default ts1,tsinf,expectation)", "propagations", listed=True),
             Option("--seeds", "seeds per variant (default 3)", "seeds", int),
             Option("--trials", "trials per run (default 10)", "trials", int), BACKEND, WORKERS),
            default_out="runs/ablate"),
    Command("compare", "several algorithms x seeds: learning curves and sample efficiency",
            texts.COMPARE_ALGOS_HELP, compare_command,
            (Option("--env", "environment (default InvertedPendulum-v5)", "env"),
             Option("--algos", "comma-separated from pets,sac,dyna,mbpo,guided (default pets,mbpo,sac)", "algos", listed=True),
             Option("--seeds", "seeds per algorithm (default 5)", "seeds", int),
             Option("--steps", "real environment steps per run (default 20000)", "steps", int),
             Option("--target", "return whose first reaching is counted in real steps", "target", float),
             BACKEND, WORKERS, PRESET), default_out="runs/compare"),
    Command("resume", "continue a run that was stopped or killed", texts.RESUME_HELP, resume_command,
            (Option("--env", "the run's environment id, required to allow a module:Id id read back from the "
                             "run directory (its module is imported)", None),
             Option("--steps", "continue to this many real environment steps (a finished run goes on)", "steps", int),
             Option("--episodes", "continue to this many episodes (PETS: trials)", "episodes", int),
             Option("--trials", "pets: the same as --episodes", "episodes", int)),
            positional=(("run_dir", {"metavar": "RUN_DIR", "help": "the run directory to continue"}),),
            run_options=False),
    Command("evaluate", "play a run's saved agent for more evaluation episodes", texts.EVALUATE_HELP,
            evaluate_command,
            (Option("--episodes", "evaluation episodes to play (default 10)", None, int),
             Option("--env", "the run's environment id, required to allow a module:Id id read back from the "
                             "run directory (its module is imported)", None),
             Option("--device", "where the agent acts: cpu, cuda or auto (default the run's own)", None)),
            positional=(("run_dir", {"metavar": "RUN_DIR", "help": "the run directory whose agent to play"}),),
            run_options=False),
    Command("report", "one Markdown/HTML report from many run directories", texts.REPORT_HELP, report_command,
            (Option("--title", "the report's title (default forethought report)"),),
            positional=(("runs", {"nargs": "+", "metavar": "RUN_DIR",
                                  "help": "run directories (or a compare/ablate/sweep folder)"}),),
            run_options=False),
    Command("sweep", "many runs from a sweep file (grid, random, seeds), local or on Ray", texts.SWEEP_HELP,
            sweep_command,
            (BACKEND, Option("--workers", "runs side by side (default: the file's, else 2)", "workers", int),
             Option("--quiet", "no live progress table", switch=True)),
            positional=(("sweep_file", {"metavar": "CONFIG.yaml", "help": "the sweep file"}),),
            default_out="runs/sweep"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forethought", description=texts.DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.summary, description=command.description,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        for name, settings in command.positional:
            sub.add_argument(name, **settings)
        for option in command.options:
            _add_option(sub, option)
        if command.name == "report":
            sub.add_argument("--out", default="report", help="folder to write report.md, report.html, plots/ "
                                                             "(default report)")
        if command.run_options:
            _add_option(sub, _out(command.default_out))
            sub.add_argument("--config", help="YAML file with config values")
            sub.add_argument("--overwrite", action="store_true",
                             help="write into --out even if it holds a run (its old outputs are removed first)")
        sub.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
        sub.set_defaults(handler=command.handler, table=command)
    return parser


def _add_option(parser: argparse.ArgumentParser, option: Option) -> None:
    dest = option.flag.lstrip("-").replace("-", "_")
    if option.switch:
        parser.add_argument(option.flag, dest=dest, action="store_true", help=option.help)
    else:
        parser.add_argument(option.flag, dest=dest, type=option.type, choices=option.choices, help=option.help)


def config_overrides(args: argparse.Namespace) -> list[str]:
    """The config overrides of a command line: its options that set config keys (those given),
    then the explicit ``key=value`` arguments (which win)."""
    overrides = []
    for option in args.table.options + ((_out(args.table.default_out),) if args.table.run_options else ()):
        value = getattr(args, option.flag.lstrip("-").replace("-", "_"), None)
        if option.key is not None and value is not None:
            overrides.append(f"{option.key}=[{value}]" if option.listed else f"{option.key}={value}")
    return overrides + list(args.overrides)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may follow the options too (argparse only collects them before)
    args, extra = parser.parse_known_args(argv)
    stray = [item for item in extra if item.startswith("-") or "=" not in item]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = list(getattr(args, "overrides", [])) + extra
    try:
        return args.handler(args, config_overrides(args))
    except (ValueError, OSError, CheckpointError, RunsFailed) as err:
        print(f"forethought {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split())


def _version() -> str:
    from forethought import __version__

    return f"forethought {__version__}"


__all__ = ["COMMANDS", "build_parser", "config_overrides", "main"]
