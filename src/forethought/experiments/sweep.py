"""``forethought sweep``: many runs of one ``forethought run`` command from a sweep file, side by side.

    sweep(load_sweep("sweep.yaml"))

Every run's config is built and checked first (see :mod:`~forethought.experiments.sweep_spec`);
then the runs go to the sweep's backend (:mod:`~forethought.experiments.backends`), each
writing its own run directory ``OUT/runs/<name>/``, while a live table shows each run's status,
attempts, metrics rows, last return and elapsed time, read from the run directories (so it follows
every backend). The sweep folder gets, written atomically and updated as each run ends:

    sweep.yaml     the resolved sweep (``forethought sweep OUT/sweep.yaml`` runs it again)
    runs.csv       one row per run: name, the varied values, seed, status, attempts, final and
                   best return (from its summary.json), wall_s, error
    sweep.md       the same as a Markdown table, and the best run
    summary.json   the same, with each run's path and the sweep's wall-clock time

Started again on the same OUT, a sweep keeps the runs that finished and resumes the others from
their checkpoints; a run folder holding another config is refused (``overwrite`` starts every run
afresh).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import yaml

from forethought.config import save_config
from forethought.experiments.backends import ATTEMPT_FILE, Job, read_attempt, run_jobs
from forethought.experiments.sweep_spec import SweepConfig, SweepRun, resolve_runs, varied_keys
from forethought.serialization import atomic_write_text

RETURN_KEYS = ("eval_return", "return")  # the return column of a metrics row, by command


def final_and_best(summary: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """A run summary's final and best return (of its learning curve: evaluations where it has them)."""
    if not summary:
        return None, None
    return summary.get("final_return"), summary.get("best_return")


def metrics_progress(path: Path) -> tuple[int, float | None]:
    """Rows in ``path/metrics.csv`` so far and the last return logged (a half-written line is skipped)."""
    try:
        text = (path / "metrics.csv").read_text(encoding="utf-8")
    except OSError:
        return 0, None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    rows = list(csv.DictReader(io.StringIO("".join(lines))))
    last = None
    for row in reversed(rows):
        value = next((row[k] for k in RETURN_KEYS if row.get(k) not in (None, "")), None)
        if value is not None:
            last = float(value)
            break
    return len(rows), last


