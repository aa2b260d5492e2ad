"""The run directory every command writes, with one writer at a time.

    runs/x/
      .lock              the writing process's pid and host, held while it writes (see RunLock)
      config.yaml        resolved config
      run.json           the command that wrote it, forethought's version and what the command adds
      metrics.csv        one row per epoch/episode, flushed as it is written
      tensorboard/       TensorBoard event files (same scalars as metrics.csv)
      checkpoints/       safetensors + JSON metadata
      plots/             PNG figures
      videos/            GIFs
      summary.json       final figures, written atomically at the end

What :class:`RunDir` guarantees: a folder that is not a run directory and not empty is refused,
``overwrite`` removes only a run's own outputs (:data:`RUN_OUTPUTS`), a folder another process
is writing is refused naming that process, and a path that cannot be written (an existing file,
a read-only folder, a full disk) is a one-line :class:`RunDirError` with nothing half-written
left. Reading a run back (:func:`read_run_info`) executes no code; the lock is
:mod:`~forethought.experiments.run_lock`'s, the resume checks
:mod:`~forethought.experiments.resume_checks`'.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from forethought import __version__, serialization
from forethought.config import save_config
from forethought.experiments.run_lock import LOCK_FILE, RunDirError, RunDirInUse, RunLock, describe_os_error, in_use, os_errors
from forethought.serialization import CheckpointError, atomic_write_text, read_json

RUN_INFO = "run.json"
# What forethought's commands write into a run directory: all that ``overwrite`` removes.
RUN_OUTPUTS = frozenset({
    "config.yaml", RUN_INFO, "metrics.csv", "summary.json", "tensorboard", "checkpoints", "plots", "videos",
    "data.npz",  # fit-model, compare-models: the training transitions
    "comparison.md",  # compare-models
    "compare.md", "curves.csv", "ablation.md", "runs",  # compare and ablate: their tables and their runs
})
# Kept through ``overwrite`` and not counted as foreign: the lock, and the attempt record a sweep
# backend writes before the run starts (experiments.backends.ATTEMPT_FILE).
PRESERVED = frozenset({LOCK_FILE, "sweep_attempt.json"})


# ---------------------------------------------------------------------------- what a folder holds
def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a run (its ``config.yaml`` or ``run.json``)."""
    path = Path(path)
    return (path / "config.yaml").is_file() or (path / RUN_INFO).is_file()


def _is_output(name: str, outputs: Iterable[str]) -> bool:
    # a temporary file of an interrupted atomic write: .<name>.<12 hex>.tmp
    return name in outputs or (name.startswith(".") and name.endswith(".tmp")
                               and name[1:].rsplit(".", 2)[0] in outputs)


