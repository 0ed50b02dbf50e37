"""Camera frames from OpenCV on a grabber thread that keeps only the newest one.

Sources: a V4L2 index (`0`) or `/dev/videoN`, a video file, an `rtsp://` or `http://` (MJPEG) URL. The
thread reads continuously; a frame the consumer has not taken when the next one arrives is dropped (and
counted), never queued. A camera that is absent or lost is retried with exponential backoff; its loss and
its return are logged once each. Video files are paced at their own frame rate (`realtime`) or read one
frame ahead of the consumer, never dropping one (not `realtime`), and either loop or end.
Every wait has a timeout and watches one stop event; `close()` is idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edge.images import quiet_opencv
from edge.urls import redact_url

if TYPE_CHECKING:
    from edge.config_schema import CameraConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One captured frame: its sequence number (from 1), the BGR image and when it was captured (monotonic)."""

    seq: int
    image: np.ndarray
    captured_at: float


@dataclass(frozen=True)
class CameraStats:
    """Counters since start: frames captured, dropped unread, reconnections after a loss; current state."""

    captured: int
    dropped: int
    reconnects: int
    connected: bool
    ended: bool
    last_activity: float  # monotonic time of the last frame read or open attempt
    open_failures: int = 0  # attempts to open the source that failed (the camera's state is known after one)


def source_kind(source: str) -> str:
    """`v4l2`, `stream` (a URL) or `file` for a configured source string."""
    if source.isdigit() or source.startswith("/dev/"):
        return "v4l2"
    if "://" in source:
        return "stream"
    return "file"


