"""Home Assistant MQTT discovery as a pure function: one retained config per entity of this device.

`edge.publisher` sends `discovery_configs()` on every connect, when Home Assistant announces `online` on
`{ha_prefix}/status` (coalesced: a flood of announcements sends them once), and after a model reload.
The value templates read the payloads of `edge.mqtt_contract`, whose keys the tests check against these.
"""

from __future__ import annotations

import re

from edge import __version__
from edge.mqtt_contract import PAYLOAD_OFFLINE, PAYLOAD_ONLINE, topics

ORIGIN_NAME = "edge-daemon"
_NOT_NODE_ID = re.compile(r"[^a-zA-Z0-9_-]")


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
