"""Regions of interest (pure): a box of the config turned into pixels of a frame, and the crop.

A box is `[x, y, w, h]`, in pixels of the camera frame or, when all four are at most 1, in fractions of it
(so the same config works at any resolution). Without `[[regions]]` the whole frame is the one region.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WHOLE_FRAME = (0.0, 0.0, 1.0, 1.0)


def pixel_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """`(x0, y0, x1, y1)` in pixels of a `width` x `height` frame, clipped to it (at least one pixel each way)."""
    x, y, w, h = box
    if max(box) <= 1:
        x, y, w, h = x * width, y * height, w * width, h * height
    x0, y0 = min(round(x), width - 1), min(round(y), height - 1)
    x1, y1 = max(x0 + 1, min(round(x + w), width)), max(y0 + 1, min(round(y + h), height))
    return max(x0, 0), max(y0, 0), x1, y1


def fits(box: Sequence[float], width: int, height: int) -> bool:
    """True when the box lies inside a `width` x `height` frame (fractions always do)."""
    x, y, w, h = box
    return max(box) <= 1 or (x + w <= width and y + h <= height)


def crop(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The region of a decoded frame (a view: no copy)."""
    x0, y0, x1, y1 = pixel_box(box, image.shape[1], image.shape[0])
    return image[y0:y1, x0:x1]
