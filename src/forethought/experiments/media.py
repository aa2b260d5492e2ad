"""Run outputs for people: learning-curve PNGs and GIF videos, written atomically."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from forethought.evaluation.plots import save_figure
from forethought.serialization import atomic_write_bytes


def plot_learning_curve(returns: Sequence[float], path: str | os.PathLike, oracle: float | None = None,
                        title: str = "Learning curve", x: Sequence[float] | None = None,
                        xlabel: str = "trial") -> Path:
    """Return per trial (or per ``x``), with the oracle's return as a dashed reference line."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    xs = list(range(len(returns))) if x is None else list(x)
    ax.plot(xs, returns, marker="o", label="return")
    if oracle is not None:
        ax.axhline(oracle, color="k", linestyle="--", label="oracle planner")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def write_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 10) -> Path:
    """Encode RGB frames (``[H, W, 3]`` uint8 each) as a looping GIF at ``fps``."""
    import imageio.v3 as iio

    if not frames:
        raise ValueError("no frames to write")
    stream = io.BytesIO()
    iio.imwrite(stream, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
    atomic_write_bytes(path, stream.getvalue())
    return Path(path)


def write_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an ``[H, W, 3]`` uint8 image as a PNG."""
    import imageio.v3 as iio

    stream = io.BytesIO()
    iio.imwrite(stream, image, extension=".png")
    atomic_write_bytes(path, stream.getvalue())
    return Path(path)
