"""Tiny NumPy rasteriser for ``render_mode="rgb_array"``: filled rectangles, thick segments and
discs on an ``[H, W, 3]`` uint8 image. Coordinates are pixels as ``(column, row)`` floats; shapes
that fall partly outside the image are cropped."""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]


def blank(height: int, width: int, color: Color = (255, 255, 255)) -> np.ndarray:
    """A ``[height, width, 3]`` uint8 image filled with ``color``."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = color
    return image


def _window(image: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice] | None:
    """Row and column slices of the pixels whose centres may lie in the box ``[lo, hi]``."""
    height, width = image.shape[:2]
    c0, r0 = max(int(np.floor(lo[0])), 0), max(int(np.floor(lo[1])), 0)
    c1, r1 = min(int(np.ceil(hi[0])) + 1, width), min(int(np.ceil(hi[1])) + 1, height)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _paint(image: np.ndarray, lo: np.ndarray, hi: np.ndarray, inside, color: Color) -> None:
    """Paint ``color`` on pixels in the box ``[lo, hi]`` where ``inside(cols, rows)`` is True."""
    window = _window(image, lo, hi)
    if window is None:
        return
    rows, cols = np.mgrid[window[0], window[1]]
    mask = inside(cols + 0.5, rows + 0.5)
    image[window][mask] = color


def fill_rect(image: np.ndarray, corner0, corner1, color: Color) -> None:
    """Fill the axis-aligned rectangle with opposite corners ``corner0`` and ``corner1``."""
    lo, hi = np.minimum(corner0, corner1), np.maximum(corner0, corner1)
    _paint(image, lo, hi, lambda c, r: (c >= lo[0]) & (c <= hi[0]) & (r >= lo[1]) & (r <= hi[1]), color)


def draw_segment(image: np.ndarray, start, end, thickness: float, color: Color) -> None:
    """Draw a segment from ``start`` to ``end`` with round caps, ``thickness`` pixels wide."""
    start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    half = thickness / 2.0
    direction = end - start
    length_sq = max(float(direction @ direction), 1e-12)

    def inside(c: np.ndarray, r: np.ndarray) -> np.ndarray:
        t = np.clip(((c - start[0]) * direction[0] + (r - start[1]) * direction[1]) / length_sq, 0, 1)
        return (c - start[0] - t * direction[0]) ** 2 + (r - start[1] - t * direction[1]) ** 2 <= half**2

    _paint(image, np.minimum(start, end) - half, np.maximum(start, end) + half, inside, color)


def draw_disc(image: np.ndarray, centre, radius: float, color: Color) -> None:
    """Fill the disc of ``radius`` pixels around ``centre``."""
    centre = np.asarray(centre, dtype=float)
    inside = lambda c, r: (c - centre[0]) ** 2 + (r - centre[1]) ** 2 <= radius**2  # noqa: E731
    _paint(image, centre - radius, centre + radius, inside, color)
