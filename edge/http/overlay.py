"""The picture the live page shows: a camera frame sized for viewing, with the model's verdict drawn on it (pure).

A dark band across the top carries the label and score (left) and the classification rate (right); regions,
when a frame has them, get a box each with their own label. `edge.http.tap` calls this only while someone
watches, never on the classifier's thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.frames.regions import pixel_box

VIEW_MIN_WIDTH, VIEW_MAX_WIDTH = 480, 960  # the picture is scaled into this range (small frames up, large down)
BAND = (24, 24, 24)  # BGR
TEXT = (255, 255, 255)
BOX = (0, 200, 255)  # amber, visible on most scenes
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Region:
    """A part of the frame classified on its own: its box as `[[regions]]` gives it (x, y, width, height in
    frame pixels, or fractions of the frame when all are at most 1) and its verdict."""

    box: tuple[float, float, float, float]
    label: str | None
    score: float
    name: str = ""


def verdict(label: str | None, score: float) -> str:
    """The text shown for a label and its score, e.g. ``Sneaker 97.3%`` (one decimal, cut, never rounded up:
    0.996 is 99.6%, 0.9999 is 99.9%, as the payload's score reads); ``no class above threshold`` for None."""
    if label is None:
        return "no class above threshold"
    return f"{ascii_text(label)} {math.floor(round(score * 1000, 3)) / 10:.1f}%"


def ascii_text(text: str) -> str:
    """What OpenCV's Hershey fonts can draw: ASCII, other characters shown as `?`."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def view_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) a frame is shown at: its own, scaled into VIEW_MIN_WIDTH..VIEW_MAX_WIDTH."""
    target = min(max(width, VIEW_MIN_WIDTH), VIEW_MAX_WIDTH)
    return target, max(1, round(height * target / width))


def as_view(image: np.ndarray) -> np.ndarray:
    """A BGR copy of a frame (BGR or gray) at its view size."""
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 or image.shape[2] == 1 else image
    size = view_size(bgr.shape[1], bgr.shape[0])
    if size == (bgr.shape[1], bgr.shape[0]):
        return bgr.copy()
    shrinking = size[0] < bgr.shape[1]
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def draw_overlay(image: np.ndarray, label: str | None, score: float | None, fps: float, regions: Sequence[Region] = (),
                 frame_size: tuple[int, int] | None = None) -> np.ndarray:  # fmt: skip
    """The frame at its view size with the verdict band and region boxes drawn on it (the input is not changed).

    Args:
        image: the frame (BGR or gray, uint8), possibly decoded at a reduced size.
        label, score: the whole frame's best class (label None: nothing reached the threshold; score None: the
            whole frame is not classified, only regions).
        fps: frames classified per second lately.
        regions: boxes of the full frame with their verdicts.
        frame_size: the full frame's (width, height), which region boxes refer to (default: the image's).
    """
    view = as_view(image)
    w = view.shape[1]
    full_w, full_h = frame_size or (image.shape[1], image.shape[0])
    scale = w / full_w
    size = w / 640 * 0.8
    thick = max(1, round(size * 2))
    band = round(size * 44)
    top = view[:band]
    top[:] = (top * 0.35 + np.array(BAND) * 0.65).astype(np.uint8)  # darkened, the scene still shows through
    baseline = band - round(size * 14)
    text = verdict(label, score) if score is not None else f"{len(regions)} regions"
    cv2.putText(view, text, (round(size * 12), baseline), FONT, size, TEXT, thick, cv2.LINE_AA)
    rate = f"{fps:.1f} fps"
    (tw, _), _ = cv2.getTextSize(rate, FONT, size * 0.8, thick)
    cv2.putText(view, rate, (w - tw - round(size * 12), baseline), FONT, size * 0.8, TEXT, thick, cv2.LINE_AA)
    for r in regions:
        x, y, x1, y1 = (round(v * scale) for v in pixel_box(r.box, full_w, full_h))
        cv2.rectangle(view, (x, y), (x1, y1), BOX, thick + 1)
        text = f"{ascii_text(r.name)}: {verdict(r.label, r.score)}" if r.name else verdict(r.label, r.score)
        cv2.putText(view, text, (x + 4, max(y - 6, band + round(size * 20))), FONT, size * 0.7, BOX, thick,
                    cv2.LINE_AA)  # fmt: skip
    return view
