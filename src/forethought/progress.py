"""A live progress bar (rich) that costs nothing when disabled."""

from __future__ import annotations


class ProgressBar:
    """``with ProgressBar(enabled, total, "fitting") as bar: bar.advance(); bar.describe("epoch 3 ...")``."""

    def __init__(self, enabled: bool, total: int | None, description: str) -> None:
        self._bar = None
        if enabled:
            from rich.progress import Progress

            self._bar = Progress()
            self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> "ProgressBar":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, amount: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, amount)

    def describe(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=description)
