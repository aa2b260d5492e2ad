"""The run directory every command writes.

    runs/x/
      config.yaml        resolved config
      metrics.csv        one row per epoch/episode, flushed as it is written
      tensorboard/       TensorBoard event files (same scalars as metrics.csv)
      checkpoints/       safetensors + JSON metadata
      plots/             PNG figures
      summary.json       final figures, written atomically at the end
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from forethought.config import save_config
from forethought.serialization import atomic_write_text


class RunDir:
    """Creates the run layout, saves the config, and logs metrics to CSV and TensorBoard.

    Args:
        path: the run folder; created if missing.
        config: the resolved config dataclass, saved as ``config.yaml``.
        overwrite: allow writing into a folder that already holds a run (its metrics are replaced).
    """

    def __init__(self, path: str | os.PathLike, config: Any, overwrite: bool = False) -> None:
        self.path = Path(path)
        if (self.path / "config.yaml").exists() and not overwrite:
            raise FileExistsError(f"{self.path} already holds a run (config.yaml exists); "
                                  f"choose another --out or pass overwrite")
        for sub in ("checkpoints", "plots", "tensorboard"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        save_config(config, self.path / "config.yaml")
        self._csv_file = open(self.path / "metrics.csv", "w", newline="", encoding="utf-8")
        self._csv: csv.DictWriter | None = None
        self._columns: list[str] = []
        from torch.utils.tensorboard import SummaryWriter  # heavy import, only when a run starts

        self._writer = SummaryWriter(log_dir=str(self.path / "tensorboard"))

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


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
