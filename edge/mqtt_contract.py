"""The MQTT contract as pure functions: every topic name and every payload the daemon publishes.

No I/O here: `edge.publisher` sends what these functions return. Each JSON payload has a JSON Schema in
`edge/schemas/` (the tests validate every message of a real run against them); Home Assistant discovery is
`edge.ha_discovery`. Topics::

    {prefix}/{device_id}/availability     "online" / "offline" (retained; "offline" is also the last will)
    {prefix}/{device_id}/classification   JSON, retained            classification_payload()
    {prefix}/{device_id}/stats            JSON, not retained        stats_payload()
    {prefix}/{device_id}/event            JSON, not retained        camera_event(), model_reloaded(), ...

Names are validated once, by the config layer (`edge.config_checks`); these functions trust them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge.postprocess import Prediction

PAYLOAD_ONLINE = "online"
PAYLOAD_OFFLINE = "offline"


@dataclass(frozen=True)
class Topics:
    """The topics one device publishes on."""

    availability: str
    classification: str
    stats: str
    event: str


def topics(prefix: str, device_id: str) -> Topics:
    """The device's topics, e.g. ``topics("edge", "pi1").classification == "edge/pi1/classification"``."""
    base = f"{prefix}/{device_id}"
    return Topics(f"{base}/availability", f"{base}/classification", f"{base}/stats", f"{base}/event")


def iso_utc(timestamp: float) -> str:
    """A Unix time as ISO 8601 UTC with microseconds, e.g. ``2026-01-02T03:04:05.678901Z``.

    Microseconds, not milliseconds: subscribers measure capture-to-receipt latency from it.
    """
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def classification_payload(
    predictions: Sequence[Prediction], *, frame: int, inference_ms: float, model: str, timestamp: float
) -> dict:
    """The JSON object published on `.../classification` for one classified frame.

    Args:
        predictions: best first (may be empty when nothing reached the threshold).
        frame: the frame counter since start-up.
        inference_ms: time spent in the interpreter for this frame.
        model: the model's name (file stem).
        timestamp: Unix time the frame was captured.

    Returns:
        ``{"label", "index", "score", "top_k": [{"index", "label", "score"}...], "timestamp", "frame",
        "inference_ms", "model"}``; with no predictions: label None, index None, score 0.0, top_k [].
    """
    top = [{"index": int(p.index), "label": p.label, "score": round(float(p.score), 4)} for p in predictions]
    best = top[0] if top else {"index": None, "label": None, "score": 0.0}
    return {
        "label": best["label"],
        "index": best["index"],
        "score": best["score"],
        "top_k": top,
        "timestamp": iso_utc(timestamp),
        "frame": int(frame),
        "inference_ms": round(float(inference_ms), 2),
        "model": model,
    }


def stats_payload(window: Mapping[str, float], camera: Any, mqtt: Mapping[str, int], *, classified: int,
                  errors: int, uptime_s: float, model: str, device: str) -> dict:  # fmt: skip
    """The JSON object published on `.../stats` every `stats.interval_s`.

    Args:
        window: rates and inference percentiles over the last interval (`edge.stats.StatsWindow.summary`):
            `fps_captured`, `fps_classified`, `fps_dropped`, `inference_ms_p50`, `inference_ms_p95`.
        camera: the camera's counters (`dropped`, `connected`, `reconnects`).
        mqtt: the publisher's counters (`mqtt_reconnects`, `queued`, `dropped`, `published`).
        classified: frames classified since start-up; errors: frames whose inference failed.
        uptime_s: seconds since start-up; model, device: what classifies.
    """
    return {
        **{k: round(float(window[k]), 2) for k in STATS_WINDOW_KEYS},
        "frames_classified": int(classified),
        "inference_errors": int(errors),
        "frames_dropped": int(camera.dropped),
        "camera_connected": bool(camera.connected),
        "camera_reconnects": int(camera.reconnects),
        "uptime_s": round(float(uptime_s), 1),
        "model": model,
        "device": device,
        **{k: int(mqtt[k]) for k in MQTT_COUNTER_KEYS},
    }


STATS_WINDOW_KEYS = ("fps_captured", "fps_classified", "fps_dropped", "inference_ms_p50", "inference_ms_p95")
MQTT_COUNTER_KEYS = ("mqtt_reconnects", "queued", "dropped", "published")


def camera_event(connected: bool, *, source: str, reconnects: int, timestamp: float) -> dict:
    """`camera_connected` / `camera_lost` on `.../event`; `source` must already be redacted (`edge.urls`)."""
    return {"event": "camera_connected" if connected else "camera_lost", "source": source,
            "reconnects": int(reconnects), "timestamp": iso_utc(timestamp)}  # fmt: skip


def model_reloaded(*, reason: str, path: str, model: str, classes: int, device: str, timestamp: float) -> dict:
    """`model_reloaded` on `.../event`: the new model runs (reason: `SIGHUP` or `model file changed`)."""
    return {"event": "model_reloaded", "reason": reason, "path": path, "model": model, "classes": int(classes),
            "device": device, "timestamp": iso_utc(timestamp)}  # fmt: skip


def model_reload_failed(*, reason: str, path: str, error: str, model: str, timestamp: float) -> dict:
    """`model_reload_failed` on `.../event`: the new model was refused; `model` is the one still running."""
    return {"event": "model_reload_failed", "reason": reason, "path": path, "error": error, "model": model,
            "timestamp": iso_utc(timestamp)}  # fmt: skip
