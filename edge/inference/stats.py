"""The stats window: frame rates and inference-time percentiles over one stats interval (pure, time passed in).

The service feeds it the camera's and its own counters; `summary()` gives the interval's figures for
`edge.mqtt.contract.stats_payload` and starts the next interval. A rate is a count over the real elapsed time:
until the run's first frame arrives the clock does not run (a camera that takes 3 s to open does not dilute the
first rate), and a window shorter than MIN_WINDOW_S gives no rate of its own (a stats message right after a
connect would divide a burst of frames by a few milliseconds): it repeats the last real rates (0 before any) and
keeps counting into the next summary.
"""

from __future__ import annotations

from collections import deque

import numpy as np

MAX_SAMPLES = 10_000  # inference times kept per interval (the newest); bounds memory at any frame rate
MIN_WINDOW_S = 1.0  # the shortest elapsed time a rate is computed over
RATE_KEYS = ("fps_captured", "fps_classified", "fps_dropped")


class StatsWindow:
    """Counts over one interval.

    Args:
        now: monotonic time the interval starts.
        captured, dropped, classified: the running counters at that time (frames from the camera, frames it
            dropped unread, frames classified).
        flowing: frames came before this interval (its clock runs from `now`); False: from its first frame.
    """

    def __init__(self, now: float, captured: int = 0, dropped: int = 0, classified: int = 0, *,
                 flowing: bool = False) -> None:  # fmt: skip
        self._base = (now, captured, dropped, classified)
        self._times: deque[float] = deque(maxlen=MAX_SAMPLES)
        self._first: float | None = None  # the first frame's time, while not yet flowing
        self._flowing = flowing
        self._rates = dict.fromkeys(RATE_KEYS, 0.0)  # the last real rates

    @property
    def flowing(self) -> bool:
        """True once a frame has been counted (in this interval or before it)."""
        return self._flowing or self._first is not None

    def add_inference(self, ms: float, at: float | None = None) -> None:
        """One classified frame's inference time; `at`: its monotonic time (the clock starts at the first)."""
        self._times.append(ms)
        if self._first is None and not self._flowing:
            self._first = at if at is not None else self._base[0]

    def summary(self, now: float, captured: int, dropped: int, classified: int) -> dict[str, float]:
        """The interval's rates (per second) and inference percentiles (ms); starts the next interval at `now`.

        Returns:
            ``fps_captured``, ``fps_classified``, ``fps_dropped``, ``inference_ms_p50``, ``inference_ms_p95``
            (percentiles 0 when nothing was classified). Under MIN_WINDOW_S since the interval started (or
            since the first frame), the rates are the last real ones and the interval goes on.
        """
        t0, captured0, dropped0, classified0 = self._base
        start = t0 if self._flowing else self._first
        if start is None and captured > captured0:  # frames came but none was classified (inference errors)
            start = t0
        times = np.fromiter(self._times, dtype=np.float64) if self._times else np.zeros(1)
        p50, p95 = np.percentile(times, [50, 95])
        percentiles = {"inference_ms_p50": float(p50), "inference_ms_p95": float(p95)}
        if start is None or now - start < MIN_WINDOW_S:
            return {**self._rates, **percentiles}
        elapsed = now - start
        self._rates = {"fps_captured": (captured - captured0) / elapsed,
                       "fps_classified": (classified - classified0) / elapsed,
                       "fps_dropped": (dropped - dropped0) / elapsed}  # fmt: skip
        self._base, self._flowing, self._first = (now, captured, dropped, classified), True, None
        self._times.clear()
        return {**self._rates, **percentiles}


def status_line(stats: dict, mqtt_connected: bool) -> str:
    """The one-line systemd STATUS= for a stats payload (what `systemctl status edge-daemon` shows)."""
    camera = "ok" if stats["camera_connected"] else "away"
    return (f"{stats['fps_classified']} fps classified, p50 {stats['inference_ms_p50']} ms; camera {camera} "
            f"({stats['camera_reconnects']} reconnects); MQTT {'connected' if mqtt_connected else 'disconnected'}; "
            f"model {stats['model']} on {stats['device']}")  # fmt: skip
