"""``forethought report RUN_DIR...``: one Markdown and HTML report from many run directories.

Each run directory (from ``run``, ``fit-model``, ``compare-models``) is read back from its
``config.yaml``, ``metrics.csv`` and ``summary.json``; a study folder (the ``OUT`` of ``compare``,
``ablate`` or ``sweep``, or any folder of run directories) stands for the runs inside it
(:func:`find_run_dirs`), and the report links its own tables (``compare.md`` and the like). Runs of the same algorithm on the same environment are grouped as seeds. The
report has: a table of final and best return per group (interquartile mean over seeds with a 95 %
bootstrap interval), learning curves per environment (IQM over seeds, shaded interval), the
model diagnostics the runs recorded (one-step and compounding error, calibration, latent reward
error), and links to every run's plots and videos.

    report = build_report(["runs/sac-0", "runs/sac-1", "runs/mbpo-0"], "runs/report")
    report = build_report(["runs/compare"], "runs/report")     # every run the comparison made
    report.markdown_path, report.html_path, report.runs
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markdown as markdown_lib
import yaml

from forethought.evaluation.plots import plot_seed_curves
from forethought.evaluation.statistics import bootstrap_interval
from forethought.serialization import atomic_write_text


@dataclass
class RunRecord:
    """What a run directory holds, read back: its kind (``pets``, ``policy``, ``latent``,
    ``fit-model``, ``compare-models``), algorithm, environment, seed, learning curve (real steps,
    return) and summary."""

    path: Path
    kind: str
    algo: str
    env: str
    seed: int | None
    steps: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def final_return(self) -> float | None:
        return self.returns[-1] if self.returns else None

    @property
    def best_return(self) -> float | None:
        return max(self.returns) if self.returns else None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def load_run(path: str | os.PathLike) -> RunRecord:
    """Read one run directory; a folder that is not a run is a ValueError naming what is missing."""
    path = Path(path)
    missing = [name for name in ("config.yaml", "metrics.csv") if not (path / name).is_file()]
    if missing:
        raise ValueError(f"{path} is not a run directory: {' and '.join(missing)} missing")
    config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    summary = json.loads((path / "summary.json").read_text(encoding="utf-8")) if (path / "summary.json").is_file() else {}
    with (path / "metrics.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0]) if rows else set()
    env, seed = str(config.get("env", summary.get("env", "?"))), config.get("seed")
    if "trial" in columns:
        kind, algo, y = "pets", "pets", "return"
    elif "reconstruction" in columns:
        agent = config.get("agent", {})
        named = "dreamer" if "imagination_horizon" in agent else "planet" if "exploration_noise" in agent else "latent"
        kind, algo, y = "latent", str(summary.get("algo", named)), "eval_return"
    elif "eval_return" in columns:
        kind, algo, y = "policy", str(summary.get("algo", "policy")), "eval_return"
    elif "epoch" in columns:
        kind, algo, y = "fit-model", f"fit-model ({config.get('model', {}).get('kind', '?')})", None
    elif "model" in columns:
        kind, algo, y = "compare-models", "compare-models", None
    else:
        raise ValueError(f"{path}: metrics.csv has columns {sorted(columns)}, which no forethought command writes")
    record = RunRecord(path, kind, algo, env, seed if isinstance(seed, int) else None, summary=summary)
    if y is not None:
        for row in rows:
            steps, value = _number(row.get("env_steps")), _number(row.get(y))
            if steps is not None and value is not None:
                record.steps.append(int(steps)), record.returns.append(value)
    return record


# Commands whose output folder is a study: its own metrics summarise the runs under runs/.
STUDY_COMMANDS = ("compare", "ablate", "sweep")
STUDY_TABLES = ("compare.md", "ablation.md", "sweep.md", "comparison.md", "curves.csv", "runs.csv")


def _command(path: Path) -> str | None:
    try:
        info = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info.get("command") if isinstance(info, dict) else None


def is_study(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a study folder: written by a study command, or holding a ``runs/``
    folder or run directories of its own instead of being one run."""
    path = Path(path)
    if _command(path) in STUDY_COMMANDS or (path / "sweep.yaml").is_file() or (path / "runs").is_dir():
        return True
    return not _is_run(path) and any(_is_run(child) for child in path.iterdir() if child.is_dir())


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / "metrics.csv").is_file()


def find_run_dirs(path: str | os.PathLike, depth: int = 3) -> list[Path]:
    """The run directories ``path`` stands for: itself when it is one run, else (a study folder)
    every run directory inside it, in ``runs/`` or directly, down to ``depth`` folders (sorted by
    path). A folder that is neither is returned as it is, for :func:`load_run` to refuse."""
    path = Path(path)
    if not path.is_dir() or not is_study(path):
        return [path]
    found: list[Path] = []
    if depth > 0:
        for child in sorted(p for p in path.iterdir() if p.is_dir()):
            if _is_run(child) and not is_study(child):
                found.append(child)
            elif child.name not in ("checkpoints", "plots", "tensorboard", "videos"):
                found += [run for run in find_run_dirs(child, depth - 1) if run != child]
    return found


@dataclass
class Report:
    markdown_path: Path
    html_path: Path
    groups: dict[tuple[str, str], list[RunRecord]]
    runs: list[RunRecord] = field(default_factory=list)


def _link(target: Path, out: Path) -> str:
    return Path(os.path.relpath(target, out)).as_posix()