class SweepBoard:
    """What the sweep knows of each run: status (``queued``, ``running``, ``done``, ``failed``,
    attempts and progress read from its run directory), summary and error; renders the live table."""

    def __init__(self, sweep: SweepConfig, runs: list[SweepRun]) -> None:
        self.sweep, self.runs = sweep, runs
        self.status = {run.name: "queued" for run in runs}
        self.summaries: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self.ended: dict[str, float] = {}
        self.start = time.time()

    def report(self, name: str, status: str, summary: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.status[name] = status
        self.ended[name] = time.time()
        if summary is not None:
            self.summaries[name] = summary
        if error is not None:
            self.errors[name] = error
        write_outputs(self)

    def attempts(self, run: SweepRun) -> int:
        attempt = read_attempt(run.path(self.sweep.out))
        return attempt["attempt"] if attempt else 0

    def shown_status(self, run: SweepRun) -> tuple[str, int, float | None]:
        """Status, attempts and seconds since the run first started in this sweep."""
        status, attempt = self.status[run.name], read_attempt(run.path(self.sweep.out))
        if attempt is None:
            return status, 0, None
        end = self.ended.get(run.name, time.time()) if status in ("done", "failed") else time.time()
        return ("running" if status == "queued" else status), attempt["attempt"], end - attempt["first_started"]

    def table(self):
        """The live progress table (a rich Table)."""
        from rich.table import Table

        done = sum(s == "done" for s in self.status.values())
        table = Table(title=f"sweep of run {self.sweep.command} ({self.sweep.backend}): {done}/{len(self.runs)} done, "
                            f"{time.time() - self.start:.0f} s")
        for column in ("run", "status", "attempts", "rows", "last return", "elapsed s"):
            table.add_column(column, justify="left" if column in ("run", "status") else "right")
        for run in self.runs:
            status, attempts, elapsed = self.shown_status(run)
            rows, last = metrics_progress(run.path(self.sweep.out))
            style = {"done": "green", "failed": "red", "running": "yellow"}.get(status, "")
            table.add_row(run.name, f"[{style}]{status}[/{style}]" if style else status, str(attempts), str(rows),
                          "" if last is None else f"{last:.2f}", "" if elapsed is None else f"{elapsed:.0f}")
        return table


def run_rows(board: SweepBoard) -> list[dict[str, Any]]:
    """One row per run for runs.csv, sweep.md and summary.json."""
    rows = []
    for run in board.runs:
        summary = board.summaries.get(run.name)
        final, best = final_and_best(summary)
        rows.append({"name": run.name, **run.values, "seed": run.seed, "status": board.status[run.name],
                     "attempts": board.attempts(run), "final_return": final, "best_return": best,
                     "wall_s": None if summary is None else summary.get("wall_s"),
                     "error": board.errors.get(run.name, "")})
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def write_outputs(board: SweepBoard) -> None:
    """runs.csv, sweep.md and summary.json of the sweep as it stands."""
    out, rows = Path(board.sweep.out), run_rows(board)
    columns = ["name", *varied_keys(board.sweep), "seed", "status", "attempts", "final_return", "best_return",
               "wall_s", "error"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(row[c]) for c in columns] for row in rows])
    atomic_write_text(out / "runs.csv", buffer.getvalue())
    finished = [row for row in rows if row["best_return"] is not None]
    best = max(finished, key=lambda row: row["best_return"])["name"] if finished else None
    lines = [f"# Sweep of run {board.sweep.command}: {len(rows)} runs ({board.sweep.backend})", "",
             "| " + " | ".join(columns[:-1]) + " |", "|" + "---|" * (len(columns) - 1)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns[:-1]) + " |" for row in rows]
    if best is not None:
        lines += ["", f"Best return: {best} ({_cell(max(r['best_return'] for r in finished))})."]
    lines += [f"Failed: {row['name']}: {row['error']}" for row in rows if row["status"] == "failed"]
    atomic_write_text(out / "sweep.md", "\n".join(lines) + "\n")
    counts = {status: sum(row["status"] == status for row in rows) for status in ("done", "failed")}
    summary = {"command": board.sweep.command, "backend": board.sweep.backend, "workers": board.sweep.workers,
               "runs": [{**row, "path": str(run.path(out))} for row, run in zip(rows, board.runs)],
               **counts, "best_run": best, "wall_s": time.time() - board.start}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))


def _same_config(path: Path, config: dict) -> bool:
    saved = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    return saved == yaml.safe_load(yaml.safe_dump(config, sort_keys=False))


def prepare(sweep: SweepConfig, overwrite: bool) -> tuple[list[SweepRun], dict[str, dict[str, Any]]]:
    """Every run with its checked config, and the summaries of those already finished with the same
    config (kept). Raises before anything is written if a run folder holds another config."""
    runs, kept = resolve_runs(sweep), {}
    for run in runs:
        path = run.path(sweep.out)
        if overwrite or not (path / "config.yaml").is_file():
            continue
        if not _same_config(path, run.config):
            raise ValueError(f"{path} holds a run with another config than this sweep's run {run.name}; "
                             "choose another out, or start every run afresh with --overwrite")
        if (path / "summary.json").is_file():
            kept[run.name] = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    return runs, kept


def sweep(config: SweepConfig, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Run the sweep and return its summary (``summary.json``'s content)."""
    runs, kept = prepare(config, overwrite)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "sweep.yaml")
    for run in runs:
        path = run.path(out)
        if overwrite and path.is_dir():
            shutil.rmtree(path)
        (path / ATTEMPT_FILE).unlink(missing_ok=True)  # attempts count from this sweep's start
    board = SweepBoard(config, runs)
    for name, summary in kept.items():
        board.report(name, "done", summary=summary)
    write_outputs(board)
    jobs = [Job(run.name, config.command, run.config, {"preset": run.preset}) for run in runs if run.name not in kept]
    live = nullcontext()
    if progress:
        from rich.live import Live

        live = Live(get_renderable=board.table, refresh_per_second=2)
    with live:
        run_jobs(jobs, config.backend, config.workers, config.retries, config.threads, board.report,
                 config.ray_address)
    write_outputs(board)
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))
