"""Camera frames on a grabber thread that keeps only the newest one, undecoded until someone takes it.

Sources (`source_kind`): a V4L2 index (`0`) or `/dev/videoN`, a video file, an `rtsp://` or `http://` (MJPEG) URL
(`edge.sources.opencv`), a Pi camera `csi:N` or any `exec:COMMAND` writing MJPEG (`edge.sources.pipe`). The thread
reads continuously; a frame the consumer has not taken when the next one arrives is dropped (and counted),
never queued. Frames stay as cheap as the source allows: JPEG sources hand over the JPEG bytes (decoded by the
consumer at the size it needs, `edge.frames.decode`), other sources are converted to BGR only for a frame someone
asked for (`take()` with nothing new asks the thread to retrieve the next one). A camera that is absent or
lost (a child process that exits or hangs) is retried with exponential backoff; its loss and its return are
logged once each. Video files are paced at their own frame rate (`realtime`) or read one frame ahead of the
consumer, never dropping one (not `realtime`), and either loop or end. Every wait has a timeout and watches
one stop event; `close()` is idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.config.source_commands import command_for
from edge.config.urls import redact_url
from edge.frames.decode import decode_jpeg
from edge.frames.images import quiet_opencv
from edge.sources.opencv import OpenCvSource
from edge.sources.pipe import PipeSource
from edge.sources.source import CameraSource

if TYPE_CHECKING:
    from edge.config.schema import CameraConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapturedFrame:
    """One captured frame (an `edge.frames.frame.Frame`): its sequence number (from 1), when it was captured
    (monotonic), and its pixels: `jpeg` (undecoded JPEG bytes) or `pixels` (a decoded BGR image), exactly one."""

    seq: int
    captured_at: float
    jpeg: np.ndarray | None = None
    pixels: np.ndarray | None = None

    @property
    def image(self) -> np.ndarray | None:
        """The frame as a full-size BGR image (decodes a JPEG frame; None when it does not decode)."""
        return self.pixels if self.pixels is not None else decode_jpeg(self.jpeg)


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
    """`v4l2`, `stream` (a URL), `csi` (a Pi camera), `exec` (a command writing MJPEG) or `file`."""
    if source.isdigit() or source.startswith("/dev/"):
        return "v4l2"
    if source.startswith(("csi:", "exec:")):
        return source.split(":", 1)[0]
    if "://" in source:
        return "stream"
    return "file"


class Camera:
    """A frame source with a newest-frame grabber thread. Use `start()`, `take()`/`read()`, `close()` (or `with`).

    Args:
        cfg: the ``[camera]`` section: `source`, `width`/`height`/`frame_rate` asked of a V4L2 or CSI camera
            (0: see `size_hint`, or the camera's default), `loop`, `realtime`, `reconnect_min_s`/`reconnect_max_s`
            (backoff bounds for reopening an absent or lost source), `timeout_s` (open/read timeout of network
            streams; silence that counts as a lost child process).
        size_hint: (width, height) the frames are needed at: a V4L2 camera left at size 0 is asked for its mode
            nearest to it.
        on_frame: called (on the grabber thread) when a frame arrives that `take()` found missing.
    """

    def __init__(self, cfg: CameraConfig, *, size_hint: tuple[int, int] | None = None,
                 on_frame: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.source, self.kind = str(cfg.source), source_kind(str(cfg.source))
        self.name = redact_url(self.source)  # what logs and events show
        self.cfg, self.size_hint = cfg, size_hint
        self.loop = cfg.loop
        self.paced_by_consumer = self.kind == "file" and not cfg.realtime
        self.reconnect_min_s, self.reconnect_max_s = cfg.reconnect_min_s, cfg.reconnect_max_s
        self.on_frame = on_frame
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: CapturedFrame | None = None
        self._seq = 0  # frames grabbed
        self._taken = 0  # seq of the last frame handed out
        self._wanted = False  # take() found nothing new: retrieve the next frame and call on_frame
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

    def take(self, since: float = float("-inf")) -> CapturedFrame | None:
        """The newest frame not handed out before (and captured at `since` or later), without waiting; None if
        there is none: then the next frame is retrieved and `on_frame` called when it is there."""
        with self._cond:
            latest = self._latest
            if latest is None or latest.seq <= self._taken or latest.captured_at < since:
                self._wanted = True
                return None
            self._taken, self._wanted = latest.seq, False
            self._latest = None  # the consumer has it: the slot holds nothing decoded twice
            self._cond.notify_all()  # a consumer-paced file reader waits for this to read the next frame
            return latest

    def read(self, timeout: float) -> CapturedFrame | None:
        """The newest frame not handed out before, waiting at most `timeout` s; None if none came or stopped."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._stop.is_set():
                frame = self.take()
                if frame is not None:
                    return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._ended:
                    return None
                self._cond.wait(remaining)
        return None

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

    def _source(self) -> CameraSource:
        c = self.cfg
        if self.kind in ("csi", "exec"):
            def argv() -> list[str]:  # at every start: rpicam-vid may be installed meanwhile
                return command_for(self.source, width=c.width, height=c.height, frame_rate=c.frame_rate)

            return PipeSource(argv, self.name, timeout_s=c.timeout_s, stopping=self._stop.is_set)
        return OpenCvSource(self.source, self.kind, width=c.width, height=c.height, frame_rate=c.frame_rate,
                            timeout_s=c.timeout_s, size_hint=self.size_hint)  # fmt: skip

    def _set(self, **state: Any) -> None:
        with self._cond:
            for k, v in state.items():
                setattr(self, f"_{k}", v)
            self._activity = time.monotonic()
            self._cond.notify_all()

    def _run(self) -> None:
        delay, src = self.reconnect_min_s, self._source()
        self._said, self._retrying = "", False  # a failure was logged since the last frame (or the start)
        while not self._stop.is_set():
            self._set()  # an open attempt counts as activity (the watchdog sees retries on schedule)
            try:
                why = src.open()
            except Exception as e:  # cv2.error from a driver or a source it cannot parse: retried like absence
                why = str(e)
            outcome = "failed"
            if why is None:
                try:
                    outcome = self._grab(src)
                except Exception:  # never a silent, dead camera thread: log it and retry like a lost camera
                    log.exception("camera %s: reading failed", self.name)
                    outcome = "lost"
                why = src.failure or ("no frame" if outcome == "failed" else "stream ended")
            src.close()
            if outcome == "failed":  # not opened, or no frame came before it failed
                with self._cond:
                    self._open_failures += 1
            if self._connected:
                delay = self.reconnect_min_s
                self._set(connected=False)
            if outcome == "stopped":
                return
            if outcome == "ended":
                log.info("camera %s: end of video file", self.name)
                return self._set(ended=True)
            child_says = src.failure  # a child process's own reason: logged whenever it changes
            if not self._retrying or (child_says and child_says != self._said):
                what = "lost" if outcome == "lost" else "cannot open"
                log.warning("camera %s: %s; retrying with backoff up to %g s (%s)",
                            self.name, what, self.reconnect_max_s, why)  # fmt: skip
                self._said, self._retrying = child_says, True
            self._stop.wait(delay)
            delay = min(delay * 2, self.reconnect_max_s)

    def _up(self, src: CameraSource) -> None:
        """The first frame after an open: connected (a child that dies at once never is); after failures, back."""
        with self._cond:
            self._connected = True
            if self._retrying:
                self._reconnects += 1
        log.info("camera %s: %s: %s", self.name, "back" if self._retrying else "opened", src.description)
        self._said, self._retrying = "", False

    def _grab(self, src: CameraSource) -> str:
        """Read frames until the source fails: `lost` (after frames), `failed` (before any), `ended`, `stopped`."""
        pace = 1.0 / (src.fps or 25) if src.paced and not self.paced_by_consumer else 0.0
        next_at, got = time.monotonic(), False
        while not self._stop.is_set():
            if self.paced_by_consumer and not self._wait_until_taken():
                break
            if not src.grab():
                if self._stop.is_set():
                    break
                if not src.paced:
                    return "lost" if got else "failed"
                if not self.loop:
                    return "ended"
                if not (src.rewind() and src.grab()):
                    return "lost" if got else "failed"
            if not got:
                self._up(src)
                got = True
            now = time.monotonic()
            with self._cond:
                self._seq += 1
                self._captured += 1
                self._activity = now
                pending = self._latest is not None and self._latest.seq > self._taken  # retrieved, not yet taken
                want = src.raw or self.paced_by_consumer or self._wanted or pending
            jpeg, pixels = src.retrieve() if want else (None, None)
            self._store(CapturedFrame(self._seq, now, jpeg, pixels) if jpeg is not None or pixels is not None else None)
            if pace:
                next_at = max(next_at + pace, now - pace)
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        return "stopped"

    def _store(self, frame: CapturedFrame | None) -> None:
        """Make `frame` the newest (None: a frame grabbed but not retrieved); count what it supersedes."""
        call = None
        with self._cond:
            latest = self._latest
            if latest is not None and latest.seq > self._taken:
                self._dropped += 1
            if frame is None:
                self._dropped += 1  # grabbed, never retrieved: nobody asked for it
                return
            self._latest = frame
            if self._wanted:
                call, self._wanted = self.on_frame, False
            self._cond.notify_all()
        if call is not None:
            call()

    def _wait_until_taken(self) -> bool:
        """Consumer-paced files: wait until the last frame was handed out; False when stopping."""
        with self._cond:
            while self._latest is not None and self._latest.seq > self._taken:
                if self._stop.is_set():
                    return False
                self._cond.wait(0.25)
        return not self._stop.is_set()
