"""The demo clip for `edge-daemon demo`: real test images of each class, held a few seconds each, as MJPG.

Each frame is one dataset image stretched to the frame size (the daemon stretches it back to the model's
square input) and encoded as Motion-JPEG in an AVI container, which OpenCV reads on every platform.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.frames.images import read_image
from trainer.data.dataset import scan_folder

log = logging.getLogger(__name__)


def pick_images(folder: Path, per_class: int = 1) -> list[tuple[str, Path]]:
    """The first `per_class` files (sorted by name) of every class folder: (class, path) in class order."""
    return [(name, p) for name, files in sorted(scan_folder(folder).items()) for p in files[:per_class]]


def frame_of(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A BGR frame showing the image stretched to width x height (bilinear)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def make_clip(
    folder: str | Path,
    out: str | Path,
    *,
    seconds_per_image: float = 2.0,
    per_class: int = 1,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 240),
    quality: int = 80,
) -> list[dict]:
    """Write the clip; returns its timeline [{start_frame, frames, label, source}] (also written as JSON).

    Args:
        folder: a class-per-folder image set (e.g. Fashion-MNIST's `test/`).
        out: the `.avi` to write.
        seconds_per_image: how long each image stays on screen.
        per_class: images per class (the first ones by file name).
        fps, size, quality: frame rate, (width, height) and JPEG quality of the MJPG stream.
    """
    out = Path(out)
    picks = pick_images(Path(folder), per_class)
    width, height = size
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise EdgeError(f"{out}: OpenCV cannot write an MJPG .avi there")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
    frames_each = max(1, round(seconds_per_image * fps))
    timeline, start = [], 0
    try:
        for label, path in picks:
            frame = frame_of(read_image(path), width, height)
            for _ in range(frames_each):
                writer.write(frame)
            timeline.append({"start_frame": start, "frames": frames_each, "label": label, "source": path.name})
            start += frames_each
    finally:
        writer.release()
    out.with_suffix(".json").write_text(json.dumps({"fps": fps, "segments": timeline}, indent=1) + "\n")
    log.info("wrote %s: %d frames, %d images, %d bytes", out, start, len(picks), out.stat().st_size)
    return timeline