def _interval(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4g}"
    interval = bootstrap_interval(values, "iqm")
    return f"{interval.point:.4g} [{interval.low:.4g}, {interval.high:.4g}]"


def _diagnostics(record: RunRecord) -> list[str]:
    """Markdown lines for the model diagnostics a run's summary holds."""
    s, lines = record.summary, []
    if "one_step_mse" in s:
        lines.append(f"- one-step MSE {s['one_step_mse']:.3g} (constant-delta baseline {s.get('baseline_one_step_mse', float('nan')):.3g})")
    if s.get("rollout_mse_by_horizon"):
        curve = s["rollout_mse_by_horizon"]
        lines.append(f"- open-loop MSE at 1 / {len(curve)} steps: {curve[0]:.3g} / {curve[-1]:.3g}")
    for key in ("coverage_1sigma", "coverage_2sigma", "disagreement_error_spearman"):
        if s.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: {s[key]:.3g}")
    if s.get("held_out_reward_abs_error_by_horizon"):
        curve = s["held_out_reward_abs_error_by_horizon"]
        lines.append(f"- latent rollout |reward error| at 1 / {len(curve)} steps ahead (held out): {curve[0]:.3g} / {curve[-1]:.3g}")
    if s.get("held_out_reward_mse_filtered") is not None:
        lines.append(f"- reward MSE while filtering held-out frames: {s['held_out_reward_mse_filtered']:.3g}")
    if s.get("oracle_return") is not None:
        lines.append(f"- oracle planner return: {s['oracle_return']:.4g}")
    return lines


def build_report(run_dirs: list[str | os.PathLike], out: str | os.PathLike, title: str = "forethought report") -> Report:
    """Read ``run_dirs`` (run directories or study folders, see :func:`find_run_dirs`) and write
    ``report.md``, ``report.html`` and ``plots/curves_<env>.png`` to ``out``.

    Raises:
        ValueError: no run directory is given, a study folder holds none, or a path is not a run.
    """
    if not run_dirs:
        raise ValueError("report needs at least one run directory")
    paths, studies = [], []
    for given in map(Path, run_dirs):
        found = find_run_dirs(given)
        if not found:
            raise ValueError(f"{given} holds no run directories (config.yaml and metrics.csv in a folder)")
        if found != [given]:
            studies.append(given)
        paths += [p for p in found if p not in paths]
    records = [load_run(p) for p in paths]
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        groups.setdefault((record.env, record.algo), []).append(record)

    lines = [f"# {title}", "", f"{len(records)} run(s) in {len(groups)} group(s) (algorithm on environment; "
             "runs of a group are its seeds). Returns: interquartile mean over seeds [95 % bootstrap interval]."]
    for study in studies:
        tables = [study / name for name in STUDY_TABLES if (study / name).is_file()]
        links = "".join(f" · [{t.name}]({_link(t, out)})" for t in tables)
        lines += ["", f"Study [{study}]({_link(study, out)}): {sum(r.path.is_relative_to(study) for r in records)} "
                      f"run(s){links}"]
    learners = {k: v for k, v in groups.items() if any(r.returns for r in v)}
    if learners:
        lines += ["", "## Returns", "", "| environment | algorithm | seeds | real steps | final return | best return |",
                  "|---|---|---:|---:|---:|---:|"]
        for (env, algo), runs in learners.items():
            curves = [r for r in runs if r.returns]
            lines.append(f"| {env} | {algo} | {len(curves)} | {max(r.steps[-1] for r in curves)} | "
                         f"{_interval([r.final_return for r in curves])} | {_interval([r.best_return for r in curves])} |")
        lines += ["", "## Learning curves", ""]
        for env in dict.fromkeys(env for env, _ in learners):
            curves = {algo: [(r.steps, r.returns) for r in runs if r.returns]
                      for (e, algo), runs in learners.items() if e == env}
            name = "".join(c if c.isalnum() or c in "-_" else "_" for c in env)
            image = plot_seed_curves(curves, out / "plots" / f"curves_{name}.png", title=env)
            lines += [f"![{env}]({_link(image, out)})", ""]

    lines += ["## Runs", ""]
    for record in records:
        lines += [f"### {record.algo} on {record.env}" + ("" if record.seed is None else f", seed {record.seed}"), "",
                  f"Run directory: [{record.path}]({_link(record.path, out)})", ""]
        if record.returns:
            lines.append(f"- final return {record.final_return:.4g}, best {record.best_return:.4g} "
                         f"after {record.steps[-1]} real steps")
        lines += _diagnostics(record)
        media = sorted((record.path / "plots").glob("*.png")) + sorted((record.path / "videos").glob("*"))
        if media:
            lines += ["", " · ".join(f"[{m.relative_to(record.path).as_posix()}]({_link(m, out)})" for m in media)]
        for image in sorted((record.path / "plots").glob("*.png"))[:4]:
            lines += ["", f"![{image.stem}]({_link(image, out)})"]
        lines.append("")
    text = "\n".join(lines) + "\n"
    markdown_path, html_path = out / "report.md", out / "report.html"
    atomic_write_text(markdown_path, text)
    body = markdown_lib.markdown(text, extensions=["tables"])
    atomic_write_text(html_path, f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
                                 "<style>body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:"
                                 "collapse}td,th{border:1px solid #ccc;padding:0.2em 0.5em}img{max-width:100%}</style>"
                                 f"</head><body>\n{body}\n</body></html>\n")
    return Report(markdown_path, html_path, groups, records)
