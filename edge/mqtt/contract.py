"""The MQTT contract as pure functions: every topic name and every payload the daemon publishes.

No I/O here: `edge.mqtt.publisher` sends what these functions return. Each JSON payload has a JSON Schema in
`edge/mqtt/schemas/` (the tests validate every message of a real run against them); Home Assistant discovery is
`edge.mqtt.discovery`. Topics::

    {prefix}/{device_id}/availability     "online" / "offline" (retained; "offline" is also the last will)
    {prefix}/{device_id}/camera           "online" / "offline" (retained): is the camera delivering frames?
    {prefix}/{device_id}/classification   JSON, retained            classification_payload()
    {prefix}/{device_id}/label            the label as plain text, retained, on change (optional, Frigate-style)
    {prefix}/{device_id}/stats            JSON, retained            stats_payload()
    {prefix}/{device_id}/event            JSON, not retained        camera_event(), model_reloaded(), drift_event(), ...
    {prefix}/{device_id}/drift            JSON, retained            drift_payload(): does the model still fit?
    {prefix}/{device_id}/deployment       JSON, retained            deployment_payload(): the last pull's outcome
    {prefix}/{device_id}/{region}/classification, .../label, .../drift: the same, per region of interest

Compatibility: within a major version keys are only ever added, never removed or changed in meaning.
Names are validated once, by the config layer (`edge.config.checks`); these functions trust them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge.inference.drift import DriftState
from edge.inference.postprocess import Prediction

PAYLOAD_ONLINE = "online"
PAYLOAD_OFFLINE = "offline"
NO_LABEL = "none"  # the plain-text label (and Home Assistant's state) when no class reached the threshold
UNKNOWN_LABEL = "unknown"  # ... when the best class scored below its calibrated threshold (`[model] calibrated`)
# Why a classification was published. `start` and `stale` mark a retained classification that is not current:
# `start` (nothing classified in this run yet: the previous run's message is void) and `stale` (the camera went
# away: the last state, no longer seen); `resumed` is the first fresh one after that when the label is the same.
REASONS = ("change", "heartbeat", "frame", "reconnect", "start", "stale", "resumed")


@dataclass(frozen=True)
class Topics:
    """The topics one device publishes on."""

    availability: str
    camera: str
    classification: str
    label: str
    stats: str
    event: str
    drift: str
    deployment: str


def topics(prefix: str, device_id: str) -> Topics:
    """The device's topics, e.g. ``topics("edge", "pi1").classification == "edge/pi1/classification"``."""
    base = f"{prefix}/{device_id}"
    return Topics(*(f"{base}/{name}" for name in ("availability", "camera", "classification", "label", "stats",
                                                  "event", "drift", "deployment")))  # fmt: skip


@dataclass(frozen=True)
class StreamTopics:
    """Where one classification stream goes: the whole frame (the device's own topics) or a region's."""

    classification: str
    label: str
    drift: str


def stream_topics(prefix: str, device_id: str, region: str | None = None) -> StreamTopics:
    """`{prefix}/{device_id}[/{region}]/classification`, `.../label`, `.../drift` (regions get a level)."""
    base = f"{prefix}/{device_id}" + (f"/{region}" if region else "")
    return StreamTopics(f"{base}/classification", f"{base}/label", f"{base}/drift")


