"""The ``forethought`` command: parses arguments and calls :mod:`forethought.experiments`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from forethought.experiments.backends import BACKENDS, RunsFailed
from forethought.experiments.commands import RUN_ALGOS
from forethought.serialization import CheckpointError

DESCRIPTION = """Model-based reinforcement learning: learn how a system moves from a few real
transitions, measure how good that model is, and plan or train policies inside it."""

FIT_MODEL_HELP = """Collect random-action transitions from an environment (or load logged ones with
--data), fit a dynamics model, and measure it on held-out episodes: one-step error, open-loop
error over --horizon steps, and calibration of the predicted uncertainty, each compared with a
constant-delta baseline. Writes a run directory with config.yaml, metrics.csv (one row per
training epoch), TensorBoard events, checkpoints/model.{safetensors,json}, summary.json and
plots/*.png.

Any config value can be set as key.sub=value after the options, e.g.
  forethought fit-model --env pendulum-swingup model.hidden_size=64 train.lr=3e-4
Precedence: defaults < --config YAML < options < key=value overrides."""

COMPARE_HELP = """Fit several model types (default: linear, d, p, de, pe) and the constant-delta baseline
on the same transitions and score them on the same held-out episodes. Writes a run directory with
metrics.csv (one row per model), comparison.md, summary.json, checkpoints/<kind>.* and
plots/compounding_error.png with one open-loop error curve per model type. Takes the same options
and key.sub=value overrides as fit-model."""

RUN_HELP = """Learn to control an environment from scratch. pets: a random trial, then per trial fit a
probabilistic ensemble on all data and act by planning in it (CEM over 15 steps, trajectory
sampling). Prints one line per trial and writes a run directory with metrics.csv (trial,
env_steps, return, model_val_loss, plan_ms_per_step, wall_s), TensorBoard events, the agent in
checkpoints/agent/, summary.json (final and best return, the oracle planner's return, steps to 90 %
of it), plots/learning_curve.png and a GIF of the last trial in videos/.

Settings are overrides, e.g. agent.planner.horizon=20 agent.planner.settings.population=200
agent.model.ensemble_size=7 agent.planner.propagation=ts1 oracle_episodes=0.

sac, dyna, mbpo: learn a policy for --steps real steps (sac: model-free; dyna: K imagined updates
per real step; mbpo: branched model rollouts and mixed real/imagined SAC updates). Every
eval_every steps the deterministic policy is evaluated; one line per evaluation, and metrics.csv
(env_steps, eval_return, train_return, episodes, wall_s, model_val_loss), TensorBoard events,
checkpoints/agent/, summary.json and plots/learning_curve.png. Overrides e.g. eval_every=500
target=-200 agent.policy_updates=10 agent.sac.batch_size=128.

planet, dreamer (--pixels): learn from 64x64 RGB frames (action_repeat=2 by default) for --steps
environment steps: a latent world model (conv encoder, RSSM, decoder, reward and continue heads)
trained on sequences; planet plans with CEM in its latent space, dreamer trains an actor-critic in
imagination. One line per episode; metrics.csv (episode, env_steps, return, eval_return, loss parts,
act_ms_per_step, wall_s), TensorBoard, checkpoints/agent/, summary.json (oracle return, steps to
70 % of it, held-out reward error, throughput), plots/learning_curve.png, plots/open_loop.png,
videos/open_loop.gif and videos/last_episode.gif. Overrides e.g. agent.model.depth=16
agent.train_steps=50 agent.settings.population=300 action_repeat=4 eval_every=10."""

ABLATE_HELP = """The PETS paper's ablation: run PETS for every model type (--models) and propagation mode
(--propagation) over several seeds, each run into its own run directory OUT/runs/<variant>-seed<k>/
on --backend as compare's runs (process by default, --workers at a time; ray; sequential). Writes
metrics.csv (one row per variant, seed and trial),
ablation.md (final and best return per variant, mean and std over seeds), summary.json and
plots/return_vs_trial.png. Other settings as overrides, e.g. agent.planner.particles=20."""

COMPARE_ALGOS_HELP = """Run several algorithms (pets, sac, dyna, mbpo) on one environment over several seeds with
the same budget of real steps, and measure how much real data each needs. Every run writes its own
run directory under OUT/runs/; then OUT gets curves.csv (every point of every learning curve),
compare.md (final return per algorithm: interquartile mean over seeds with a 95 % bootstrap
interval, and mean; with --target, real steps to reach it per seed and how many times as many steps
each algorithm needs as the most efficient one, with an interval), plots/compare.png (IQM return vs
real steps with shaded intervals) and summary.json. The runs go to --backend: process (default;
--workers N runs N at a time in separate processes), ray (Ray tasks on a local cluster of N CPUs,
or on the cluster at ray_address=auto|ray://host:port) or sequential (this process); a run whose
process dies or that raises is resumed from its last checkpoint, up to retries=2 times. Settings
per algorithm as overrides, e.g. pets.state_cost="{0: 1.0}" pets.model.kind=linear
mbpo.policy_updates=10 sac.hidden_size=64 eval_every=500."""

RESUME_HELP = """Continue a run of forethought run (pets, sac, dyna, mbpo, planet, dreamer) killed at any point
(SIGKILL included) from its last good checkpoint. The agent (models and their optimisers, replay
and model buffers, policy and critics, counters, every random generator's state, history) is
saved atomically with a checksum manifest after every trial (pets), evaluation (sac, dyna, mbpo)
or checkpoint_every episodes (planet, dreamer); a damaged checkpoint is passed over for the
previous one, with a message. An unfinished episode is replayed into the environment and the steps
after the checkpoint are taken again, so metrics.csv ends up as that of an uninterrupted run (bit
for bit on CPU, timings aside)."""

REPORT_HELP = """Read run directories (of run, fit-model, compare-models; for a compare OUT, give the runs
under OUT/runs/, or OUT itself) and write OUT/report.md and OUT/report.html: final and best return
per algorithm and environment over seeds (interquartile mean, 95 % bootstrap interval), learning
curves per environment (plots/curves_<env>.png), the model diagnostics each run recorded (one-step
and compounding error, calibration, latent reward error, oracle return), and links to every run's
plots and videos."""

SWEEP_HELP = """Many runs of one forethought run command from a sweep file (YAML): the settings every run
shares (base), a grid of values (every combination), random draws (random: samples, seed, params
with uniform, log_uniform, int_uniform or choice), and seeds. Every run's config is checked before
any run starts. Runs go one after another (--backend sequential), side by side in a local process
pool (process, the default) or as Ray tasks (ray: a one-machine cluster, or ray_address: auto /
ray://host:port in the file), each into OUT/runs/<name>/, with a live table of their progress. A run
that crashes or whose worker dies is resumed from its last checkpoint, up to retries times. OUT gets
sweep.yaml, runs.csv (name, varied values, seed, status, attempts, final and best return, wall_s),
sweep.md and summary.json. Started again on the same OUT, finished runs are kept and the others
resumed. Sweep file values can also be set as key=value, e.g. retries=3 base.trials=5."""

MODEL_CHOICES = ("linear", "d", "p", "de", "pe")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forethought", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = commands.add_parser("fit-model", help="learn a dynamics model and report its quality",
                              description=FIT_MODEL_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("--model", choices=MODEL_CHOICES,
                     help="linear-Gaussian, deterministic MLP, probabilistic MLP, or ensembles of either "
                          "(default pe)")
    _add_job_options(fit, "runs/fit-model")
    fit.set_defaults(handler=_fit_model)

    compare = commands.add_parser("compare-models", help="fit several model types on the same data and compare them",
                                  description=COMPARE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("--models", help=f"comma-separated kinds from {','.join(MODEL_CHOICES)} (default all)")
    _add_job_options(compare, "runs/compare-models")
    compare.set_defaults(handler=_compare_models)
    run = commands.add_parser("run", help="learn to control an environment with an agent",
                              description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("algo", choices=RUN_ALGOS, help="the agent to run")
    run.add_argument("--env", help="environment (default cartpole-swingup for pets, pendulum-swingup for planet and "
                                   "dreamer, Pendulum-v1 otherwise)")
    run.add_argument("--pixels", action="store_true",
                     help="learn from 64x64 images (planet and dreamer always do; the other agents learn from states)")
    run.add_argument("--trials", type=int, help="pets: trials (episodes) to run, random ones included (default 15)")
    run.add_argument("--steps", type=int, help="sac/dyna/mbpo: real environment steps (default 20000); "
                                               "planet/dreamer: environment steps, action repeats counted (default 50000)")
    run.add_argument("--seed", type=int, help="seed (default 0)")
    _add_run_options(run, "runs/<algo>")
    run.set_defaults(handler=_run)

    ablate = commands.add_parser("ablate", help="PETS over model types x propagation modes x seeds",
                                 description=ABLATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    ablate.add_argument("--env", help="environment (default cartpole-swingup)")
    ablate.add_argument("--models", help="comma-separated kinds from d,p,de,pe (default all four)")
    ablate.add_argument("--propagation", help="comma-separated modes from ts1,tsinf,expectation,all-members "
                                              "(default ts1,tsinf,expectation)")
    ablate.add_argument("--seeds", type=int, help="seeds per variant (default 3)")
    ablate.add_argument("--trials", type=int, help="trials per run (default 10)")
    ablate.add_argument("--backend", choices=BACKENDS,
                        help="where the runs run: local processes (default), Ray tasks, or this process")
    ablate.add_argument("--workers", type=int, help="runs side by side (default 1)")
    _add_run_options(ablate, "runs/ablate")
    ablate.set_defaults(handler=_ablate)

    versus = commands.add_parser("compare", help="several algorithms x seeds: learning curves and sample efficiency",
                                 description=COMPARE_ALGOS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    versus.add_argument("--env", help="environment (default InvertedPendulum-v5)")
    versus.add_argument("--algos", help="comma-separated from pets,sac,dyna,mbpo (default pets,mbpo,sac)")
    versus.add_argument("--seeds", type=int, help="seeds per algorithm (default 5)")
    versus.add_argument("--steps", type=int, help="real environment steps per run (default 20000)")
    versus.add_argument("--target", type=float, help="return whose first reaching is counted in real steps")
    versus.add_argument("--backend", choices=BACKENDS,
                        help="where the runs run: local processes (default), Ray tasks, or this process")
    versus.add_argument("--workers", type=int, help="runs side by side (default 1)")
    _add_run_options(versus, "runs/compare")
    versus.set_defaults(handler=_compare)

    resume = commands.add_parser("resume", help="continue a run that was stopped or killed",
                                 description=RESUME_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    resume.add_argument("run_dir", metavar="RUN_DIR", help="the run directory to continue")
    resume.set_defaults(handler=_resume)

    report = commands.add_parser("report", help="one Markdown/HTML report from many run directories",
                                 description=REPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (a compare OUT: its runs/*)")
    report.add_argument("--out", default="report", help="folder to write report.md, report.html, plots/ (default report)")
    report.add_argument("--title", default="forethought report")
    report.set_defaults(handler=_report)

    sweep = commands.add_parser("sweep", help="many runs from a sweep file (grid, random, seeds), local or on Ray",
                                description=SWEEP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("sweep_file", metavar="CONFIG.yaml", help="the sweep file")
    sweep.add_argument("--backend", choices=BACKENDS,
                       help="where the runs run (default: the file's, else process)")
    sweep.add_argument("--workers", type=int, help="runs side by side (default: the file's, else 2)")
    sweep.add_argument("--out", help="folder of the sweep (default: the file's, else runs/sweep)")
    sweep.add_argument("--overwrite", action="store_true", help="start every run afresh, replacing OUT/runs/")
    sweep.add_argument("--quiet", action="store_true", help="no live progress table")
    sweep.add_argument("overrides", nargs="*", metavar="key.sub=value", help="sweep file overrides")
    sweep.set_defaults(handler=_sweep)
    return parser


def _add_job_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--env", help="environment: linear, cartpole-swingup, pendulum-swingup or a Gymnasium id "
                                      "(default cartpole-swingup)")
    parser.add_argument("--steps", type=int, help="random-action transitions to collect for training (default 5000)")
    parser.add_argument("--data", help="fit on logged transitions from this .npz instead of collecting")
    parser.add_argument("--seed", type=int, help="seed for data collection, splits and training (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no live progress display")
    _add_run_options(parser, default_out)


def _add_run_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", help=f"run directory to write (default {default_out})")
    parser.add_argument("--config", help="YAML file with config values")
    parser.add_argument("--overwrite", action="store_true", help="write into --out even if it holds a run")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")


def _overrides(args: argparse.Namespace, flags: dict[str, object]) -> list[str]:
    """Config overrides: the options that were given first, then the explicit key=value ones (which win)."""
    return [f"{key}={value}" for key, value in flags.items() if value is not None] + list(args.overrides)


def _job_overrides(args: argparse.Namespace, flags: dict[str, object]) -> list[str]:
    """Overrides of the fit-model / compare-models options plus ``flags``."""
    return _overrides(args, {"env": args.env, "steps": args.steps, "data": args.data, "seed": args.seed,
                             "out": args.out, **flags})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may follow the options too (argparse only collects them before)
    args, extra = parser.parse_known_args(argv)
    stray = [item for item in extra if item.startswith("-") or "=" not in item]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = list(getattr(args, "overrides", [])) + extra
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, FileExistsError, CheckpointError, RunsFailed) as err:
        print(f"forethought {args.command}: error: {err}", file=sys.stderr)
        return 2


def _fit_model(args: argparse.Namespace) -> int:
    from forethought.config import load_config
    from forethought.experiments.fit_model import FitModelConfig, fit_model

    config = load_config(FitModelConfig, args.config, _job_overrides(args, {"model.kind": args.model}))
    summary = fit_model(config, progress=not args.quiet, overwrite=args.overwrite)
    _print_fit_summary(summary, config)
    return 0


def _compare_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from forethought.experiments.compare_models import CompareModelsConfig, compare_models
    from forethought.config import load_config

    models = None if args.models is None else "[" + args.models + "]"
    config = load_config(CompareModelsConfig, args.config, _job_overrides(args, {"models": models}))
    summary = compare_models(config, progress=not args.quiet, overwrite=args.overwrite)
    table = Table(title=f"{summary['env']}: {summary['train_transitions']} training / "
                        f"{summary['held_out_transitions']} held-out transitions")
    columns = ("one_step_mse", f"{config.horizon}_step_mse", "one_step_nll", "coverage_1sigma", "fit_s")
    table.add_column("model")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for kind, row in summary["models"].items():
        table.add_row(kind, *("n/a" if row[c] is None else f"{row[c]:.4g}" for c in columns))
    Console().print(table)
    Console().print(f"run directory: {config.out} (comparison.md, plots/compounding_error.png)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from forethought.config import load_config
    from forethought.experiments.commands import run_config_class, start_run

    if args.pixels and args.algo not in ("planet", "dreamer"):
        raise SystemExit(f"forethought run {args.algo}: learns from states; --pixels is for planet and dreamer")
    if args.algo == "pets":
        if args.steps is not None:
            raise SystemExit("forethought run pets: --steps is for sac/dyna/mbpo; PETS counts --trials")
        flags = {"env": args.env, "trials": args.trials, "seed": args.seed, "out": args.out}
    else:
        if args.trials is not None:
            raise SystemExit(f"forethought run {args.algo}: --trials is for pets; give --steps")
        flags = {"env": args.env, "steps": args.steps, "seed": args.seed, "out": args.out}
    config = load_config(run_config_class(args.algo), args.config, _overrides(args, flags))
    console = Console()
    summary = start_run(args.algo, config, callback=_progress_line(args.algo, console), overwrite=args.overwrite)
    console.print(_summary_line(args.algo, summary))
    console.print(f"run directory: {config.out}" + (" (plots/open_loop.png, videos/)"
                                                     if args.algo in ("planet", "dreamer") else ""))
    return 0


def _progress_line(algo: str, console) -> Any:
    """The live line ``forethought run <algo>`` prints per trial, evaluation or episode."""
    start = time.perf_counter()

    def pets_line(result) -> None:
        loss = "   n/a  " if result.model_val_loss is None else f"{result.model_val_loss:.2e}"
        plan = "  n/a" if result.plan_ms_per_step is None else f"{result.plan_ms_per_step:5.0f}"
        console.print(f"trial {result.trial:3d}  return {result.total_reward:9.2f}  env steps {result.env_steps:6d}  "
                      f"model val loss {loss}  plan {plan} ms/step  elapsed {time.perf_counter() - start:7.1f} s")

    def policy_line(row: dict) -> None:
        loss = row.get("model_val_loss")
        train = "n/a" if row["train_return"] is None else f"{row['train_return']:9.2f}"
        console.print(f"env steps {row['env_steps']:7d}  eval return {row['eval_return']:9.2f}  last episode {train}  "
                      + ("" if algo == "sac" else "model val loss " + ("n/a" if loss is None else f"{loss:.2e}") + "  ")
                      + f"elapsed {row['wall_s']:7.1f} s")

    def latent_line(row: dict) -> None:
        evaluation = "" if row["eval_return"] is None else f"  eval return {row['eval_return']:9.2f}"
        loss = "" if row["reconstruction"] is None else (f"  recon {row['reconstruction']:8.2f}  reward mse "
                                                          f"{row['reward_mse']:.3g}  kl {row['kl']:6.2f}")
        console.print(f"episode {row['episode']:4d}  env steps {row['env_steps']:7d}  return {row['return']:9.2f}"
                      f"{evaluation}{loss}  act {row['act_ms_per_step']:6.1f} ms/step  elapsed {row['wall_s']:7.1f} s")

    return pets_line if algo == "pets" else latent_line if algo in ("planet", "dreamer") else policy_line


def _reached(steps: int | None, unit: str) -> str:
    """``"reached after N <unit>"``, or ``"not reached"`` when ``steps`` is None."""
    return "not reached" if steps is None else f"reached after {steps} {unit}"


def _summary_line(algo: str, summary: dict) -> str:
    """What ``forethought run <algo>`` prints when the run ends."""
    if algo == "pets":
        oracle = summary["oracle_return"]
        return (f"best return {summary['best_return']:.2f}, final {summary['final_return']:.2f}"
                + ("" if oracle is None else f", oracle planner {oracle:.2f}; 90 % of it "
                   f"{_reached(summary['steps_to_90pct_oracle'], 'env steps')}"))
    if algo in ("planet", "dreamer"):
        oracle = summary["oracle_return"]
        return (f"best eval return {summary['best_eval_return']:.2f}" + ("" if oracle is None else
                f", oracle planner {oracle:.2f}; 70 % of it {_reached(summary['steps_to_70pct_oracle'], 'env steps')}")
                + f"; {summary['s_per_1000_env_steps']:.1f} s per 1000 env steps")
    return (f"best eval return {summary['best_eval_return']:.2f}, final {summary['final_eval_return']:.2f}, "
            f"{summary['s_per_1000_steps']:.1f} s per 1000 real steps"
            + ("" if summary["target"] is None else f"; target {summary['target']:g} "
               f"{_reached(summary['steps_to_target'], 'real steps')}"))


def _resume(args: argparse.Namespace) -> int:
    from rich.console import Console

    from forethought.experiments.commands import resume_run, run_algo

    algo, console = run_algo(args.run_dir), Console()
    summary = resume_run(args.run_dir, callback=_progress_line(algo, console),
                         warn=lambda message: print(f"forethought resume: {message}", file=sys.stderr))
    console.print(_summary_line(algo, summary))
    console.print(f"run directory: {args.run_dir}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from forethought.experiments.report import build_report

    runs: list[Path] = []
    for item in args.runs:
        path = Path(item)
        nested = sorted(p for p in (path / "runs").glob("*") if (p / "metrics.csv").is_file())
        runs += nested if not (path / "metrics.csv").is_file() and nested else [path]
    report = build_report(runs, args.out, title=args.title)
    print(f"{len(runs)} runs in {len(report.groups)} groups: {report.markdown_path} and {report.html_path}")
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from forethought.config import load_config
    from forethought.experiments.ablate import AblateConfig, ablate

    flags = {"env": args.env, "seeds": args.seeds, "trials": args.trials, "out": args.out,
             "backend": args.backend, "workers": args.workers,
             "models": None if args.models is None else f"[{args.models}]",
             "propagations": None if args.propagation is None else f"[{args.propagation}]"}
    config = load_config(AblateConfig, args.config, _overrides(args, flags))
    console, start = Console(), time.perf_counter()

    def line(variant: str, seed: int, returns: list[float]) -> None:
        console.print(f"{variant:16s} seed {seed}  final {returns[-1]:9.2f}  best {max(returns):9.2f}  "
                      f"elapsed {time.perf_counter() - start:7.1f} s")

    ablate(config, on_run=line, overwrite=args.overwrite)
    console.print((Path(config.out) / "ablation.md").read_text())
    console.print(f"run directory: {config.out}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from forethought.config import load_config
    from forethought.experiments.compare import CompareConfig, compare

    flags = {"env": args.env, "seeds": args.seeds, "steps": args.steps, "target": args.target,
             "workers": args.workers, "backend": args.backend, "out": args.out,
             "algos": None if args.algos is None else f"[{args.algos}]"}
    config = load_config(CompareConfig, args.config, _overrides(args, flags))
    console, start = Console(), time.perf_counter()

    def line(result) -> None:
        console.print(f"{result.algo:5s} seed {result.seed}  final return {result.returns[-1]:9.2f}  "
                      f"best {max(result.returns):9.2f}  real steps {result.steps[-1]:7d}  "
                      f"{result.s_per_1000_steps:6.1f} s per 1000 steps  elapsed {time.perf_counter() - start:7.1f} s")

    compare(config, on_run=line, overwrite=args.overwrite)
    print((Path(config.out) / "compare.md").read_text())
    console.print(f"run directory: {config.out}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from forethought.experiments.sweep import sweep
    from forethought.experiments.sweep_spec import load_sweep

    config = load_sweep(args.sweep_file, _overrides(args, {"backend": args.backend, "workers": args.workers,
                                                           "out": args.out}))
    summary = sweep(config, progress=not args.quiet, overwrite=args.overwrite)
    print((Path(config.out) / "sweep.md").read_text())
    print(f"sweep folder: {config.out}")
    return 0 if summary["failed"] == 0 else 1


def _print_fit_summary(summary: dict, config) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    table = Table(title=f"{summary['model']} model of {summary['env']}: "
                        f"{summary['train_transitions']} training / {summary['held_out_transitions']} held-out transitions")
    table.add_column("held-out figure")
    table.add_column("model", justify="right")
    table.add_column("constant-delta baseline", justify="right")
    h = config.horizon
    table.add_row("one-step MSE", fmt(summary["one_step_mse"]), fmt(summary["baseline_one_step_mse"]))
    table.add_row(f"{h}-step open-loop MSE", fmt(summary[f"{h}_step_mse"]), fmt(summary[f"baseline_{h}_step_mse"]))
    table.add_row("one-step NLL", fmt(summary["one_step_nll"]), "")
    table.add_row("inside 1-sigma (ideal 0.683)", fmt(summary["coverage_1sigma"]), "")
    table.add_row("inside 2-sigma (ideal 0.954)", fmt(summary["coverage_2sigma"]), "")
    table.add_row("rank corr. disagreement vs error", fmt(summary["disagreement_error_spearman"]), "")
    console = Console()
    console.print(table)
    fit = summary["fit"]
    console.print(f"trained {fit['epochs']} epochs (best {fit['best_epoch']}), {summary['wall_s']:.1f} s; "
                  f"{summary['improvement_over_baseline']:.1f}x lower one-step error than the baseline")
    if fit["message"]:
        console.print(f"[yellow]{fit['message']}[/yellow]")
    console.print(f"run directory: {config.out}")


def _version() -> str:
    from forethought import __version__

    return f"forethought {__version__}"


if __name__ == "__main__":
    sys.exit(main())
