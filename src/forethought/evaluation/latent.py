"""Diagnostics of a latent world model: open-loop video prediction and reward error vs horizon.

    report = open_loop_report(model, held_out_batch, context=5)
    strip = prediction_strip(report)        # [H, W, 3]: real frames above, predicted below (a PNG)
    pairs = prediction_pairs(report)        # per step: real | predicted, side by side (a GIF)
    report.reward_abs_error                 # [L - context] mean |r_hat - r| per step ahead
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from forethought.data.sequences import SequenceBatch
from forethought.models.world_model import LatentWorldModel


@dataclass
class OpenLoopReport:
    """Real and predicted frames ``[B, L, S, S, 3]`` uint8 (channel last, ready to show), the
    number of observed ``context`` frames, and per step ahead (``L - context`` entries) the mean
    absolute reward error and the mean squared pixel error (pixels in ``[0, 1]``)."""

    real: np.ndarray
    predicted: np.ndarray
    context: int
    reward_abs_error: np.ndarray
    frame_mse: np.ndarray


def open_loop_report(model: LatentWorldModel, batch: SequenceBatch, context: int) -> OpenLoopReport:
    """Observe ``context`` frames of each sequence, imagine the rest under the recorded actions, and
    compare with what really happened (rewards are compared from the first imagined step on)."""
    frames, rewards = model.open_loop(batch, context)
    batch, frames, rewards = batch.to("cpu"), frames.cpu(), rewards.cpu()
    real = batch.obs.permute(0, 1, 3, 4, 2).numpy()
    predicted = frames.permute(0, 1, 3, 4, 2).numpy()
    reward_error = (rewards[:, context:] - batch.reward[:, context:]).abs().mean(0).numpy()
    pixel_error = ((predicted[:, context:].astype(np.float32) - real[:, context:]) / 255.0) ** 2
    return OpenLoopReport(real, predicted, context, reward_error, pixel_error.mean(axis=(0, 2, 3, 4)))


def _enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    return np.kron(image, np.ones((scale, scale, 1), np.uint8))


def prediction_strip(report: OpenLoopReport, sequence: int = 0, every: int = 2, scale: int = 2) -> np.ndarray:
    """``[H, W, 3]`` uint8 image: every ``every``-th real frame of one sequence (top row) above the
    model's frames (bottom row: reconstructions for the first ``context`` frames, imagination
    after), enlarged ``scale`` times."""
    steps = range(0, report.real.shape[1], every)
    rows = [np.concatenate([frames[sequence, t] for t in steps], axis=1) for frames in (report.real, report.predicted)]
    gap = np.full((2, rows[0].shape[1], 3), 128, np.uint8)
    return _enlarge(np.concatenate([rows[0], gap, rows[1]], axis=0), scale)


def prediction_pairs(report: OpenLoopReport, sequence: int = 0, scale: int = 2) -> list[np.ndarray]:
    """One ``[H, W, 3]`` frame per sequence step: the real frame left, the predicted one right."""
    return [_enlarge(np.concatenate([report.real[sequence, t], report.predicted[sequence, t]], axis=1), scale)
            for t in range(report.real.shape[1])]


def imagination_throughput(model: LatentWorldModel, starts: int = 1024, horizon: int = 15, repeats: int = 3) -> float:
    """Imagined latent steps per second: ``starts`` states rolled ``horizon`` steps under fixed
    random actions in one batch (median of ``repeats`` timings)."""
    generator = torch.Generator(model.device).manual_seed(0)
    start = model.rssm.initial(starts)
    actions = torch.rand(starts, horizon, model.action_dim, generator=generator, device=model.device) * 2 - 1
    timings = []
    with torch.no_grad():
        for _ in range(repeats):
            begin = time.perf_counter()
            future, _ = model.imagine(start, horizon, actions=actions, generator=generator)
            model.reward(future.features)
            if model.device.type == "cuda":  # kernels run asynchronously: wait for them before timing
                torch.cuda.synchronize(model.device)
            timings.append(time.perf_counter() - begin)
    return starts * horizon / float(np.median(timings))