def iso_utc(timestamp: float) -> str:
    """A Unix time as ISO 8601 UTC with microseconds, e.g. ``2026-01-02T03:04:05.678901Z``.

    Microseconds, not milliseconds: subscribers measure capture-to-receipt latency from it.
    """
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def classification_payload(predictions: Sequence[Prediction], *, reason: str, frame: int, inference_ms: float,
                           model: str, timestamp: float, published_at: float, changed_at: float | None,
                           unknown: bool = False, stale: bool = False) -> dict:  # fmt: skip
    """The JSON object published (retained) on `.../classification`.

    Args:
        predictions: best first (may be empty when nothing reached the threshold).
        reason: `change` (the label changed), `heartbeat` (the same state again, `smoothing.heartbeat_s`),
            `frame` (smoothing off: every frame) or `reconnect` (the state re-sent after a broker connection).
        frame: the count of classified frames when this state was seen.
        inference_ms: time spent in the interpreter for that frame.
        model: the model's name (file stem).
        timestamp: Unix time the frame was captured (a heartbeat while the camera is away keeps the old time).
        published_at: Unix time of publishing. changed_at: Unix time the label last changed (None: not yet).
        unknown: the label is None because the best class scored below its calibrated threshold
            (`[model] calibrated`).
        stale: the state is not current (the camera is away, or nothing is classified yet in this run): Home
            Assistant shows the Label and Score as unknown (`edge.mqtt.discovery`), automations do not fire.

    Returns:
        ``{"label", "index", "score", "top_k", "reason", "stale", "timestamp", "published_at", "changed_at",
        "frame", "inference_ms", "model", "unknown"}``; with no predictions: label None, index None, score 0.0,
        top_k [].
    """
    top = [{"index": int(p.index), "label": p.label, "score": round(float(p.score), 4)} for p in predictions]
    best = top[0] if top else {"index": None, "label": None, "score": 0.0}
    return {
        "label": best["label"],
        "index": best["index"],
        "score": best["score"],
        "top_k": top,
        "reason": reason,
        "stale": bool(stale),
        "timestamp": iso_utc(timestamp),
        "published_at": iso_utc(published_at),
        "changed_at": iso_utc(changed_at) if changed_at is not None else None,
        "frame": int(frame),
        "inference_ms": round(float(inference_ms), 2),
        "model": model,
        "unknown": bool(unknown),
    }


def start_payload(*, model: str, now: float) -> dict:
    """The classification a run publishes (retained) before its first connect's `online`: nothing classified yet
    (reason `start`, stale), so the previous run's retained state is never shown as current."""
    return classification_payload((), reason="start", frame=0, inference_ms=0.0, model=model, timestamp=now,
                                  published_at=now, changed_at=None, stale=True)  # fmt: skip


def to_json(payload: dict) -> str:
    """A payload as sent: compact JSON, UTF-8 text, no NaN."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def label_text(predictions: Sequence[Prediction], unknown: bool = False) -> str:
    """The plain-text label for `.../label` (Frigate-style automations): the best label, `unknown` or `none`."""
    return predictions[0].label if predictions else UNKNOWN_LABEL if unknown else NO_LABEL


def camera_state(connected: bool) -> str:
    """The retained payload of `.../camera`."""
    return PAYLOAD_ONLINE if connected else PAYLOAD_OFFLINE


STATS_WINDOW_KEYS = ("fps_captured", "fps_classified", "fps_dropped", "inference_ms_p50", "inference_ms_p95")
MQTT_COUNTER_KEYS = ("mqtt_reconnects", "queued", "dropped", "published")


def stats_payload(window: Mapping[str, float], camera: Any, mqtt: Mapping[str, int], *, classified: int,
                  errors: int, uptime_s: float, started_at: float, model: str, device: str,
                  collect: Mapping[str, int] | None = None) -> dict:  # fmt: skip
    """The JSON object published on `.../stats` every `stats.interval_s` (and at once after each connect).

    Args:
        window: rates and inference percentiles over the last interval (`edge.inference.stats.StatsWindow.summary`):
            `fps_captured`, `fps_classified`, `fps_dropped`, `inference_ms_p50`, `inference_ms_p95`.
        camera: the camera's counters (`dropped`, `connected`, `reconnects`).
        mqtt: the publisher's counters (`mqtt_reconnects`, `queued`, `dropped`, `published`).
        classified: frames classified since start-up; errors: frames whose inference failed.
        uptime_s: seconds since start-up; started_at: Unix time of start-up; model, device: what classifies.
        collect: the frame collection's counters when `[collect]` is enabled (`collected`, `collect_dropped`,
            `collect_pruned`, `collect_bytes`, `collect_capped`, `collect_duplicates`).
    """
    return {
        **{k: round(float(window[k]), 2) for k in STATS_WINDOW_KEYS},
        "frames_classified": int(classified),
        "inference_errors": int(errors),
        "frames_dropped": int(camera.dropped),
        "camera_connected": bool(camera.connected),
        "camera_reconnects": int(camera.reconnects),
        "uptime_s": round(float(uptime_s), 1),
        "started_at": iso_utc(started_at),
        "model": model,
        "device": device,
        **{k: int(mqtt[k]) for k in MQTT_COUNTER_KEYS},
        **{k: int(v) for k, v in (collect or {}).items()},
    }


def camera_event(connected: bool, *, source: str, reconnects: int, timestamp: float) -> dict:
    """`camera_connected` / `camera_lost` on `.../event`; `source` must already be redacted (`edge.config.urls`)."""
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


def drift_payload(state: DriftState, *, since: float, model: str) -> dict:
    """The JSON object published (retained) on `.../drift`: does the model still fit what the camera sees?

    `state`: `ok` | `drifting` | `learning` | `unavailable` (`reason` says why); `score`: the Jensen-Shannon
    divergence (0..1) of the window against the model's reference, `threshold` where it turns `drifting`;
    `unknown_rate`: the window's share of unknown frames; `frames` in the last `window_s` seconds; `since`: Unix
    time the state began.
    """
    return {"state": state.state, "score": None if state.score is None else round(float(state.score), 4),
            "threshold": float(state.threshold),
            "unknown_rate": None if state.unknown_rate is None else round(float(state.unknown_rate), 4),
            "window_s": float(state.window_s), "frames": int(state.frames), "since": iso_utc(since),
            "reason": state.reason, "model": model}  # fmt: skip


def drift_event(payload: Mapping[str, Any], *, previous: str, region: str | None, timestamp: float) -> dict:
    """`drift_changed` on `.../event`: a stream's drift state changed (`payload`: its new `drift_payload`)."""
    return {"event": "drift_changed", "state": payload["state"], "previous": previous, "region": region,
            "score": payload["score"], "unknown_rate": payload["unknown_rate"], "model": payload["model"],
            "timestamp": iso_utc(timestamp)}  # fmt: skip
