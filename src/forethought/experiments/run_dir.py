"""The run directory every command writes.

    runs/x/
      config.yaml        resolved config
      metrics.csv        one row per epoch/episode, flushed as it is written
      tensorboard/       TensorBoard event files (same scalars as metrics.csv)
      checkpoints/       safetensors + JSON metadata
      plots/             PNG figures
      summary.json       final figures, written atomically at the end
      run.json           the command that wrote it and forethought's version (what resume reads)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from forethought import __version__
from forethought.config import save_config
from forethought.serialization import atomic_write_text

RUN_INFO = "run.json"


class RunDir:
    """Creates the run layout, saves the config, and logs metrics to CSV and TensorBoard.

    Args:
        path: the run folder; created if missing.
        config: the resolved config dataclass, saved as ``config.yaml``.
        overwrite: allow writing into a folder that already holds a run (its metrics are replaced).
        command: the command writing the run, recorded in ``run.json`` for ``forethought resume``.
        resume_rows: continue the run already in ``path``: keep its first ``resume_rows`` metrics
            rows (those its checkpoint covers; :attr:`kept_rows`) and append after them.
        purge_step: TensorBoard drops events at or after this step (those a resumed run re-logs).
    """

    def __init__(self, path: str | os.PathLike, config: Any, overwrite: bool = False, command: str | None = None,
                 resume_rows: int | None = None, purge_step: int | None = None) -> None:
        self.path = Path(path)
        self.kept_rows: list[dict[str, str]] = []  # on resume: the metrics rows written before
        self._csv: csv.DictWriter | None = None
        self._columns: list[str] = []
        if resume_rows is None:
            if (self.path / "config.yaml").exists() and not overwrite:
                raise FileExistsError(f"{self.path} already holds a run (config.yaml exists); "
                                      f"choose another --out or pass overwrite")
            for sub in ("checkpoints", "plots", "tensorboard"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            save_config(config, self.path / "config.yaml")
            atomic_write_text(self.path / RUN_INFO, json.dumps({"command": command, "version": __version__}, indent=2))
            self._csv_file = open(self.path / "metrics.csv", "w", newline="", encoding="utf-8")
        else:
            self._columns, self.kept_rows = keep_metric_rows(self.path / "metrics.csv", resume_rows)
            self._csv_file = open(self.path / "metrics.csv", "a", newline="", encoding="utf-8")
            if self._columns:
                self._csv = csv.DictWriter(self._csv_file, fieldnames=self._columns)
        from torch.utils.tensorboard import SummaryWriter  # heavy import, only when a run starts

        self._writer = SummaryWriter(log_dir=str(self.path / "tensorboard"), purge_step=purge_step)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def log(self, row: dict[str, Any], step: int) -> None:
        """Append one metrics row (the first row fixes the CSV columns) and mirror numbers to TensorBoard."""
        if self._csv is None:
            self._columns = list(row)
            self._csv = csv.DictWriter(self._csv_file, fieldnames=self._columns)
            self._csv.writeheader()
        extra = set(row) - set(self._columns)
        if extra:
            raise ValueError(f"metrics row has columns {sorted(extra)} not in the CSV header {self._columns}")
        self._csv.writerow(row)
        self._csv_file.flush()
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self._writer.add_scalar(key, value, step)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write ``summary.json`` atomically and return its path."""
        target = self.path / "summary.json"
        atomic_write_text(target, json.dumps(summary, indent=2, sort_keys=False, default=_jsonable))
        return target

    def close(self) -> None:
        self._csv_file.close()
        self._writer.close()

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def keep_metric_rows(path: Path, rows: int) -> tuple[list[str], list[dict[str, str]]]:
    """Cut ``metrics.csv`` back to its header and first ``rows`` rows (a resumed run re-logs the
    rest); returns the header's columns (empty if the file has none yet) and the kept rows."""
    with path.open(newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    if len(lines) - 1 < rows:
        raise ValueError(f"{path} has {max(len(lines) - 1, 0)} rows but the checkpoint has {rows}: "
                         "the run directory does not belong to this checkpoint")
    kept = lines[: rows + 1] if lines else []
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(kept)
    atomic_write_text(path, buffer.getvalue())
    return (kept[0], [dict(zip(kept[0], row)) for row in kept[1:]]) if kept else ([], [])


def read_run_info(path: str | os.PathLike) -> dict[str, Any]:
    """The command and version that wrote the run directory ``path``, or a ValueError saying why
    ``path`` is not a run this version can continue."""
    path = Path(path)
    if not (path / "config.yaml").is_file() or not (path / RUN_INFO).is_file():
        raise ValueError(f"{path} is not a forethought run directory ({RUN_INFO} and config.yaml expected)")
    info = json.loads((path / RUN_INFO).read_text(encoding="utf-8"))
    written, current = str(info.get("version")), __version__
    if written.split(".")[:2] != current.split(".")[:2]:
        raise ValueError(f"{path} was written by forethought {written}; this is {current}, whose configs and "
                         f"checkpoints may differ: resume it with forethought {written}")
    return info


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
