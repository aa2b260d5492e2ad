"""Learning-rate schedules shared by model training and SAC.

Two kinds:

* ``warmup_cosine`` — within a run of optimizer steps: a linear warm-up over ``warmup`` steps,
  then a half cosine from the full rate down to ``min_fraction`` of it at step ``total``, flat
  after that. :func:`schedule_factor` gives the multiplier of the base rate at each step;
  :func:`lambda_scheduler` applies it to an optimizer through ``torch.optim.lr_scheduler.LambdaLR``.
* ``plateau`` — across successive fits of one model: :class:`PlateauScale` multiplies the base
  rate by ``factor`` after ``patience`` fits in a row whose validation loss did not beat the best
  so far, never below ``min_fraction``. Its state is saved with the model (one tensor).

``constant`` is the base rate at every step.
"""

from __future__ import annotations

import math
import torch

LR_SCHEDULES = ("constant", "warmup_cosine", "plateau")


def schedule_factor(step: int, warmup: int, total: int, min_fraction: float) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based) of a
    warm-up + cosine schedule: ``(step + 1) / warmup`` while ``step < warmup``; then
    ``m + (1 - m) (1 + cos(pi p)) / 2`` with ``p = (step - warmup) / (total - warmup)`` clipped to
    ``[0, 1]`` and ``m = min_fraction`` (1 at ``step = warmup``, ``m`` from ``step = total`` on)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_fraction + (1.0 - min_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lambda_scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int,
                     min_fraction: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` that sets every parameter group's rate to its base rate times
    :func:`schedule_factor` of the number of ``scheduler.step()`` calls so far."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule_factor(step, warmup, total, min_fraction))


def schedule_errors(prefix: str, schedule: object, warmup: object, total: object, min_fraction: object,
                    allowed: tuple[str, ...], names: tuple[str, str, str, str]) -> list[str]:
    """Messages for bad schedule settings (empty when they are fine). ``names`` are the keys of
    the schedule, warm-up steps, total steps (or ``""`` where the caller has none) and floor,
    reported as ``prefix.key``."""
    key_schedule, key_warmup, key_total, key_floor = names
    errors = []
    if schedule not in allowed:
        errors.append(f"{prefix}.{key_schedule} must be one of {allowed}, got {schedule!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        errors.append(f"{prefix}.{key_warmup} must be an integer >= 0, got {warmup!r}")
    if key_total and (isinstance(total, bool) or not isinstance(total, int) or total < 1):
        errors.append(f"{prefix}.{key_total} must be an integer >= 1, got {total!r}")
    elif key_total and isinstance(warmup, int) and not isinstance(warmup, bool) and warmup > total:
        errors.append(f"{prefix}.{key_warmup} must be at most {prefix}.{key_total}={total}, got {warmup!r}")
    if isinstance(min_fraction, bool) or not isinstance(min_fraction, (int, float)) or \
            not 0.0 <= min_fraction <= 1.0:
        errors.append(f"{prefix}.{key_floor} must be a number in [0, 1], got {min_fraction!r}")
    return errors


class PlateauScale:
    """The learning-rate multiplier of a model refitted again and again: it starts at 1 and is
    multiplied by ``factor`` (never below ``min_fraction``) once ``patience`` fits in a row end
    with a validation loss no lower than the best of the earlier fits."""

    def __init__(self, factor: float, patience: int, min_fraction: float) -> None:
        self.factor, self.patience, self.min_fraction = float(factor), int(patience), float(min_fraction)
        self.scale, self.best, self.bad_fits = 1.0, math.inf, 0

    def update(self, val_loss: float) -> float:
        """Record one fit's validation loss; returns the multiplier for the next fit. A
        non-finite loss counts as no improvement."""
        if math.isfinite(val_loss) and val_loss < self.best:
            self.best, self.bad_fits = float(val_loss), 0
        else:
            self.bad_fits += 1
            if self.bad_fits >= self.patience:
                self.scale, self.bad_fits = max(self.min_fraction, self.scale * self.factor), 0
        return self.scale

    def tensors(self) -> dict[str, torch.Tensor]:
        """The state as one float64 tensor ``[3]`` (scale, best loss, bad fits), for a model's checkpoint."""
        return {"lr_plateau": torch.tensor([self.scale, self.best, float(self.bad_fits)], dtype=torch.float64)}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`tensors` returned (a checkpoint without it leaves the fresh state)."""
        if "lr_plateau" in tensors:
            scale, best, bad_fits = tensors["lr_plateau"].tolist()
            self.scale, self.best, self.bad_fits = scale, best, int(bad_fits)
