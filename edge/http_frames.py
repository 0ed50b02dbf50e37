"""The frame tap: the classifier drops each classified frame here; viewers take the newest one as a JPEG.

The classifier's side, `offer()`, keeps references under a lock held for microseconds: no copy, no drawing, no
encoding, so it costs next to nothing whether or not anyone watches. Encoding happens on the viewer's own
thread, only when a stream or snapshot client asks, and once per frame however many ask (one cached JPEG per
kind). A viewer waits for a frame newer than the one it sent (`wait_newer`), so a slow one simply skips frames.

The tap also keeps the inference times and the classification rate the live page shows, and rolls the live
stats window (`edge.stats.StatsWindow`) when the server's thread asks.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.http_overlay import Region, draw_overlay
from edge.stats import StatsWindow

JPEG_QUALITY = 80
FPS_SAMPLES = 64  # offer times kept for the rate (the newest)
FPS_STALE_S = 2.0  # no frame for this long: the rate shown is 0


@dataclass(frozen=True)
class TappedFrame:
    """One classified frame as offered: the image (not copied: the producer must not change it afterwards)."""

    seq: int
    image: np.ndarray
    scores: np.ndarray
    labels: Sequence[str]
    regions: Sequence[Region]


class FrameTap:
    """The newest classified frame, its verdict and recent rates, shared between the classifier and viewers.

    Args:
        active: False when no server runs: `offer()` then returns at once and keeps nothing.
        observe: called with each frame's inference time in seconds (the metrics' histogram).
    """

    def __init__(self, *, active: bool = True, observe: Callable[[float], None] | None = None) -> None:
        self.active = active
        self._observe = observe
        self._cond = threading.Condition()
        self._latest: TappedFrame | None = None
        self._times: deque[float] = deque(maxlen=FPS_SAMPLES)
        self._window = StatsWindow(time.monotonic())
        self._summary: dict[str, float] | None = None
        self._encode_lock = threading.Lock()  # one encode at a time; the others then reuse its result
        self._cache: dict[bool, tuple[int, bytes]] = {}
        self.encoded = 0  # JPEGs made since start (stays 0 while nobody watches)
        self._closed = False

    # -- the classifier's side -------------------------------------------------------------------------------------

    def offer(self, image: np.ndarray, scores: np.ndarray, labels: Sequence[str], inference_ms: float,
              regions: Sequence[Region] = ()) -> None:  # fmt: skip
        """Record a classified frame (its image, class scores, the model's labels, inference time). Never blocks."""
        if not self.active:
            return
        now = time.monotonic()
        with self._cond:
            seq = self._latest.seq + 1 if self._latest else 1
            self._latest = TappedFrame(seq, image, scores, labels, regions)
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
            (frame number, JPEG bytes); encoded at most once per frame and kind.
        """
        with self._encode_lock:
            latest = self._latest
            if latest is None:
                return None
            cached = self._cache.get(raw)
            if cached is not None and cached[0] == latest.seq:
                return cached
            image = latest.image if raw else self._overlay(latest)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                return None
            self.encoded += 1
            self._cache[raw] = (latest.seq, buf.tobytes())
            return self._cache[raw]

    def _overlay(self, frame: TappedFrame) -> np.ndarray:
        best = int(np.argmax(frame.scores)) if frame.scores.size else -1
        label = frame.labels[best] if 0 <= best < len(frame.labels) else None
        score = float(frame.scores[best]) if best >= 0 else 0.0
        return draw_overlay(frame.image, label, score, self.fps(time.monotonic()), frame.regions)

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
