"""What the HTTP endpoints say about the daemon, as pure functions of a snapshot of its state.

The service hands the server a function returning a `Snapshot` (its counters and the last classification
payload it published); `/api/state` is built from it with `edge.mqtt.contract`'s own functions, so it is the
same JSON as the MQTT state, and `/healthz` says whether the daemon is classifying, or why not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.mqtt import contract

HEALTHY_WITHIN_S = 10.0  # the newest classification is at most this old (or 3 frame periods at camera.max_rate)


@dataclass(frozen=True)
class Snapshot:
    """The daemon's state at one moment, as the service has it (read from the HTTP server's threads).

    Attributes:
        camera: the camera's counters (`edge.sources.camera.CameraStats`); camera_name: its source, credentials masked.
        mqtt: the publisher's counters (`mqtt_reconnects`, `queued`, `dropped`, `published`); mqtt_connected.
        classified, errors: frames classified and frames whose inference failed since start-up.
        uptime_s: seconds since start-up; started_at: its Unix time; model, device: what classifies.
        classifications: per stream, the last classification payload published on MQTT (None before the first):
            the whole frame under None, each region under its name.
        drift: per stream likewise, the last drift payload (`.../drift`).
    """

    camera: Any
    camera_name: str
    mqtt: Mapping[str, int]
    mqtt_connected: bool
    classified: int
    errors: int
    uptime_s: float
    started_at: float
    model: str
    device: str
    classifications: Mapping[str | None, dict | None]
    drift: Mapping[str | None, dict | None] = field(default_factory=dict)


def stale_after_s(max_rate: float) -> float:
    """How old the newest classification may be while the daemon counts as classifying."""
    return max(HEALTHY_WITHIN_S, 3.0 / max_rate) if max_rate > 0 else HEALTHY_WITHIN_S


def state_payload(snap: Snapshot, window: Mapping[str, float]) -> dict:
    """`/api/state`: what the device's MQTT topics hold now, each built by the contract's own function.

    Args:
        snap: the daemon's state now.
        window: rates and inference percentiles over the live window (`edge.inference.stats.StatsWindow.summary`).

    Returns:
        ``{"availability": "online", "camera": <as on .../camera>, "classification": <as on .../classification>
        or None, "regions": {name: <as on .../<name>/classification> or None}, "stats": <as on .../stats>,
        "drift": {region or "": <as on .../drift>},
        "daemon": {"camera_source", "mqtt_connected"}}`` (without `[[regions]]`: `regions` is empty; with them,
        `classification` is None, as no whole-frame topic is published).
    """
    stats = contract.stats_payload(window, snap.camera, snap.mqtt, classified=snap.classified, errors=snap.errors,
                                   uptime_s=snap.uptime_s, started_at=snap.started_at, model=snap.model,
                                   device=snap.device)  # fmt: skip
    return {
        "availability": contract.PAYLOAD_ONLINE,  # it answers, so it runs; MQTT says "offline" once it stops
        "camera": contract.camera_state(bool(snap.camera.connected)),
        "classification": snap.classifications.get(None),
        "regions": {name: payload for name, payload in snap.classifications.items() if name is not None},
        "stats": stats,
        "drift": {name or "": payload for name, payload in snap.drift.items()},  # "": the whole frame
        "daemon": {"camera_source": snap.camera_name, "mqtt_connected": bool(snap.mqtt_connected)},
    }


def health(snap: Snapshot, last_classified_at: float | None, now: float, stale_after: float) -> tuple[bool, str]:
    """`/healthz`: (True, what it does) while frames are being classified, else (False, why not).

    Args:
        snap: the daemon's state now.
        last_classified_at: monotonic time of the newest classified frame (None: none yet).
        now: monotonic time now.
        stale_after: how old the newest classification may be (`stale_after_s`).
    """
    cam = snap.camera
    if not cam.connected:
        state = "ended" if getattr(cam, "ended", False) else "away"
        return False, f"camera {state}: {snap.camera_name} ({cam.reconnects} reconnects)"
    if last_classified_at is None:
        return False, f"starting: no frame classified yet ({snap.errors} inference errors)"
    age = now - last_classified_at
    if age > stale_after:
        return False, f"no frame classified for {age:.0f} s ({snap.errors} inference errors)"
    return True, f"classifying: model {snap.model} on {snap.device}, {snap.classified} frames"
