"""OpenCV sources for the camera thread: V4L2 cameras, video files, `rtsp://` and `http://` streams.

A source reads the next frame cheaply (`grab()`) and hands over only the frames someone will classify
(`retrieve()`). MJPEG sources (an MJPG video file, an HTTP MJPEG stream, a V4L2 camera in MJPG mode) are read
as raw packets (`CAP_PROP_FORMAT = -1` with FFmpeg, `CAP_PROP_CONVERT_RGB = 0` with V4L2): `retrieve()` gives the
JPEG bytes and decoding is left to the classifier, at the size it needs. Other codecs (H.264 RTSP, YUYV
cameras) are decoded by the backend, but only converted to BGR by `retrieve()` when asked for.

V4L2 cameras are asked for MJPG (most USB cameras offer it; a camera that does not keeps its own format) and,
when `[camera]` leaves the size to the camera, for the mode nearest `size_hint` (what the model needs). Network
streams are opened over TCP (RTSP: `rtsp_transport=tcp`, unless $OPENCV_FFMPEG_CAPTURE_OPTIONS says otherwise)
with `timeout_s` as the open and read timeout.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

MJPEG_FOURCCS = frozenset({"MJPG", "mjpg", "JPEG", "jpeg", "AVRn", "LJPG", "dmb1"})
FFMPEG_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
RTSP_OVER_TCP = "rtsp_transport;tcp"


def fourcc_text(value: float) -> str:
    """A FOURCC property as its four characters ('' when unset)."""
    code = int(value) & 0xFFFFFFFF
    return code.to_bytes(4, "little").decode("latin-1").strip("\x00") if code else ""


def use_tcp_for_rtsp() -> None:
    """Ask OpenCV's FFmpeg backend for RTSP over TCP, unless the user set its capture options already."""
    os.environ.setdefault(FFMPEG_OPTIONS, RTSP_OVER_TCP)


class OpenCvSource:
    """One OpenCV capture: `open()`, then `grab()` per frame and `retrieve()` for the frames wanted.

    Args:
        source: the configured source string; kind: `v4l2`, `stream` or `file` (`edge.sources.camera.source_kind`).
        width, height: capture size asked of a V4L2 camera (0: `size_hint`, else the camera's default).
        frame_rate: frame rate asked of a V4L2 camera (0: its default).
        timeout_s: open/read timeout of network streams.
        size_hint: (width, height) the frames are needed at, for a V4L2 camera left at size 0.
    """

    def __init__(self, source: str, kind: str, *, width: int = 0, height: int = 0, frame_rate: float = 0.0,
                 timeout_s: float = 10.0, size_hint: tuple[int, int] | None = None) -> None:  # fmt: skip
        self.source, self.kind = source, kind
        self.width, self.height, self.frame_rate = width, height, frame_rate
        self.timeout_s, self.size_hint = timeout_s, size_hint
        self.raw = False  # retrieve() gives JPEG bytes, not decoded images
        self.fps = 0.0  # the source's own frame rate when it says (files are paced by it)
        self.description = ""
        self.failure = ""  # OpenCV does not say why a read failed
        self._cap: Any = None

    def open(self) -> str | None:
        """Open the source; None on success, else why it cannot be opened now."""
        ms = int(self.timeout_s * 1000)
        if self.kind == "v4l2":
            dev: int | str = int(self.source) if self.source.isdigit() else self.source
            cap = cv2.VideoCapture(dev, cv2.CAP_V4L2)
        elif self.kind == "stream":
            use_tcp_for_rtsp()
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, params)
        elif Path(self.source).is_file():
            cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG)
        else:
            return "no such file"
        if not cap.isOpened():
            cap.release()
            return "cannot be opened"
        self._cap = cap
        if self.kind == "v4l2":
            self._setup_v4l2(cap)
        else:
            self.raw = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)) in MJPEG_FOURCCS and cap.set(cv2.CAP_PROP_FORMAT, -1)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 0.0
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        codec = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)) or "?"
        self.description = f"{w}x{h} {codec}" + (f" at {self.fps:g} fps" if self.fps else "") + (
            ", undecoded JPEG frames" if self.raw else ", decoded on demand")
        return None

    def _setup_v4l2(self, cap: Any) -> None:
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        size = (self.width, self.height) if self.width and self.height else self.size_hint
        if size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if self.frame_rate:
            cap.set(cv2.CAP_PROP_FPS, self.frame_rate)
        if fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)) in MJPEG_FOURCCS:
            self.raw = bool(cap.set(cv2.CAP_PROP_CONVERT_RGB, 0))

    @property
    def paced(self) -> bool:
        """True for files, which must be paced at their frame rate to behave like a camera."""
        return self.kind == "file"

    def grab(self) -> bool:
        """Read the next frame (a packet, or a frame decoded in the backend); False when none came."""
        return bool(self._cap.grab())

    def retrieve(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The last grabbed frame as (JPEG bytes, None) for raw sources or (None, BGR image); (None, None) if bad."""
        ok, data = self._cap.retrieve()
        if not ok or data is None or data.size == 0:
            return None, None
        if not self.raw:
            return None, data
        jpeg = data.reshape(-1)
        if jpeg.size < 4 or jpeg[0] != 0xFF or jpeg[1] != 0xD8:  # not a JPEG after all: decode it from now on
            log.info("camera %s: packets are not JPEG images; decoding them in the backend", self.source)
            self.raw = False
            self._cap.set(cv2.CAP_PROP_FORMAT, cv2.CV_8UC3)
            return None, None
        return jpeg, None

    def rewind(self) -> bool:
        """Back to the first frame of a video file."""
        return bool(self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0))

    def close(self) -> None:
        """Release the capture (idempotent)."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
