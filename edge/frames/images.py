"""Reading image files into the uint8 arrays the preprocessing takes (OpenCV's BGR, BGRA or gray).

Decoding is bounded: an image over `MAX_PIXELS` (the header is believed, nothing is allocated) is refused with
one line, so a 20000x20000 PNG cannot take a Pi's memory (a 64-megapixel image decodes to 192 MB at most).
OpenCV's own error lines are silenced; ours name the file.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.frames.mjpeg import jpeg_size

MAX_PIXELS = 64 * 1024 * 1024  # 64 MP: larger than any camera frame or photo a classifier needs (edge/__init__.py
MAX_FILE_BYTES = 256 << 20  # gives OpenCV the same limit); a compressed image this large is not a photo


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, BMP, GIF or JPEG header, without decoding; None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"\xff\xd8":
        return jpeg_size(memoryview(data))
    return None


def quiet_opencv() -> None:
    """Silence OpenCV's and FFmpeg's own messages; our one-line errors and the camera's log say what happened.

    Settings already in the environment (`OPENCV_FFMPEG_LOGLEVEL`, `OPENCV_LOG_LEVEL`) are left alone.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when the FFmpeg backend opens
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file (any format OpenCV reads) to uint8 BGR, BGRA or 2-D gray.

    Raises:
        EdgeError: the file is missing, a directory, too large, or not a decodable image.
    """
    p = Path(path)
    if p.is_dir():
        raise EdgeError(f"{p}: is a directory; give image files (e.g. {p}/*.jpg)")
    if not p.is_file():
        raise EdgeError(f"{p}: image not found")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise EdgeError(f"{p}: {p.stat().st_size >> 20} MB is too large for an image to classify; downscale it")
    quiet_opencv()
    data = np.fromfile(p, dtype=np.uint8)
    size = header_size(data[:65536].tobytes())
    if size and size[0] * size[1] > MAX_PIXELS:
        raise EdgeError(f"{p}: {size[0]}x{size[1]} is larger than {MAX_PIXELS // (1 << 20)} megapixels, the decode "
                        "limit; downscale it first")  # fmt: skip
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error:  # the header claims more than MAX_PIXELS (OpenCV refuses before allocating)
        raise EdgeError(
            f"{p}: larger than {MAX_PIXELS // (1 << 20)} megapixels, the decode limit; downscale it first"
        ) from None
    if image is None:
        raise EdgeError(f"{p}: not an image OpenCV can decode (use JPEG, PNG, BMP, WebP or TIFF)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return image