def model_rejected(*, reason: str, path: str, error: str, model: str, timestamp: float) -> dict:
    """`model_rejected` on `.../event`: a new model was refused because its signature does not verify against
    `[model] trusted_keys` (unsigned, changed since signed, signed by another key); `model` is the one still
    running."""
    return {"event": "model_rejected", "reason": reason, "path": path, "error": error, "model": model,
            "timestamp": iso_utc(timestamp)}  # fmt: skip


DEPLOYMENT_RESULTS = ("applied", "unchanged", "rolled back", "failed", "refused")
_REVISION = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


def deployment_payload(state: Mapping[str, Any]) -> dict:
    """The retained JSON of `.../deployment`: the device's last pull (`edge-deploy pull-setup`'s agent writes it),
    checked field by field. Keys: desired_revision (the commit the repository asked for), applied_revision (the
    commit whose state the device runs), result (`DEPLOYMENT_RESULTS`), error, time, release, model.

    Raises:
        ValueError: a field missing or of the wrong kind (the file is not the agent's).
    """
    out: dict[str, Any] = {}
    for key in ("desired_revision", "applied_revision"):
        value = state.get(key)
        if value is not None and not (isinstance(value, str) and _REVISION.fullmatch(value)):
            raise ValueError(f"{key}: not a git commit id")
        out[key] = value
    if state.get("result") not in DEPLOYMENT_RESULTS:
        raise ValueError(f"result: not one of {', '.join(DEPLOYMENT_RESULTS)}")
    if not isinstance(state.get("time"), str) or not _ISO.fullmatch(state["time"]):
        raise ValueError("time: not an ISO 8601 UTC time")
    out["result"], out["time"] = state["result"], state["time"]
    for key in ("error", "release", "model"):
        value = state.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key}: not a string")
        out[key] = " ".join(value.split())[:500] if isinstance(value, str) else None
    return out


def deployment_event(payload: Mapping[str, Any], *, timestamp: float) -> dict:
    """`deployment` on `.../event`: a pull ended (the retained `.../deployment` says the same)."""
    return {"event": "deployment", **{k: payload[k] for k in ("result", "desired_revision", "applied_revision",
            "error")}, "timestamp": iso_utc(timestamp)}  # fmt: skip
