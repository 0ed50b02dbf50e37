"""The MQTT contract as pure functions: topic names, the classification payload, Home Assistant discovery configs.

No I/O here: `edge.publisher` sends what these functions return, and tests and the README check them. Topics::

    {prefix}/{device_id}/availability     "online" / "offline" (retained; "offline" is also the last will)
    {prefix}/{device_id}/classification   JSON, retained
    {prefix}/{device_id}/stats            JSON, not retained
    {prefix}/{device_id}/event            JSON, not retained (model reloads...)
    {ha_prefix}/sensor/{node}_{key}/config   Home Assistant discovery, retained
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from edge import __version__
from edge.postprocess import Prediction

PAYLOAD_ONLINE = "online"
PAYLOAD_OFFLINE = "offline"
ORIGIN_NAME = "edge-daemon"
_FORBIDDEN_IN_TOPIC_LEVEL = re.compile(r"[/+#\x00]")
_NOT_NODE_ID = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True)
class Topics:
    """The topics one device publishes on."""

    availability: str
    classification: str
    stats: str
    event: str


def check_topic_level(value: str, field: str) -> str:
    """Return `value` if it can be one MQTT topic level, else raise ValueError naming `field`.

    Args:
        value: the candidate level, e.g. a device id.
        field: the config key it came from, used in the message.
    """
    if not value or _FORBIDDEN_IN_TOPIC_LEVEL.search(value):
        raise ValueError(f"{field} {value!r} must be non-empty and contain no '/', '+', '#': pick another name")
    return value


def check_topic_prefix(prefix: str, field: str = "mqtt.topic_prefix") -> str:
    """Return `prefix` if it is usable in front of topics (levels separated by '/', no wildcards)."""
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or re.search(r"[+#\x00]", prefix):
        raise ValueError(f"{field} {prefix!r} must be non-empty, without '+', '#' or a leading/trailing '/'")
    return prefix


def topics(prefix: str, device_id: str) -> Topics:
    """The device's topics, e.g. ``topics("edge", "pi1").classification == "edge/pi1/classification"``.

    Raises:
        ValueError: the prefix or device id cannot be used in a topic.
    """
    check_topic_prefix(prefix)
    check_topic_level(device_id, "mqtt.device_id")
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


# -- Home Assistant MQTT discovery --------------------------------------------------------------------------------

# key -> (name, which topic, value template, extra config). Stats keys are the ones `edge.service` publishes.
_SENSORS: dict[str, tuple[str, str, str, dict]] = {
    "label": (
        "Label",
        "classification",
        "{{ value_json.label if value_json.label is not none else 'none' }}",
        {"icon": "mdi:label-outline", "json_attributes_topic": None},
    ),
    "score": (
        "Score",
        "classification",
        "{{ (value_json.score * 100) | round(1) }}",
        {"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:percent"},
    ),
    "inference_ms": (
        "Inference time",
        "classification",
        "{{ value_json.inference_ms }}",
        {
            "unit_of_measurement": "ms",
            "device_class": "duration",
            "state_class": "measurement",
            "entity_category": "diagnostic",
        },
    ),
    "fps": (
        "Classified FPS",
        "stats",
        "{{ value_json.fps_classified }}",
        {"unit_of_measurement": "fps", "state_class": "measurement", "entity_category": "diagnostic"},
    ),
    "dropped": (
        "Dropped MQTT messages",
        "stats",
        "{{ value_json.dropped }}",
        {"state_class": "total_increasing", "entity_category": "diagnostic", "icon": "mdi:message-alert"},
    ),
    "uptime": (
        "Uptime",
        "stats",
        "{{ value_json.uptime_s | round(0) }}",
        {
            "unit_of_measurement": "s",
            "device_class": "duration",
            "state_class": "total_increasing",
            "entity_category": "diagnostic",
        },
    ),
}
SENSOR_KEYS: tuple[str, ...] = tuple(_SENSORS)


def node_id(device_id: str) -> str:
    """The device id made safe for discovery topics and unique ids (only ``[a-zA-Z0-9_-]``)."""
    return _NOT_NODE_ID.sub("_", device_id)


def ha_status_topic(ha_prefix: str) -> str:
    """Where Home Assistant announces ``online``/``offline`` (discovery is re-sent on ``online``)."""
    return f"{ha_prefix}/status"


def discovery_configs(ha_prefix: str, topic_prefix: str, device_id: str, *, model: str, device: str) -> dict[str, dict]:
    """Home Assistant MQTT discovery: {config topic: config payload} for every sensor of this device.

    One entity per value (label, score, inference time, fps, dropped messages, uptime), all attached to one HA
    device named after `device_id` and made unavailable by the availability topic. Full key names are used
    (HA also accepts abbreviations such as ``stat_t``; see tests/mqtt/test_contract.py).

    Args:
        ha_prefix: Home Assistant's discovery prefix (default ``homeassistant``).
        topic_prefix: this daemon's topic prefix.
        device_id: this device's id.
        model: the loaded model's name (shown as the HA device's model).
        device: ``cpu`` or ``edgetpu`` (shown as the HA device's hardware version).
    """
    t = topics(topic_prefix, device_id)
    node = node_id(device_id)
    by_name = {"classification": t.classification, "stats": t.stats}
    ha_device = {
        "identifiers": [f"edge_daemon_{node}"],
        "name": device_id,
        "manufacturer": "edge-daemon",
        "model": model,
        "hw_version": device,
        "sw_version": __version__,
    }
    origin = {"name": ORIGIN_NAME, "sw_version": __version__}
    availability = [
        {"topic": t.availability, "payload_available": PAYLOAD_ONLINE, "payload_not_available": PAYLOAD_OFFLINE}
    ]
    configs: dict[str, dict] = {}
    for key, (name, source, template, extra) in _SENSORS.items():
        state_topic = by_name[source]
        config = {
            "name": name,
            "unique_id": f"edge_daemon_{node}_{key}",
            "state_topic": state_topic,
            "value_template": template,
            "availability": availability,
            "device": ha_device,
            "origin": origin,
        }
        config.update({k: (state_topic if v is None else v) for k, v in extra.items()})
        configs[f"{ha_prefix}/sensor/{node}_{key}/config"] = config
    return configs
