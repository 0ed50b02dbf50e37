"""The stats window: frame rates and inference-time percentiles over one stats interval (pure, time passed in).

The service feeds it the camera's and its own counters; `summary()` gives the interval's figures for
`edge.mqtt.contract.stats_payload` and starts the next interval.
"""

from __future__ import annotations

from collections import deque

import numpy as np

MAX_SAMPLES = 10_000  # inference times kept per interval (the newest); bounds memory at any frame rate


class StatsWindow:
    """Counts over one interval.

    Args:
        now: monotonic time the interval starts.
        captured, dropped, classified: the running counters at that time (frames from the camera, frames it
            dropped unread, frames classified).
    """

    def __init__(self, now: float, captured: int = 0, dropped: int = 0, classified: int = 0) -> None:
        self._base = (now, captured, dropped, classified)
        self._times: deque[float] = deque(maxlen=MAX_SAMPLES)

    def add_inference(self, ms: float) -> None:
        """One classified frame's inference time."""
        self._times.append(ms)

    def summary(self, now: float, captured: int, dropped: int, classified: int) -> dict[str, float]:
        """The interval's rates (per second) and inference percentiles (ms); starts the next interval at `now`.

        Returns:
            ``fps_captured``, ``fps_classified``, ``fps_dropped``, ``inference_ms_p50``, ``inference_ms_p95``
            (percentiles 0 when nothing was classified).
        """
        t0, captured0, dropped0, classified0 = self._base
        dt = max(now - t0, 1e-6)
        times = np.fromiter(self._times, dtype=np.float64) if self._times else np.zeros(1)
        p50, p95 = np.percentile(times, [50, 95])
        self._base = (now, captured, dropped, classified)
        self._times.clear()
        return {
            "fps_captured": (captured - captured0) / dt,
            "fps_classified": (classified - classified0) / dt,
            "fps_dropped": (dropped - dropped0) / dt,
            "inference_ms_p50": float(p50),
            "inference_ms_p95": float(p95),
        }


def status_line(stats: dict, mqtt_connected: bool) -> str:
    """The one-line systemd STATUS= for a stats payload (what `systemctl status edge-daemon` shows)."""
    camera = "ok" if stats["camera_connected"] else "away"
    return (f"{stats['fps_classified']} fps classified, p50 {stats['inference_ms_p50']} ms; camera {camera} "
            f"({stats['camera_reconnects']} reconnects); MQTT {'connected' if mqtt_connected else 'disconnected'}; "
            f"model {stats['model']} on {stats['device']}")  # fmt: skip