def check_run_target(path: str | os.PathLike, overwrite: bool = False, outputs: Iterable[str] = RUN_OUTPUTS) -> bool:
    """Check, before anything is written, that a new run may be written to ``path``; returns
    whether ``path`` already holds a run (which only ``overwrite`` allows).

    Raises:
        RunDirError: ``path`` (or a folder above it) is a file, ``path`` cannot be written, or it
            is a folder that is neither empty nor a run directory.
        FileExistsError: ``path`` holds a run and ``overwrite`` is False.
    """
    path, outputs = Path(path), frozenset(outputs)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise RunDirError(f"run directory {path}: {existing} is an existing file, not a folder; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"cannot write the run directory {path}: {existing} is not writable")
    if existing != path:
        return False
    entries = sorted(p.name for p in path.iterdir() if p.name not in PRESERVED)
    if is_run_dir(path):
        if not overwrite:
            raise FileExistsError(f"{path} already holds a run (config.yaml exists); choose another --out or "
                                  "pass overwrite")
        return True
    foreign = [name for name in entries if not _is_output(name, outputs)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise RunDirError(f"{path} is not empty and not a forethought run directory (it holds {shown}); "
                          "choose another --out")
    return False


def clear_run_outputs(path: str | os.PathLike, outputs: Iterable[str] = RUN_OUTPUTS) -> list[str]:
    """Remove a run's own outputs from ``path`` (the names in ``outputs`` and temporary files of
    interrupted writes), leaving every other file; returns the names removed.

    Raises:
        RunDirInUse: a run directory under ``path/runs/`` is being written by another process.
    """
    path, outputs = Path(path), frozenset(outputs)
    for child in sorted((path / "runs").glob("*")) if (path / "runs").is_dir() else []:
        holder = in_use(child)
        if holder is not None:
            raise RunDirInUse(f"cannot overwrite {path}: its run {child} is in use by process "
                              f"{holder.get('pid', '?')} on {holder.get('host', '?')}", holder)
    removed = []
    for entry in sorted(path.iterdir()):
        if entry.name in PRESERVED or not _is_output(entry.name, outputs):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed


# ---------------------------------------------------------------------------- the run directory
class RunDir:
    """Creates the run layout, saves the config, and logs metrics to CSV and TensorBoard; holds
    the directory's :class:`RunLock` until :meth:`close` (or the end of a ``with`` block).

    Args:
        path: the run folder; created if missing.
        config: the resolved config dataclass, saved as ``config.yaml``.
        overwrite: allow writing into a folder that already holds a run: its outputs
            (:data:`RUN_OUTPUTS` and ``outputs``) are removed first, other files are left.
        command: the command writing the run, recorded in ``run.json`` for ``forethought resume``.
        resume_rows: continue the run already in ``path``: keep its first ``resume_rows`` metrics
            rows (those its checkpoint covers; :attr:`kept_rows`) and append after them.
        purge_step: TensorBoard drops events at or after this step (those a resumed run re-logs).
        info: more JSON fields for ``run.json`` (a new run only), e.g. where its data came from.
        lock: a :class:`RunLock` of ``path`` the caller already holds (e.g. taken before reading
            the checkpoint to resume); the RunDir releases it on close.
        outputs: more names this run writes, removed by ``overwrite`` like :data:`RUN_OUTPUTS`.

    Raises:
        RunDirError: see :func:`check_run_target`; any OSError while setting up (a full disk, a
            read-only folder) too, after removing what the setup wrote.
        RunDirInUse: another process is writing ``path``.
        FileExistsError: ``path`` holds a run and neither ``overwrite`` nor ``resume_rows`` is given.
    """

    def __init__(self, path: str | os.PathLike, config: Any, overwrite: bool = False, command: str | None = None,
                 resume_rows: int | None = None, purge_step: int | None = None, info: dict[str, Any] | None = None,
                 lock: RunLock | None = None, outputs: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.kept_rows: list[dict[str, str]] = []  # on resume: the metrics rows written before
        self.outputs = RUN_OUTPUTS | frozenset(outputs)
        self._columns: list[str] = []
        self._metrics: int | None = None
        self._writer = None
        existed = self.path.exists()
        if resume_rows is None:
            check_run_target(self.path, overwrite, self.outputs)
        elif not is_run_dir(self.path):
            raise RunDirError(f"{self.path} is not a forethought run directory ({RUN_INFO} and config.yaml expected)")
        self.lock = lock if lock is not None else RunLock(self.path)
        created: list[Path] = []
        try:
            with os_errors(self.path):
                if resume_rows is None:
                    if overwrite and existed:
                        clear_run_outputs(self.path, self.outputs)
                    self._start(config, command, info or {}, created)
                else:
                    self._columns, self.kept_rows = keep_metric_rows(self.path / "metrics.csv", resume_rows)
                    self._metrics = os.open(self.path / "metrics.csv", os.O_WRONLY | os.O_APPEND)
                from torch.utils.tensorboard import SummaryWriter  # heavy import, only when a run starts

                self._writer = SummaryWriter(log_dir=str(self.path / "tensorboard"), purge_step=purge_step)
        except BaseException:
            self._close_files()
            if resume_rows is None:
                self._remove(created, remove_folder=not existed)
            self.lock.release()
            raise

    def _start(self, config: Any, command: str | None, info: dict[str, Any], created: list[Path]) -> None:
        for sub in ("checkpoints", "plots", "tensorboard"):
            if not (self.path / sub).exists():
                (self.path / sub).mkdir(parents=True)
                created.append(self.path / sub)
        created.append(self.path / "config.yaml")
        save_config(config, self.path / "config.yaml")
        created.append(self.path / RUN_INFO)
        atomic_write_text(self.path / RUN_INFO, json.dumps({**info, "command": command, "version": __version__},
                                                           indent=2, default=_jsonable))
        created.append(self.path / "metrics.csv")
        self._metrics = os.open(self.path / "metrics.csv", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o666)

    def _remove(self, created: list[Path], remove_folder: bool) -> None:
        """Undo a setup that failed: the folder if this RunDir created it, else what it wrote."""
        if remove_folder:
            self.lock.release()
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for item in reversed(created):
            if item.is_dir():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def videos(self) -> Path:
        return self.path / "videos"

    def log(self, row: dict[str, Any], step: int) -> None:
        """Append one metrics row (the first row fixes the CSV columns) and mirror numbers to TensorBoard.

        Raises:
            ValueError: the row has columns the CSV header lacks.
            RunDirError: the row cannot be written (a full disk); ``metrics.csv`` is cut back to
                the rows before it.
        """
        text = io.StringIO()
        if not self._columns:
            self._columns = list(row)
            csv.writer(text).writerow(self._columns)
        extra = set(row) - set(self._columns)
        if extra:
            raise ValueError(f"metrics row has columns {sorted(extra)} not in the CSV header {self._columns}")
        csv.DictWriter(text, fieldnames=self._columns).writerow(row)
        if self._metrics is None:
            raise RuntimeError(f"{self.path}: log() after close()")
        size = os.fstat(self._metrics).st_size
        try:
            serialization.write_all(self._metrics, text.getvalue().encode("utf-8"))
        except OSError as err:
            os.ftruncate(self._metrics, size)
            if size == 0:
                self._columns = []
            raise RunDirError(f"cannot write {self.path / 'metrics.csv'}: {describe_os_error(err)}") from err
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self._writer.add_scalar(key, value, step)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write ``summary.json`` atomically and return its path (RunDirError if it cannot be written)."""
        target = self.path / "summary.json"
        with os_errors(target, "write"):
            atomic_write_text(target, json.dumps(summary, indent=2, sort_keys=False, default=_jsonable))
        return target

    def _close_files(self) -> None:
        if self._metrics is not None:
            os.close(self._metrics)
            self._metrics = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        """Close the metrics file and TensorBoard writer and release the lock (idempotent)."""
        self._close_files()
        self.lock.release()

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def keep_metric_rows(path: Path, rows: int) -> tuple[list[str], list[dict[str, str]]]:
    """Cut ``metrics.csv`` back to its header and first ``rows`` rows (a resumed run re-logs the
    rest); returns the header's columns (empty if the file has none yet) and the kept rows."""
    with path.open(newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    if max(len(lines) - 1, 0) < rows:
        raise ValueError(f"{path} has {max(len(lines) - 1, 0)} rows but the checkpoint has {rows}: "
                         "the run directory does not belong to this checkpoint")
    kept = lines[: rows + 1] if lines else []
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(kept)
    atomic_write_text(path, buffer.getvalue())
    return (kept[0], [dict(zip(kept[0], row)) for row in kept[1:]]) if kept else ([], [])


def read_run_info(path: str | os.PathLike) -> dict[str, Any]:
    """The command and version that wrote the run directory ``path`` (``run.json``, read without
    executing code).

    Raises:
        RunDirError: ``path`` is not a run directory, its ``run.json`` is damaged, or another
            version of forethought wrote it.
    """
    path = Path(path)
    if not (path / "config.yaml").is_file() or not (path / RUN_INFO).is_file():
        raise RunDirError(f"{path} is not a forethought run directory ({RUN_INFO} and config.yaml expected)")
    try:
        info = dict(read_json(path / RUN_INFO, "run record"))
    except CheckpointError as err:
        raise RunDirError(str(err)) from err
    written, current = str(info.get("version")), __version__
    if written.split(".")[:2] != current.split(".")[:2]:
        raise RunDirError(f"{path} was written by forethought {written}; this is {current}, whose configs and "
                          f"checkpoints may differ: resume it with forethought {written}")
    return info


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
