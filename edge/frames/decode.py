"""Pure: decode a camera frame once, at the smallest size that still covers what the models need.

A JPEG frame (an MJPEG camera's packet, a CSI/exec pipe's image) is decoded with libjpeg's DCT scaling
(`cv2.IMREAD_REDUCED_*`): at 1/2, 1/4 or 1/8 of its size the decoder skips most of the work, and the
resize to the model's input then starts from fewer pixels. The factor is the largest that keeps the
decoded image at least as large as every model input it feeds (each job's box scaled down by the same
factor), so no model sees an upscaled image. Grayscale models get only the JPEG's luma plane decoded.
Frames that come decoded (H.264 streams, YUYV cameras) are used as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.frames.mjpeg import jpeg_size

FACTORS = (8, 4, 2, 1)
_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
          8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip
_GRAY = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
         8: cv2.IMREAD_REDUCED_GRAYSCALE_8}  # fmt: skip


def _scaled(size: int, factor: int) -> int:
    return -(-size // factor)  # libjpeg rounds a scaled dimension up


def reduction(box: tuple[int, int], need: tuple[int, int]) -> int:
    """The largest factor in 8, 4, 2, 1 that keeps a (width, height) box at least `need` (width, height)."""
    for f in FACTORS:
        if _scaled(box[0], f) >= need[0] and _scaled(box[1], f) >= need[1]:
            return f
    return 1


def reduction_for(jobs: Sequence[tuple[tuple[int, int], tuple[int, int]]]) -> int:
    """One factor for a frame shared by several jobs, each `(box size, model input size)`: the smallest."""
    return min((reduction(box, need) for box, need in jobs), default=1)


def decode_jpeg(data: np.ndarray | bytes, factor: int = 1, gray: bool = False) -> np.ndarray | None:
    """A JPEG decoded at 1/`factor` of its size, BGR (or 2-D luma when `gray`); None when it does not decode."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data.reshape(-1)
    return cv2.imdecode(buf, (_GRAY if gray else _COLOR)[factor])


def frame_size(data: np.ndarray | bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG frame from its header, without decoding it."""
    return jpeg_size(data if isinstance(data, bytes) else memoryview(np.ascontiguousarray(data).reshape(-1)))


def decode_for(data: np.ndarray | bytes, needs: Sequence[tuple[int, int]], gray: bool = False) -> np.ndarray | None:
    """Decode a whole JPEG frame for models with these input sizes (w, h): once, as small as all of them allow."""
    size = frame_size(data)
    factor = reduction_for([(size, need) for need in needs]) if size else 1
    return decode_jpeg(data, factor, gray)