class Camera:
    """A frame source with a newest-frame grabber thread. Use `start()`, `read()`, `close()` (or `with`).

    Args:
        cfg: the ``[camera]`` section: `source` (V4L2 index or /dev/videoN, video file, rtsp:// or http:// URL),
            `width`/`height` asked of a V4L2 camera (0: its default), `loop` (video files start again at the end;
            else the camera `ended` after the last frame), `realtime` (video files play at their frame rate,
            frames nobody took are dropped; false: the next frame is decoded only once the consumer has taken
            the previous one), `reconnect_min_s`/`reconnect_max_s` (backoff bounds for reopening an absent or
            lost source), `timeout_s` (open/read timeout for network streams).
    """

    def __init__(self, cfg: CameraConfig) -> None:
        self.source, self.kind = str(cfg.source), source_kind(str(cfg.source))
        self.name = redact_url(self.source)  # what logs and events show
        self.width, self.height, self.loop = cfg.width, cfg.height, cfg.loop
        self.paced_by_consumer = self.kind == "file" and not cfg.realtime
        self.reconnect_min_s, self.reconnect_max_s = cfg.reconnect_min_s, cfg.reconnect_max_s
        self.timeout_s = cfg.timeout_s
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken = 0  # seq of the last frame handed out by read()
        self._captured = self._dropped = self._reconnects = self._open_failures = 0
        self._connected = self._ended = False
        self._activity = time.monotonic()
        self._thread: threading.Thread | None = None

    # -- consumer side -----------------------------------------------------------------------------------------

    def start(self) -> Camera:
        """Start the grabber thread (it opens the source itself; an absent camera is retried, not fatal)."""
        if self._thread is None:
            quiet_opencv()
            self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
            self._thread.start()
        return self

    def read(self, timeout: float) -> Frame | None:
        """The newest frame not handed out before, waiting at most `timeout` s; None if none came or stopped."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._stop.is_set() and (self._latest is None or self._latest.seq <= self._taken):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._ended:
                    return None
                self._cond.wait(remaining)
            if self._latest is None or self._latest.seq <= self._taken:
                return None
            self._taken = self._latest.seq
            self._cond.notify_all()  # a consumer-paced file reader waits for this to decode the next frame
            return self._latest

    @property
    def stats(self) -> CameraStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            return CameraStats(self._captured, self._dropped, self._reconnects, self._connected, self._ended,
                               self._activity, self._open_failures)  # fmt: skip

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread, waiting at most `timeout` s (a read blocked in the driver is left to finish)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Camera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- grabber thread ----------------------------------------------------------------------------------------

    def _open(self) -> Any:
        """An opened cv2.VideoCapture, or None when the source cannot be opened now."""
        ms = int(self.timeout_s * 1000)
        if self.kind == "v4l2":
            dev: int | str = int(self.source) if self.source.isdigit() else self.source
            cap = cv2.VideoCapture(dev, cv2.CAP_V4L2)
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
                if self.width and self.height:
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        elif self.kind == "stream":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG) if Path(self.source).is_file() else None
        if cap is not None and not cap.isOpened():
            cap.release()
            cap = None
        return cap

    def _set(self, **state: Any) -> None:
        with self._cond:
            for k, v in state.items():
                setattr(self, f"_{k}", v)
            self._activity = time.monotonic()
            self._cond.notify_all()

    def _run(self) -> None:
        delay, lost, first = self.reconnect_min_s, False, True
        while not self._stop.is_set():
            self._set()  # an open attempt counts as activity (the watchdog sees retries on schedule)
            try:
                cap = self._open()
            except Exception as e:  # cv2.error from a driver or a source it cannot parse: retried like absence
                log.debug("camera %s: open failed: %s", self.name, e)
                cap = None
            if cap is None:
                with self._cond:
                    self._open_failures += 1
                if first or not lost:
                    log.warning("camera %s: cannot open; retrying with backoff up to %.0f s",
                                self.name, self.reconnect_max_s)  # fmt: skip
                lost, first = True, False
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            with self._cond:
                self._connected = True
                if lost:
                    self._reconnects += 1
            if lost or first:
                log.info("camera %s: %s", self.name, "back" if lost else "opened")
            first, lost, delay = False, False, self.reconnect_min_s
            try:
                outcome = self._grab(cap)
            except Exception:  # never a silent, dead camera thread: log it and retry like a lost camera
                log.exception("camera %s: reading failed", self.name)
                outcome = "lost"
            finally:
                cap.release()
                self._set(connected=False)
            if outcome == "ended":
                log.info("camera %s: end of video file", self.name)
                self._set(ended=True)
                return
            if outcome == "lost":
                log.warning("camera %s: lost; retrying with backoff up to %.0f s", self.name, self.reconnect_max_s)
                lost = True
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect_max_s)

    def _grab(self, cap: Any) -> str:
        """Read frames until the source fails; returns `lost`, `ended` or `stopped`."""
        pace = 0.0
        if self.kind == "file" and not self.paced_by_consumer:
            fps = cap.get(cv2.CAP_PROP_FPS)
            pace = 1.0 / fps if 0 < fps < 1000 else 1.0 / 25
        next_at = time.monotonic()
        while not self._stop.is_set():
            if self.paced_by_consumer and not self._wait_until_taken():
                break
            ok, image = cap.read()
            if not ok or image is None:
                if self.kind != "file":
                    return "lost"
                if not self.loop:
                    return "ended"
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = cap.read()
                if not ok or image is None:
                    return "lost"
            now = time.monotonic()
            with self._cond:
                latest = self._latest
                if latest is not None and latest.seq > self._taken:
                    self._dropped += 1
                seq = (latest.seq if latest else 0) + 1
                self._latest = Frame(seq, image, now)
                self._captured += 1
                self._activity = now
                self._cond.notify_all()
            if pace:
                next_at = max(next_at + pace, now - pace)
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        return "stopped"

    def _wait_until_taken(self) -> bool:
        """Consumer-paced files: wait until the last frame was handed out; False when stopping."""
        with self._cond:
            while self._latest is not None and self._latest.seq > self._taken:
                if self._stop.is_set():
                    return False
                self._cond.wait(0.25)
        return not self._stop.is_set()
