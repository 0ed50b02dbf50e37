"""The frame tap: the classifier's frames and verdicts go in; viewers take the newest one as a JPEG.

The loop's side costs next to nothing whether or not anyone watches: `taken(frame)` keeps a reference to each
camera frame handed to the classifier (undecoded JPEG bytes or pixels, as the camera gave it), `offer()` pairs
the frame's result with it; no copy, no decoding, no drawing, no encoding. That happens on a viewer's own
thread, only when a stream or snapshot client asks, and once per frame however many ask (one cached JPEG per
kind); a raw snapshot of a JPEG camera is the camera's own JPEG, not even re-encoded. A viewer waits for a frame
newer than the one it sent (`wait_newer`), so a slow one simply skips frames.

The tap also keeps the inference times and the classification rate the live page shows, and rolls the live
stats window (`edge.inference.stats.StatsWindow`) when the server's thread asks.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.frames.decode import decode_for, decode_jpeg, frame_size
from edge.frames.frame import Frame
from edge.http.overlay import Region, draw_overlay, view_size
from edge.inference.stats import StatsWindow

JPEG_QUALITY = 80
FPS_SAMPLES = 64  # offer times kept for the rate (the newest)
FPS_STALE_S = 2.0  # no frame for this long: the rate shown is 0
IN_FLIGHT = 16  # frames taken and not yet classified that are kept (more than any worker pool holds)


Verdict = tuple[str | None, Sequence[float], np.ndarray, Sequence[str]]  # (region name or None, box, scores, labels)


@dataclass(frozen=True)
class TappedFrame:
    """One classified frame: the camera's frame (`edge.frames.frame.Frame`: `jpeg` bytes or `pixels`, not copied: the
    camera never changes a frame it handed out) and its verdicts (the whole frame, or one per region)."""

    seq: int
    frame: Frame
    verdicts: Sequence[Verdict]


class FrameTap:
    """The newest classified frame, its verdict and recent rates, shared between the classifier and viewers.

    Args:
        active: False when no server runs: `taken()` and `offer()` then return at once and keep nothing.
        observe: called with each frame's inference time in seconds (the metrics' histogram).
    """

    def __init__(self, *, active: bool = True, observe: Callable[[float], None] | None = None) -> None:
        self.active = active
        self._observe = observe
        self._cond = threading.Condition()
        self._latest: TappedFrame | None = None
        self._taken: OrderedDict[int, Frame] = OrderedDict()  # seq -> frame, until its result comes
        self._times: deque[float] = deque(maxlen=FPS_SAMPLES)
        self._window = StatsWindow(time.monotonic())
        self._summary: dict[str, float] | None = None
        self._encode_lock = threading.Lock()  # one encode at a time; the others then reuse its result
        self._cache: dict[bool, tuple[int, bytes]] = {}
        self.encoded = 0  # JPEGs made since start (stays 0 while nobody watches)
        self._closed = False

    # -- the classifier's side -------------------------------------------------------------------------------------

    def taken(self, frame: Frame) -> None:
        """A camera frame was handed to the classifier (`edge.inference.flow.FrameFlow.on_take`). Never blocks."""
        if not self.active:
            return
        with self._cond:
            self._taken[frame.seq] = frame
            while len(self._taken) > IN_FLIGHT:
                self._taken.popitem(last=False)

    def offer(self, seq: int, inference_ms: float, verdicts: Sequence[Verdict]) -> None:
        """Frame `seq` was classified: its inference time and, per stream, (region name or None for the whole
        frame, box as fractions of the frame, class scores, the model's labels). Never blocks."""
        if not self.active:
            return
        now = time.monotonic()
        with self._cond:
            frame = self._taken.pop(seq, None)
            while self._taken and next(iter(self._taken)) < seq:  # older ones failed: they will not come
                self._taken.popitem(last=False)
            if frame is not None:
                self._latest = TappedFrame(seq, frame, verdicts)
            self._times.append(now)
            self._window.add_inference(inference_ms)
            self._cond.notify_all()
        if self._observe is not None:
            self._observe(inference_ms / 1000.0)

    # -- the viewers' side -----------------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The newest frame's number (0 before the first)."""
        latest = self._latest
        return latest.seq if latest else 0

    @property
    def last_at(self) -> float | None:
        """Monotonic time of the newest frame, None before the first."""
        with self._cond:
            return self._times[-1] if self._times else None

    def fps(self, now: float) -> float:
        """Frames classified per second over the newest FPS_SAMPLES (0 once none came for FPS_STALE_S)."""
        with self._cond:
            times = list(self._times)
        if len(times) < 2 or now - times[-1] > FPS_STALE_S:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)

    def wait_newer(self, seq: int, timeout: float) -> int:
        """Wait up to `timeout` s for a frame newer than `seq` (or `close()`); returns the newest frame's number."""
        with self._cond:
            self._cond.wait_for(lambda: self.seq > seq or self._closed, timeout)
            return self.seq

    def close(self) -> None:
        """Wake every waiting viewer for good (the server is stopping)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def jpeg(self, raw: bool = False) -> tuple[int, bytes] | None:
        """The newest frame as JPEG, with the overlay (or `raw`, as captured); None before the first frame.

        Returns:
            (frame number, JPEG bytes); encoded at most once per frame and kind (a raw JPEG frame: never).
        """
        with self._encode_lock:
            latest = self._latest
            if latest is None:
                return None
            cached = self._cache.get(raw)
            if cached is not None and cached[0] == latest.seq:
                return cached
            if raw and latest.frame.jpeg is not None:
                self._cache[raw] = (latest.seq, np.asarray(latest.frame.jpeg, np.uint8).tobytes())
                return self._cache[raw]
            image = self._picture(latest.frame, full=raw)
            if image is None:
                return None
            if not raw:
                image = self._overlay(latest, image)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                return None
            self.encoded += 1
            self._cache[raw] = (latest.seq, buf.tobytes())
            return self._cache[raw]

    @staticmethod
    def _picture(frame: Frame, full: bool) -> np.ndarray | None:
        """The frame's pixels: as they are, or its JPEG decoded (for the overlay only as large as it is shown)."""
        if frame.pixels is not None:
            return frame.pixels
        size = frame_size(frame.jpeg)
        return decode_for(frame.jpeg, [view_size(*size)]) if size and not full else decode_jpeg(frame.jpeg)

    def _overlay(self, tapped: TappedFrame, image: np.ndarray) -> np.ndarray:
        label, score, regions = None, None, []
        for name, box, scores, labels in tapped.verdicts:
            best = int(np.argmax(scores)) if scores.size else -1
            top = (labels[best] if 0 <= best < len(labels) else None), (float(scores[best]) if best >= 0 else 0.0)
            if name is None:
                label, score = top
            else:
                regions.append(Region(tuple(box), *top, name=name))  # type: ignore[arg-type]
        frame = tapped.frame
        full = frame_size(frame.jpeg) if frame.jpeg is not None else (image.shape[1], image.shape[0])
        return draw_overlay(image, label, score, self.fps(time.monotonic()), regions, full or None)

    # -- the live stats window ------------------------------------------------------------------------------------

    def roll_window(self, now: float, captured: int, dropped: int, classified: int) -> dict[str, float]:
        """Close the live stats window at `now` (rates and inference percentiles since the last roll)."""
        with self._cond:  # swap the window under the lock, compute the percentiles outside it
            closing, self._window = self._window, StatsWindow(now, captured, dropped, classified)
        summary = closing.summary(now, captured, dropped, classified)
        with self._cond:
            self._summary = summary
        return summary

    def window(self) -> dict[str, float] | None:
        """The last closed live stats window (None before the first roll)."""
        with self._cond:
            return self._summary
